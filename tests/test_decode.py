"""Batches decode back to the bills they stand for (engine/decode.py), and the reference engine settles
those bills against the policy models: encoder, decoder and compiler are checked against each other."""

import dataclasses
import datetime as dt
from decimal import Decimal

import numpy as np
import pytest

from medsettle.engine import Population, Settler
from medsettle.engine.bills import AdmissionKeys, Bill, encode_bills, parse_bill
from medsettle.engine.decode import admission_name, decode_batch
from medsettle.errors import SettlementRefused
from medsettle.policy import load_default_policy
from medsettle.policy.compile import compile_policy
from medsettle.sim import generate_bills
from medsettle.timeutil import day_number

COLUMNS_ENCODED = (
    "person",
    "day",
    "year",
    "month",
    "med_type",
    "tier",
    "treat_region",
    "acct_flag",
    "adm",
    "saf_cash",
    "line_start",
    "item",
    "pric",
    "cnt",
    "appr",
)


@pytest.fixture(scope="module")
def world():
    policy = load_default_policy()
    compiled = compile_policy(policy)
    population = Population.generate(policy, 300, seed=3)
    return policy, compiled, population


def _forwarded(batch):
    """Some bills as store-and-forward forwards (cash collected, no account), with caller totals sent."""
    saf = batch.saf_cash.copy()
    saf[::7] = np.arange(len(saf[::7])) * 137
    acct = batch.acct_flag.copy()
    acct[::7] = 0
    return dataclasses.replace(batch, saf_cash=saf, acct_flag=acct)


def test_batch_to_bills_to_batch_is_the_same_batch(world):
    policy, compiled, population = world
    batch = _forwarded(generate_bills(compiled, population, 400, days=400, start=policy.first_day_in_force()).batch)
    batch.validate(compiled, len(population))
    keys = AdmissionKeys()
    bills = decode_batch(batch, compiled, population, keys)
    again = encode_bills(bills, compiled, population, keys)
    for name in COLUMNS_ENCODED:
        assert np.array_equal(getattr(again, name), getattr(batch, name)), name
        assert getattr(again, name).dtype == getattr(batch, name).dtype, name
    assert [b.mdtrt_id for b in bills] == [admission_name(int(k)) for k in batch.adm]
    # built without validation, they are what validating them gives
    assert all(Bill.model_validate(b.model_dump()) == b for b in bills)


def test_the_callers_totals_decode_as_sent(world):
    policy, compiled, population = world
    region = compiled.region_codes[int(population.attrs[0]["region"])]
    code = next(iter(compiled.item_lookup(compiled.region_index(region), day_number(dt.date(2026, 5, 6)))))
    model = parse_bill(
        {
            "psn_no": population.psn_nos[0],
            "mdtrt_id": "V1",
            "med_type": "11",
            "setl_time": "2026-05-06",
            "hosp_lv": "2",
            "medfee_sumamt": "12.35",
            "acct_used_flag": 0,
            "saf_cash_amt": "2.00",
            "feedetail": [{"med_list_codg": code, "pric": "12.3456", "cnt": "1", "det_item_fee_sumamt": "12.35"}],
        }
    )
    keys = AdmissionKeys()
    batch = encode_bills([model], compiled, population, keys)
    batch = dataclasses.replace(batch, caller_medfee=np.array([1235]), caller_fee=np.array([1235]))
    (decoded,) = decode_batch(batch, compiled, population, AdmissionKeys())
    assert decoded.medfee_sumamt == Decimal("12.35") and decoded.feedetail[0].det_item_fee_sumamt == Decimal("12.35")
    assert decoded.saf_cash_amt == Decimal("2.00") and decoded.feedetail[0].pric == Decimal("12.3456")
    assert decoded.psn_no == model.psn_no and decoded.med_type == "11" and decoded.hosp_lv == "2"
    assert decoded.bill_date == model.bill_date and decoded.mdtrtarea_admvs == region
    assert decoded.feedetail[0].med_list_codg == code and decoded.acct_used_flag is False


def test_the_reference_settles_against_the_models_not_the_compiled_tables(world):
    """A compiled catalogue gone wrong (every item's class and cap, as an encoder or compiler bug would
    leave them) changes what the core pays and nothing of what the reference pays."""
    policy, compiled, population = world
    batch = generate_bills(compiled, population, 300, days=60, start=policy.first_day_in_force()).batch
    broken = dataclasses.replace(
        compiled, item_class=np.full_like(compiled.item_class, 3), item_cap=np.zeros_like(compiled.item_cap)
    )
    results = {}
    for engine in ("core", "reference"):
        for name, tables in (("right", compiled), ("broken", broken)):
            settler = Settler(policy, population, engine=engine, compiled=tables)
            results[engine, name] = settler.run_batch(batch).out
    assert np.array_equal(results["core", "right"], results["reference", "right"])
    assert np.array_equal(results["reference", "broken"], results["reference", "right"])
    assert not np.array_equal(results["core", "broken"], results["core", "right"])


def test_an_encoder_that_resolves_the_wrong_item_is_seen_by_the_reference(world):
    """Parsed bills reach the reference engine as bills: an encoder resolving each code to another item of
    the same catalogue (a bug both engines would otherwise share) changes the core's answers only."""
    policy, compiled, population = world
    batch = generate_bills(compiled, population, 200, days=30, start=policy.first_day_in_force()).batch
    bills = decode_batch(batch, compiled, population, AdmissionKeys())
    bills = [b.model_copy(update={"mdtrt_id": f"V{i}"}) for i, b in enumerate(bills)]  # real mdtrt_ids
    lookup = compiled.item_lookup

    def rotated(region, day):
        found = lookup(region, day)
        if not found:
            return found
        codes = list(found)
        return {code: found[codes[(k + 1) % len(codes)]] for k, code in enumerate(codes)}

    answers = {}
    for engine in ("core", "reference"):
        for name in ("right", "wrong"):
            wrong = dataclasses.replace(compiled)
            if name == "wrong":
                wrong.item_lookup = rotated
            settler = Settler(policy, population, engine=engine, compiled=wrong)
            answers[engine, name] = [
                s.code if isinstance(s, SettlementRefused) else s.row.tolist() for s in settler.settle_many(bills)
            ]
    assert answers["core", "right"] == answers["reference", "right"]
    assert answers["reference", "wrong"] == answers["reference", "right"]
    assert answers["core", "wrong"] != answers["core", "right"]


def test_the_reference_decodes_persons_of_a_benchmark_population_without_an_id_table():
    """A population without string ids (benchmarks of 10^8 persons): bills name persons by their made-up
    ids and the reference engine finds their rows without building a dict of every id."""
    policy = load_default_policy()
    population = Population.generate(policy, 50, seed=4, with_psn_nos=False)
    core = Settler(policy, population, engine="core")
    batch = generate_bills(core.compiled, population, 100, start=policy.first_day_in_force()).batch
    reference = Settler(policy, population, engine="reference", compiled=core.compiled)
    assert np.array_equal(reference.run_batch(batch).out, core.run_batch(batch).out)
    assert population._index is None  # what the test is about: no id table was made
