"""Bad input gets a clear error naming the bill and the field, and changes nothing (both engines)."""

import numpy as np
import pytest

from medsettle.engine import encode_bills, parse_bill
from medsettle.errors import InvalidInput, TotalMismatch, UnknownItem, UnknownPerson
from worlds import bill, make_settler


def snapshot(s):
    return [s.engine.get_state(i) for i in range(len(s.population))], dict(s.records)


@pytest.mark.parametrize(
    "mutate, error, field",
    [
        (lambda b: b["feedetail"][0].update(pric="-1.00"), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(cnt="0"), InvalidInput, "feedetail[0].cnt"),
        (lambda b: b["feedetail"][0].update(cnt="-2"), InvalidInput, "feedetail[0].cnt"),
        (lambda b: b["feedetail"][0].update(pric="1000000.0001"), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(cnt="10000.0001"), InvalidInput, "feedetail[0].cnt"),
        (lambda b: b["feedetail"][0].update(pric="1.00001"), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(pric="abc"), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(pric=True), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(pric=[1]), InvalidInput, "feedetail[0].pric"),
        (lambda b: b["feedetail"][0].update(hosp_appr_flag="2"), InvalidInput, "feedetail[0].hosp_appr_flag"),
        (lambda b: b["feedetail"][0].update(med_list_codg="NOPE"), UnknownItem, "feedetail[0].med_list_codg"),
        (
            lambda b: b["feedetail"][0].update(det_item_fee_sumamt="10.01"),
            TotalMismatch,
            "feedetail[0].det_item_fee_sumamt",
        ),
        (lambda b: b.update(medfee_sumamt="10.01"), TotalMismatch, "medfee_sumamt"),
        (lambda b: b.update(psn_no="NOBODY"), UnknownPerson, "psn_no"),
        (lambda b: b.update(med_type="99"), InvalidInput, "med_type"),
        (lambda b: b.update(hosp_lv="7"), InvalidInput, "hosp_lv"),
        (lambda b: b.update(setl_time="yesterday"), InvalidInput, "setl_time"),
        (lambda b: b.update(setl_time="1999-12-31 10:00:00"), InvalidInput, "setl_time"),
        (lambda b: b.update(mdtrtarea_admvs="999999"), InvalidInput, "mdtrtarea_admvs"),
        (lambda b: b.update(feedetail=[]), InvalidInput, "feedetail"),
        (lambda b: b.update(feedetail=b["feedetail"] * 1001), InvalidInput, "feedetail"),
        (lambda b: b.pop("psn_no"), InvalidInput, "psn_no"),
        (lambda b: b.update(acct_used_flag="yes"), InvalidInput, "acct_used_flag"),
    ],
)
def test_bad_bill_is_refused_with_its_field_and_changes_nothing(engine, mutate, error, field):
    s = make_settler(engine)
    s.settle(bill("E1", [("A1", "10.00", 1)], when="2026-05-01 10:00:00"))
    before = snapshot(s)
    b = bill("E1", [("A1", "10.00", 1)], bill_id="BAD-1")
    mutate(b)
    with pytest.raises(error) as exc:
        s.settle(b)
    assert exc.value.field == field
    assert "BAD-1" in str(exc.value) and field in str(exc.value)
    assert snapshot(s) == before


def test_total_over_the_medfee_bound(engine):
    s = make_settler(engine)
    lines = [("A1", "1000000.00", "10000")] * 2  # 2 × 10^10 yuan... far past 10^11 fen
    with pytest.raises(InvalidInput, match="medfee_sumamt"):
        s.settle(bill("E1", lines))


def test_caller_totals_that_agree_are_accepted(engine):
    s = make_settler(engine)
    b = bill("E1", [("A1", "4.52", "1.5")], medfee_sumamt="6.78")
    b["feedetail"][0]["det_item_fee_sumamt"] = 6.78  # a JSON number, parsed exactly
    assert s.settle(b).amount("medfee_sumamt") == 678


