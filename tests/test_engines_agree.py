"""Property tests: on random policies, persons and bill streams, the Cython core and the reference engine
give identical results and state; docs/settlement.md's invariants hold on every bill; settle then cancel
restores the state."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsettle.engine import Population, Settler, encode_bills, parse_bill
from medsettle.engine.columns import COL
from medsettle.errors import MedsettleError, SettlementRefused
from medsettle.policy import policy_from_dict
from strategies import bills, operations, persons, policies

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

AMOUNTS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "hifob_pay",
    "hifmi_pay",
    "cvlserv_pay",
    "maf_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
    "hosp_part_amt",
    "balc",
)


def build(policy_dict, rows, engine):
    pol = policy_from_dict(policy_dict)
    return Settler(pol, Population.from_rows(pol, rows), engine=engine)


def states(s: Settler):
    return [s.engine.get_state(i) for i in range(len(s.population))]


def apply(s: Settler, op, made: list[str]):
    kind, arg = op
    try:
        if kind == "cancel":
            if arg >= len(made):
                return ("skip",)
            r = s.cancel(made[arg])
        elif kind == "presettle":
            r = s.presettle(arg)
        else:
            r = s.settle(arg)
            made.append(r.setl_id)
        return ("ok", r.setl_id, r.row.tolist(), None if r.lines is None else r.lines.tolist(), r)
    except SettlementRefused as exc:
        return ("refused", exc.code, str(exc))
    except MedsettleError as exc:
        return ("error", type(exc).__name__, str(exc))


def check_invariants(row: np.ndarray, lines: np.ndarray | None, *, forward: bool) -> None:
    v = {name: int(row[COL[name]]) for name in AMOUNTS}
    assert all(x >= 0 for x in v.values()), v
    assert v["medfee_sumamt"] == v["fund_pay_sumamt"] + v["psn_part_amt"] + v["hosp_part_amt"]
    assert v["psn_part_amt"] == v["acct_pay"] + v["psn_cash_pay"]
    assert v["medfee_sumamt"] == (
        v["fulamt_ownpay_amt"] + v["overlmt_selfpay"] + v["preselfpay_amt"] + v["inscp_scp_amt"]
    )
    assert v["fund_pay_sumamt"] == (v["hifp_pay"] + v["hifob_pay"] + v["hifmi_pay"] + v["cvlserv_pay"] + v["maf_pay"])
    assert v["act_pay_dedc"] + v["hifp_pay"] <= v["inscp_scp_amt"]
    assert v["fund_pay_sumamt"] <= v["inscp_scp_amt"]
    assert forward or v["hosp_part_amt"] == 0
    assert 0 <= int(row[COL["pool_prop_bp"]]) <= 10_000
    if lines is not None:
        assert lines.sum(axis=0).tolist() == [
            v["medfee_sumamt"],
            v["fulamt_ownpay_amt"],
            v["overlmt_selfpay"],
            v["preselfpay_amt"],
            v["inscp_scp_amt"],
        ]


def max_ceilings(policy_dict) -> dict:
    """Per (region, group, insutype, psn_type): the highest ceiling of any rule set."""
    out: dict = {}
    for region in policy_dict["regions"]:
        names = [g["name"] for g in region["groups"]]
        for rs in region["rulesets"]:
            for b in rs["benefits"]:
                for p in b["psn_types"]:
                    key = (region["admdvs"], names.index(b["group"]), b["insutype"], p)
                    out[key] = max(out.get(key, 0), int(round(float(b["ceiling"]) * 100)))  # ok-float: test bound
    return out


@SETTINGS
@given(data=st.data())
def test_engines_agree_on_random_policies(data):
    """One random policy and population (drawing them is most of an example's time), three properties on
    them, each in its own function and on its own draws of operations or bills: 150 examples for each."""
    policy_dict = data.draw(policies(), label="policy")
    rows = data.draw(persons(), label="persons")
    core_and_reference_agree_on_every_operation(data, policy_dict, rows)
    batch_on_core_equals_bill_by_bill_on_reference(data, policy_dict, rows)
    settle_then_cancel_restores_state(data, policy_dict, rows)


def core_and_reference_agree_on_every_operation(data, policy_dict, rows) -> None:
    ops = data.draw(operations(len(rows)), label="operations")
    core, ref = build(policy_dict, rows, "core"), build(policy_dict, rows, "reference")
    made_core: list[str] = []
    made_ref: list[str] = []
    ceilings = max_ceilings(policy_dict)
    for op in ops:
        before = states(ref)
        a, b = apply(core, op, made_core), apply(ref, op, made_ref)
        assert a[:4] == b[:4], op
        assert states(core) == states(ref), op
        if a[0] != "ok" or op[0] == "presettle":
            assert states(ref) == before, op  # refusals, bad input and pre-settlement change nothing
        if a[0] == "ok" and a[4].mirror_of is None:
            check_invariants(a[4].row, a[4].lines, forward="saf_cash_amt" in op[1])
        elif a[0] == "ok":  # a cancel mirror: the original negated, but for balc and pool_prop_selfpay
            mirror, original = a[4], ref.records[a[4].mirror_of]
            for name in AMOUNTS[:-1]:
                assert mirror.amount(name) == -original.amount(name)
            assert mirror.row[COL["pool_prop_bp"]] == original.row[COL["pool_prop_bp"]]
            assert mirror.balc == states(ref)[mirror.person].balance
    for i, st_ in enumerate(states(ref)):
        assert st_.balance >= 0
        person = core.population.describe(i)
        for g in range(3):
            key = (person["insuplc_admdvs"], g, person["insutype"], person["psn_type"])
            assert st_.pooled_paid[g] <= ceilings[key]


def batch_on_core_equals_bill_by_bill_on_reference(data, policy_dict, rows) -> None:
    stream = [data.draw(bills(len(rows), i)) for i in range(data.draw(st.integers(1, 30)))]
    core, ref = build(policy_dict, rows, "core"), build(policy_dict, rows, "reference")
    fresh = states(core)
    try:
        batch_results = core.settle_many(stream)
    except MedsettleError:
        # One bad bill fails the batch before anything is settled; taken alone, the reference finds it bad.
        assert states(core) == fresh
        assert any(apply(build(policy_dict, rows, "reference"), ("presettle", b), [])[0] == "error" for b in stream)
        return
    for bill, batch_result in zip(stream, batch_results, strict=True):
        one = apply(ref, ("settle", bill), [])
        if isinstance(batch_result, SettlementRefused):
            assert one[:2] == ("refused", batch_result.code)
        else:
            assert one[0] == "ok"
            assert one[2] == batch_result.row.tolist() and one[3] == batch_result.lines.tolist()
    assert states(core) == states(ref)
    # Narrowed outputs (load runs) carry the same totals.
    narrow = build(policy_dict, rows, "core")
    totals = narrow.run_batch(
        encode_bills([parse_bill(b) for b in stream], narrow.compiled, narrow.population, narrow.admissions),
        outputs="totals",
    )
    for i, r in enumerate(batch_results):
        status = int(totals.column("status")[i])
        if isinstance(r, SettlementRefused):
            assert status != 0
        else:
            assert status == 0
            for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "psn_cash_pay", "balc"):
                assert totals.column(name)[i] == r.amount(name)
    assert totals.lines is None and states(narrow) == states(core)


def settle_then_cancel_restores_state(data, policy_dict, rows) -> None:
    history = [data.draw(bills(len(rows), i)) for i in range(data.draw(st.integers(0, 12)))]
    extra = data.draw(bills(len(rows), 99), label="bill")
    for engine in ("core", "reference"):
        s = build(policy_dict, rows, engine)
        for b in history:
            apply(s, ("settle", b), [])
        before = states(s)
        p = s.population.index_of(extra["psn_no"])
        try:
            r = s.settle(extra)
        except MedsettleError:
            assert states(s) == before
            continue
        s.cancel(r.setl_id)
        after = states(s)
        year_before = before[p].acc_year
        if year_before not in (0, int(r.row[COL["year"]])):
            continue  # the bill opened a new year: the closed year's accumulators are gone by design
        after[p].acc_year = year_before
        assert after == before, engine
