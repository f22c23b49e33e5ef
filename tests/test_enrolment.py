"""Persons added while the engines run (enrolment): the population and the state grow, bills of the new
persons settle the same on both engines, and persons enrolled before are untouched."""

import pytest

from medsettle.engine.persons import FLAG_ACTIVE
from medsettle.engine.plainbill import validate_plain
from medsettle.errors import InvalidInput
from medsettle.policy.codes import INSUTYPE_INDEX, PSN_TYPE_INDEX
from worlds import REGION_A, bill, make_settler


def employee_attrs(**over):
    attrs = {
        "insutype": INSUTYPE_INDEX["310"],
        "psn_type": PSN_TYPE_INDEX["11"],
        "flags": FLAG_ACTIVE,
        "region": 0,
        "run_start": 2020 * 12,
        "paid_through": 2030 * 12,
    }
    attrs.update(over)
    return attrs


def test_enrolled_persons_settle_and_the_others_keep_their_state(engine):
    settler = make_settler(engine)
    before = settler.settle(bill("E1", [("A1", "300.00", "1")]))
    e1_state = settler.person_state("E1")
    rows = [settler.enrol(f"N{i}", employee_attrs(), balance=50_000) for i in range(40)]  # past two doublings
    assert rows == list(range(7, 47)) and len(settler.population) == 47
    assert settler.person_state("E1") == e1_state
    result = settler.settle(bill("N39", [("A1", "300.00", "1")]))
    # 300.00: deductible 100.00, then 80% of 200.00 = 160.00 pooled; 140.00 own share from the 500.00 account
    assert [result.amount(n) for n in ("fund_pay_sumamt", "acct_pay", "psn_cash_pay")] == [16000, 14000, 0]
    assert settler.person_state("N39").balance == 50_000 - 14_000
    later = settler.settle(bill("E1", [("A1", "300.00", "1")], when="2026-05-11 09:00:00"))
    assert later.amount("fund_pay_sumamt") == 24000
    assert before.amount("fund_pay_sumamt") == 16000


def test_a_new_person_in_the_waiting_period_is_refused_like_any_other(engine):
    from medsettle.errors import SettlementRefused

    settler = make_settler(engine)
    settler.enrol("NEW", employee_attrs(run_start=2026 * 12 + 4, paid_through=2026 * 12 + 4))  # from May 2026
    with pytest.raises(SettlementRefused) as refused:
        settler.settle(bill("NEW", [("A1", "10.00", "1")]))
    assert refused.value.code == "WAITING_PERIOD"
    settler.update_person("NEW", run_start=2025 * 12)
    assert settler.settle(bill("NEW", [("A1", "10.00", "1")])).amount("psn_cash_pay") == 1000


def test_enrolling_an_existing_psn_no_or_unknown_attributes_changes_nothing(engine):
    settler = make_settler(engine)
    with pytest.raises(InvalidInput, match="already exists"):
        settler.enrol("E1", employee_attrs())
    with pytest.raises(ValueError, match="unknown person attributes"):
        settler.enrol("N1", {"colour": 1})
    assert len(settler.population) == 7 and settler.population.region_of(0) == REGION_A


def test_fast_path_made_after_enrolment_sees_the_new_person():
    settler = make_settler("core")
    for i in range(20):
        settler.enrol(f"N{i}", employee_attrs(), balance=1)
    fast = settler.fast_path()
    assert fast is not None
    assert settler.settle(bill("N19", [("A1", "50.00", "1")])).amount("acct_pay") == 1


@pytest.mark.parametrize("engine", ["core", "reference"])
def test_a_fast_path_made_before_an_enrolment_routes_no_bill_of_the_new_person(engine):
    """The C route of a fast path made before an enrolment holds the attrs array of that time, which has
    no row for the new person (and may have moved): it says no rather than read past it. (The Python route
    reads the population afresh on every bill.) The Settler's own fast path, made anew, settles the bill."""
    settler = make_settler(engine)
    stale = settler.fast_path()
    settler.enrol("N0", employee_attrs(), balance=1)
    new_bill = bill("N0", [("A1", "50.00", "1")])
    routed = stale.route(validate_plain(new_bill))
    if engine == "core":
        assert routed is None
    else:
        assert routed[0][0] == settler.population.index_of("N0")
    assert settler.fast_path().route(validate_plain(new_bill)) is not None
    assert settler.settle(new_bill).amount("acct_pay") == 1
