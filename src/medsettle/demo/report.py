"""What ``medsettle demo`` prints of a day: the timeline (one line per event of note, at its virtual time) and
the summary table with the checks under it."""

from __future__ import annotations

from .day import HOSPITAL, PHARMACY, ROLE, DayResult, Totals, yuan

HEADER = ("institution", "bills", "medfee", "fund", "account", "cash", "institution")


def heading(result: DayResult, engine_said: str) -> str:
    hospital, pharmacy = result.institutions[HOSPITAL], result.institutions[PHARMACY]
    return (
        f"a simulated day, {result.day} (seed {result.seed}): {result.patients:,} patients at {hospital} "
        f"({HOSPITAL}, its outpatient counter) and {pharmacy} ({PHARMACY}, store-and-forward); "
        f"engine: {engine_said}"
    )


def timeline(result: DayResult) -> list[str]:
    return ["timeline (virtual time, Asia/Shanghai):"] + [f"  {e.at:%H:%M}  {e.text}" for e in result.timeline]


def _row(name: str, t: Totals) -> tuple[str, ...]:
    return (name, f"{t.bills:,}", *(yuan(getattr(t, f)) for f in ("medfee", "fund", "account", "cash", "institution")))


def summary(result: DayResult) -> list[str]:
    """The table of each institution's settlements at the centre, then vouchers, forwards and the checks."""
    table = [_row(f"{t.code} {ROLE[t.code]}", t) for t in result.totals] + [_row("all", result.total)]
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *table, strict=True)]
    line = "  ".join(h.rjust(w) if k else h.ljust(w) for k, (h, w) in enumerate(zip(HEADER, widths, strict=True)))
    out = [line, "-" * len(line)]
    for i, row in enumerate(table):
        if i == len(table) - 1:
            out.append("-" * len(line))
        out.append("  ".join(x.rjust(w) if k else x.ljust(w) for k, (x, w) in enumerate(zip(row, widths, strict=True))))
    v = result.vouchers
    out.append(
        f"vouchers: {sum(v.values())} made ({v['outage']} in the outage, {v['reader failure']} while the reader was "
        f"down), {result.resettled} re-settled, {result.manual_claims} manual claims"
    )
    out.append(
        f"store-and-forward: {result.provisional} provisional sales, {result.forwarded} forwarded, "
        f"{result.flagged} flagged"
    )
    refused = ", ".join(f"{code} {n}" for code, n in sorted(result.refused.items())) or "none"
    out.append(f"refused by the centre: {refused}")
    clean = all(result.reconciled.values()) and len(result.reconciled) == len(result.totals)
    said = "clean at both counters" if clean else ", ".join(
        f"{ROLE[code]} {'clean' if ok else 'NOT clean'}" for code, ok in result.reconciled.items()
    )  # fmt: skip
    out.append(f"reconciliation (3201): {said}")
    out.append(
        "check: medfee = fund + account + cash + institution on every settlement: "
        f"{'yes' if result.balanced else 'NO'} ({result.settlements:,} settlements)"
    )
    out.append(
        f"check: the chart's fund and account by hour add up to the table's: {'yes' if result.hours_add_up else 'NO'}"
    )
    return out
