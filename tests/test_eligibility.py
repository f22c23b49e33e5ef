"""Contribution runs, waiting periods and late enrolment (docs/settlement.md step 6), end to end on both engines."""

import pytest

from medsettle.engine.eligibility import contribution_run, late_enrolment_wait
from medsettle.errors import SettlementRefused
from medsettle.policy import policy_from_dict
from worlds import bill, make_settler, person, policy_dict


def m(text: str) -> int:
    y, mo = text.split("-")
    return int(y) * 12 + int(mo) - 1


def months(a: str, b: str) -> list[int]:
    return list(range(m(a), m(b) + 1))


def test_unbroken_run():
    assert contribution_run(months("2025-01", "2026-03")) == (m("2025-01"), m("2026-03"))
    assert contribution_run([]) == (-1, -1)


def test_a_missed_month_restarts_the_run():
    paid = months("2024-01", "2025-05") + months("2025-07", "2026-03")
    assert contribution_run(paid) == (m("2025-07"), m("2026-03"))


def test_a_transfer_gap_of_up_to_three_months_does_not_break_the_run():
    paid = months("2024-01", "2025-05") + months("2025-09", "2026-03")
    gap = months("2025-06", "2025-08")
    assert contribution_run(paid, gap) == (m("2024-01"), m("2026-03"))
    longer = months("2024-01", "2025-04") + months("2025-09", "2026-03")
    assert contribution_run(longer, months("2025-05", "2025-08")) == (m("2025-09"), m("2026-03"))
    assert contribution_run(paid) == (m("2025-09"), m("2026-03"))  # not a transfer: broken


def test_late_enrolment_wait_is_policy_and_capped():
    rules = policy_from_dict(policy_dict()).regions[0].rulesets[0]
    assert late_enrolment_wait(rules, 0) == 0
    assert late_enrolment_wait(rules, 2) == 2
    assert late_enrolment_wait(rules, 50) == rules.late_enrolment.cap_months


def test_paid_january_to_march_benefits_from_april(engine):
    # Seed 002: three months paid, benefits from the fourth. The run January-March 2026 gives
    # run_start = 2026-01; with the default 3 waiting months the first covered day is 1 April.
    start, through = contribution_run(months("2026-01", "2026-03"))
    row = person("N1", contrib_from="2026-01", paid_through="2026-03")
    assert (m(row["contrib_from"]), m(row["paid_through"])) == (start, through)
    s = make_settler(
        engine,
        persons=[
            row,
            person(
                "L1",
                insutype="390",
                psn_type="1501",
                balance="0",
                contrib_from="2026-01",
                paid_through="2026-12",
                extra_wait_months="2",
            ),
        ],
    )
    with pytest.raises(SettlementRefused, match="waiting"):
        s.settle(bill("N1", [("A1", "10.00", 1)], when="2026-03-31 23:59:59"))
    s.settle(bill("N1", [("A1", "10.00", 1)], when="2026-04-01 08:00:00"))
    # A late-enrolled resident with 2 extra months waits until June.
    with pytest.raises(SettlementRefused):
        s.settle(bill("L1", [("A1", "10.00", 1)], when="2026-05-31 10:00:00"))
    s.settle(bill("L1", [("A1", "10.00", 1)], when="2026-06-01 10:00:00"))