def test_one_invalid_bill_fails_the_whole_batch_before_anything_is_settled(engine):
    s = make_settler(engine)
    before = snapshot(s)
    bills = [
        bill("E1", [("A1", "10.00", 1)], bill_id="G1"),
        bill("R1", [("A1", "10.00", 1)], bill_id="G2"),
        bill("E2", [("A1", "-10.00", 1)], bill_id="BAD"),
        bill("E1", [("A1", "10.00", 1)], bill_id="G3", when="2026-06-01 10:00:00"),
    ]
    with pytest.raises(InvalidInput, match="bill BAD"):
        s.settle_many(bills)
    bills[2] = bill("E2", [("ZZZ", "10.00", 1)], bill_id="BAD")
    with pytest.raises(UnknownItem, match="bill BAD"):
        s.settle_many(bills)
    assert snapshot(s) == before


def test_array_batch_validation_names_bill_and_field(engine):
    s = make_settler(engine)
    models = [parse_bill(bill("E1", [("A1", "10.00", 1), ("B05", "2.00", 3)], bill_id=f"K{i}")) for i in range(3)]
    batch = encode_bills(models, s.compiled, s.population, s.admissions)
    before = snapshot(s)
    checks = [
        ("cnt", 4, 0, "feedetail[0].cnt"),
        ("pric", 3, -5, "feedetail[1].pric"),
        ("item", 5, 10_000, "feedetail[1].med_list_codg"),
        ("person", 2, 99, "psn_no"),
        ("med_type", 1, 9, "med_type"),
        ("acct_flag", 0, 2, "acct_used_flag"),
    ]
    for column, index, value, field in checks:
        bad = encode_bills(models, s.compiled, s.population, s.admissions)
        getattr(bad, column)[index] = value
        with pytest.raises(InvalidInput) as exc:
            s.run_batch(bad)
        assert exc.value.field == field, column
        assert f"bill K{index // 2 if column in ('cnt', 'pric', 'item') else index}" in str(exc.value)
    assert snapshot(s) == before
    # An item of the other region's catalogue is refused on the array path too.
    wrong = encode_bills(models, s.compiled, s.population, s.admissions)
    wrong.item[0] = s.compiled.catalogue_index[1][0][1]["A1"]
    with pytest.raises(UnknownItem):
        s.run_batch(wrong)
    assert s.run_batch(batch).settled == 3
    assert np.all(s.run_batch(batch, outputs="totals").column("status") == 0)


def test_the_core_kernel_refuses_a_bill_without_lines_before_touching_state():
    """The kernel's own guard (the facade validates first): its line pass counts bills by their first
    line, so a batch whose line offsets do not rise is refused before anything is priced."""
    s = make_settler("core")
    models = [parse_bill(bill("E1", [("A1", "10.00", 1), ("B05", "2.00", 3)], bill_id=f"K{i}")) for i in range(3)]
    batch = encode_bills(models, s.compiled, s.population, s.admissions)
    batch.line_start[2] = batch.line_start[1]  # bill 1 now has no lines, bill 2 has four
    before = snapshot(s)
    with pytest.raises(ValueError, match="bill 1 has no lines"):
        s.engine.run(batch)
    assert snapshot(s) == before


@pytest.mark.parametrize(
    "change, where",
    [
        ({"active": "yes"}, "row 2, column active: expected 1 or 0, got 'yes'"),
        ({"assistance": "maybe"}, "row 2, column assistance: expected 1 or 0"),
        ({"extra_wait_months": "-1"}, "row 2, column extra_wait_months: expected a whole number of months"),
        ({"contrib_from": "March"}, "row 2, column contrib_from: expected yyyy-mm"),
        ({"filing_admdvs": "220200", "filing_begin": "2026/01/01"}, "row 2, column filing_begin: expected a date"),
        ({"insutype": "311"}, "row 2, column insutype: unknown insutype '311'"),
        ({"psn_no": "E1"}, "row 2, column psn_no: psn_no E1 repeats row 1"),
        ({"psn_no": " "}, "row 2, column psn_no: psn_no is empty"),
    ],
)
def test_a_bad_persons_row_is_refused_naming_row_and_column(change, where):
    """Values that were read silently before (active 'yes' as inactive, a negative wait, ...) are refused."""
    from medsettle.engine import Population
    from medsettle.policy import policy_from_dict
    from worlds import DEFAULT_PERSONS, policy_dict

    rows = [dict(DEFAULT_PERSONS[0]), {**DEFAULT_PERSONS[1], **change}]
    with pytest.raises(InvalidInput) as exc:
        Population.from_rows(policy_from_dict(policy_dict()), rows, source="people")
    assert str(exc.value).startswith(f"people {where}"), str(exc.value)
