"""A load run's files (JSON, CSV, the PNG report) and ``bench compare``'s table of two runs.

Plain Python and matplotlib (its Agg backend, no display): reading or comparing results imports no Locust.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LATENCY_COLUMNS = ("requests", "failures", "per_second", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")


class ReportError(ValueError):
    """A result file that cannot be read as a load run's; the message names the file."""


def write_all(result: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write ``result.json``, ``transactions.csv``, ``seconds.csv`` and ``report.png`` into ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "result.json",
        "transactions": out / "transactions.csv",
        "seconds": out / "seconds.csv",
        "png": out / "report.png",
    }
    paths["json"].write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with paths["transactions"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["transaction", *LATENCY_COLUMNS])
        for name, row in result["latency_ms"].items():
            writer.writerow([name, *(row.get(c, "") for c in LATENCY_COLUMNS)])
        writer.writerow([])
        writer.writerow(["error code", "count"])
        for code, count in result["errors"].items():
            writer.writerow([code, count])
    with paths["seconds"].open("w", newline="", encoding="utf-8") as f:
        columns = ["second", "answers", "errors", "p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"]
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in result["seconds"]:
            writer.writerow([row.get(c) for c in columns])
    plot(result, paths["png"])
    return paths


def title(result: Mapping[str, Any]) -> str:
    """The run's parameters in a line, for the plot's title and the summary."""
    p = result["parameters"]
    loop = f"open loop {p['rate_per_s']:g} bills/s ({p['arrivals']})" if p["loop"] == "open" else "closed loop"
    workers = f", {p['workers']} workers" if p["workers"] else ""
    valid = "" if result["valid"] else " - INVALID run"
    return f"{p['counters']} counters, {loop}, {p['duration_s']:g} s, centre {p['centre']}{workers}{valid}"


def plot(result: Mapping[str, Any], path: Path) -> None:
    """The PNG report: latency percentiles, throughput and the error rate over the run, the parameters above."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = result["seconds"]
    xs = [r["second"] for r in rows]
    fig, (lat, thr, err) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    gap = float("nan")  # ok-float: a second without answers, a gap in a latency line of the plot
    for label in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"):
        lat.plot(xs, [r[label] if r[label] is not None else gap for r in rows], label=label[:-3])
    lat.set_ylabel("latency (ms, from intended send)")
    lat.set_yscale("symlog", linthresh=10)
    lat.legend(loc="upper left", ncol=5, fontsize="small")
    thr.plot(xs, [r["answers"] for r in rows], color="tab:green")
    thr.set_ylabel("answers / s")
    err.plot(xs, [100 * r["errors"] / r["answers"] if r["answers"] else 0 for r in rows], color="tab:red")
    err.set_ylabel("errors (% of answers)")
    err.set_ylim(bottom=0)
    err.set_xlabel("second of the run (dotted: the last arrival; later, the counters finish the bills due)")
    for axes in (lat, thr, err):
        axes.axvline(result["parameters"]["duration_s"], color="grey", linestyle=":")
    t = result["throughput"]
    why = f"\nINVALID: {'; '.join(result['invalid_because'])}" if not result["valid"] else ""
    fig.suptitle(
        f"medsettle bench load: {title(result)}\n{t['bills_per_s']:g} bills/s, {t['answers_per_s']:g} answers/s, "
        f"{result['answers_checked']['identity_failures']} identity failures in "
        f"{result['answers_checked']['settlements']:,} settlements{why}",
        fontsize="medium",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary(result: Mapping[str, Any]) -> list[str]:
    """The lines ``bench load`` prints at the end."""
    t, checked, driver = result["throughput"], result["answers_checked"], result["driver"]
    lines = [
        title(result),
        f"throughput: {t['bills_per_s']:g} bills/s ({t['bills']:,} bills, {t['bills_failed']:,} failed), "
        f"{t['answers_per_s']:g} answers/s",
        f"{'transaction':<12}" + "".join(f"{c:>11}" for c in LATENCY_COLUMNS),
    ]
    for name, row in result["latency_ms"].items():
        lines.append(f"{name:<12}" + "".join(f"{_cell(row.get(c)):>11}" for c in LATENCY_COLUMNS))
    errors = ", ".join(f"{code} {n}" for code, n in result["errors"].items()) or "none"
    lines.append(f"errors by code: {errors}")
    lines.append(
        f"answers checked: {checked['settlements']:,} settlements, {checked['identity_failures']} broke an identity"
        + (f" (e.g. {checked['examples'][0]})" if checked["examples"] else "")
    )
    lines.append(
        f"driver: scheduling lag p50 {_cell(driver['lag_p50_ms'])} ms, p99 {_cell(driver['lag_p99_ms'])} ms, max "
        f"{_cell(driver['lag_max_ms'])} ms; busiest process {_cell(driver['cpu_share_max'])} of a core"
    )
    if not result["valid"]:
        lines.append("INVALID run: " + "; ".join(result["invalid_because"]))
    return lines


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 1 or value == 0 else f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def read_result(path: str) -> dict[str, Any]:
    """A result.json of ``bench load``; ReportError naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not a load run's result.json ({exc})") from None
    if not isinstance(data, dict) or data.get("medsettle_load") != 1:
        raise ReportError(f"{path}: not a load run's result.json (written by medsettle bench load)")
    return data


def compare(a: Mapping[str, Any], b: Mapping[str, Any], names: tuple[str, str] = ("A", "B")) -> list[str]:
    """The two runs' figures side by side, each with B / A."""
    rows: list[tuple[str, Any, Any]] = [
        ("bills/s", a["throughput"]["bills_per_s"], b["throughput"]["bills_per_s"]),
        ("answers/s", a["throughput"]["answers_per_s"], b["throughput"]["answers_per_s"]),
        ("bills failed", a["throughput"]["bills_failed"], b["throughput"]["bills_failed"]),
    ]
    for tx in [t for t in a["latency_ms"] if t in b["latency_ms"]]:
        for c in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms"):
            rows.append((f"{tx} {c}", a["latency_ms"][tx].get(c), b["latency_ms"][tx].get(c)))
    for code in sorted(set(a["errors"]) | set(b["errors"])):
        rows.append((f"errors {code}", a["errors"].get(code, 0), b["errors"].get(code, 0)))
    rows.append(
        (
            "identity failures",
            a["answers_checked"]["identity_failures"],
            b["answers_checked"]["identity_failures"],
        )
    )
    rows.append(("driver lag p99 ms", a["driver"]["lag_p99_ms"], b["driver"]["lag_p99_ms"]))
    lines = [f"A: {title(a)}", f"B: {title(b)}", f"{'figure':<22}{names[0]:>12}{names[1]:>12}{'B / A':>10}"]
    for label, x, y in rows:
        ratio = f"{y / x:.2f}x" if isinstance(x, int | float) and isinstance(y, int | float) and x else "-"
        lines.append(f"{label:<22}{_cell(x):>12}{_cell(y):>12}{ratio:>10}")
    return lines
