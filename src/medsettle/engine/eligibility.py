"""From a contribution history to the two months the engines check (docs/settlement.md step 6).

The engines read, per person, ``run_start`` (the first month of the current unbroken run of monthly
contributions) and ``paid_through`` (the last month paid for); benefits start on the first day of
month ``run_start + waiting months`` and need contributions that reach the bill's month or the month
before. This module turns what the centre records (the months paid, and the months lost to a transfer
between regions) into those two numbers, and the late-enrolment extra wait of residents.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..policy.models import RuleSet

MAX_TRANSFER_GAP = 3  # months: a gap this long or shorter caused by a transfer does not break the run


def contribution_run(paid_months: Iterable[int], transfer_gap_months: Iterable[int] = ()) -> tuple[int, int]:
    """(run_start, paid_through) as month indices (year*12+month-1), or (-1, -1) with no contributions.

    A missed month restarts the run; a gap of up to 3 months whose every month is marked as lost to a
    transfer between regions does not (the relation moves with the person).
    """
    months = sorted(set(paid_months))
    if not months:
        return -1, -1
    transfer = set(transfer_gap_months)
    start = months[-1]
    for earlier in reversed(months[:-1]):
        gap = range(earlier + 1, start)
        if len(gap) == 0 or (len(gap) <= MAX_TRANSFER_GAP and all(m in transfer for m in gap)):
            start = earlier
        else:
            break
    return start, months[-1]


def late_enrolment_wait(rules: RuleSet, uncovered_years: int) -> int:
    """Extra waiting months of a resident who enrols late: one per uncovered year (policy), capped."""
    if uncovered_years < 0:
        raise ValueError("uncovered_years must not be negative")
    per_year = rules.late_enrolment.months_per_uncovered_year
    return min(per_year * uncovered_years, rules.late_enrolment.cap_months)
