"""The demo day's chart: fund, account and cash by hour at the two counters, the centre outage and the reader
failure shaded. matplotlib's Agg backend (a file, no display); imported only when a chart is drawn."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from .day import DayResult, yuan


def _hours(when: dt.datetime) -> float:
    return when.hour + when.minute / 60  # ok-float: a position on the chart's time axis


def draw(result: DayResult, path: Path) -> None:
    """Write the PNG to ``path``: one group of bars per hour (what the fund and the account paid, and the
    patients' cash net of refunds, in yuan), the outage and the failure as shaded spans."""
    import matplotlib  # noqa: PLC0415 - matplotlib is imported only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    hours = [h for h in sorted(result.hourly) if any(result.hourly[h]) or h < max(result.hourly)]  # closing: if any
    fig, axes = plt.subplots(figsize=(11, 5.5))
    width = 0.27  # ok-float: a bar's width, in hours
    for k, (label, colour) in enumerate((("fund", "tab:blue"), ("account", "tab:green"), ("cash", "tab:orange"))):
        values = [result.hourly[h][k] / 100 for h in hours]  # ok-float: yuan to plot, not money to keep
        axes.bar([h + 0.5 + (k - 1) * width for h in hours], values, width, label=label, color=colour)
    axes.axvspan(*map(_hours, result.outage), color="tab:red", alpha=0.15, label="centre outage")
    axes.axvspan(*map(_hours, result.reader_failure), color="tab:purple", alpha=0.15, label="pharmacy reader failure")
    axes.axhline(0, color="black", linewidth=0.6)
    axes.set_xticks(hours + [hours[-1] + 1])
    axes.set_xticklabels([f"{h:02d}:00" for h in hours + [hours[-1] + 1]])
    axes.set_xlim(hours[0], hours[-1] + 1)
    axes.set_ylabel("yuan in the hour (cash: paid by patients, less refunds)")
    axes.set_xlabel(f"{result.day} (virtual time, Asia/Shanghai)")
    axes.legend(loc="upper right", fontsize="small")
    t = result.total
    axes.set_title(
        f"medsettle demo: a day at a hospital and a pharmacy (seed {result.seed}, {result.engine} engine)\n"
        f"{t.bills:,} bills; fund {yuan(t.fund)}, account {yuan(t.account)}, cash {yuan(t.cash)}, "
        f"institution {yuan(t.institution)} yuan",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
