"""The validated path's quick route (engine.plainbill) settles exactly as the Bill model's way does.

Random bills, good and bad, are settled both ways on both engines: a Settler given the dict (the quick
route, falling back to the model for anything else) and one given ``parse_bill(dict)`` (the model way
only). Every outcome must agree: the same result row, line split and record fields, or the same error
with the same field; and the persons' state must be the same at the end.
"""

from __future__ import annotations

import copy
import functools
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medsettle.engine import Population, Settler, parse_bill
from medsettle.engine.bills import resolve_bill
from medsettle.engine.plainbill import BillHead, quick_resolve, validate_plain
from medsettle.errors import MedsettleError
from medsettle.policy import load_default_policy
from medsettle.policy.compile import CompiledPolicy, compile_policy
from medsettle.sim import generate_bills

POLICY = load_default_policy()


@functools.cache
def _compiled() -> CompiledPolicy:
    """POLICY compiled once for every Settler here (compiling is nearly all of a fresh Settler's cost, and a
    test makes two per change), its arrays read-only so that no settlement can change what the next one reads."""
    compiled = compile_policy(POLICY)
    for value in vars(compiled).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return compiled


def _settler(population: Population, engine: str) -> Settler:
    """A fresh Settler (fresh state) on the shared compiled POLICY."""
    return Settler(POLICY, population, engine=engine, compiled=_compiled())


@functools.cache
def _stream() -> tuple[Population, list[dict]]:
    """300 persons and 400 bills of a zipf stream, made on first use, not when pytest imports the module."""
    population = Population.generate(POLICY, 300, seed=7)
    settler = Settler(POLICY, population, engine="reference")
    stream = generate_bills(settler.compiled, population, 400, seed=8, days=400, persons="zipf")
    return population, [stream.bill_dict(i) for i in range(len(stream.batch))]


# (where, value) mutations: where is a top-level key, or ("line", key) for the first fee line.
AMOUNTS = [
    "0",
    "0.00",
    "1",
    "12.5",
    "12.50",
    "12.500",
    "12.5000",
    "12.50001",
    "-1.00",
    "-0.00",
    "abc",
    "",
    " 1.00",
    "1e3",
    "007.10",
    "99999999999",
    "2.6550",
    "0.0001",
    "1234.5678",
    "0.3333",
    "2.5005",
    "١٢.٥٠",
    "12.٥",
    "１２.50",
    "12.50\n",
    "+12.50",
    "1_000.00",
    "12,50",
    ".5",
    "5.",
    b"12.50",
    bytearray(b"1"),
    Decimal("12.50"),
    Decimal("1E+1"),
    12,
    12.5,
    True,
    None,
]
DATES = [
    "2026-03-02",
    "2026-03-02 09:00:00",
    "2026-02-30",
    "1999-01-01",
    "2026-03-02T09:00:00",
    " 2026-03-02",
    "2026-03-02 9:00:00",
    "03/02/2026",
    20260302,
    "2024-02-29",
    "2026-02-29",
    "2000-02-29",
    "2100-01-01",
    "2099-12-31 23:59:59",
    "2026-04-31",
    "2026-00-10",
    "2026-13-01",
    "2026-03-00",
    "2026-03-02 24:00:00",
    "2026-03-02 23:60:00",
    "2026-03-02 23:59:60",
    "٢٠٢٦-03-02",
    "2026-03-02\n",
]
# (places, values) pairs: every place is changed to every value of its list.
MUTATION_TABLE = [
    ([("line", "pric"), ("line", "cnt"), ("line", "det_item_fee_sumamt"), "medfee_sumamt", "saf_cash_amt"], AMOUNTS),
    (["med_type"], ["11", "41", "99", 41, 11, "", None]),
    (["hosp_lv"], ["pharmacy", "1", "3", "4", 1, 3, None]),
    (["acct_used_flag", ("line", "hosp_appr_flag")], ["0", "1", 0, 1, True, False, "yes", "2", None]),
    (["setl_time"], DATES),
    (["mdtrtarea_admvs"], ["130100", "330300", "999999", "13010", None, 130100]),
    (["psn_no", ("line", "med_list_codg")], ["NOBODY", "", None, 7, b"NOBODY"]),
    (["feedetail", "extra_key", ("line", "memo")], [[], "x", None]),
    # The caller's totals: right, or a fen off (the route checks them with its own line fee arithmetic).
    (["line total", "bill total"], [0, 1, -1]),
]
MUTATIONS = st.one_of(
    [st.tuples(st.sampled_from(places), st.sampled_from(values)) for places, values in MUTATION_TABLE]
)


def _fee(line: dict) -> int | None:
    """round(pric × cnt) in fen, half up, computed here independently; None unless both are plain."""
    try:
        return int(_exact_fen(line).quantize(Decimal(1), ROUND_HALF_UP))
    except (KeyError, TypeError, ArithmeticError, ValueError):
        return None


def _exact_fen(line: dict) -> Decimal:
    return Decimal(line["pric"]) * Decimal(line["cnt"]) * 100


def _yuan(fen: int) -> str:
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _apply(bill: dict, where, value) -> dict:
    bill = copy.deepcopy(bill)
    if where in ("line total", "bill total"):
        lines = bill.get("feedetail") if isinstance(bill.get("feedetail"), list) else []
        fees = [_fee(line) if isinstance(line, dict) else None for line in lines]
        if lines and None not in fees:
            if where == "line total":
                lines[0]["det_item_fee_sumamt"] = _yuan(fees[0] + value)
            else:
                bill["medfee_sumamt"] = _yuan(sum(fees) + value)
        return bill
    if isinstance(where, tuple) and not (isinstance(bill.get("feedetail"), list) and bill["feedetail"]):
        return bill  # no first line left to change
    target, key = (bill["feedetail"][0], where[1]) if isinstance(where, tuple) else (bill, where)
    if value is None and key in target and key != "feedetail":
        del target[key]  # absent rather than null, half the time
    else:
        target[key] = value
    return bill


def _outcome(settler: Settler, bill):
    try:
        r = settler.settle(bill)
    except MedsettleError as exc:
        return ("error", type(exc).__name__, str(exc), exc.field)
    return (
        "settled",
        r.setl_id,
        r.bill_id,
        r.psn_no,
        r.mdtrt_id,
        r.med_type,
        r.setl_time,
        r.feedetl_sns,
        r.insutype,
        r.psn_type,
        r.row.tolist(),
        None if r.lines is None else r.lines.tolist(),
    )


def test_plain_bills_take_the_quick_route_and_resolve_as_the_model_does(engine):
    """Both routes (plainbill.resolve_plain on the reference engine, medsettle._plain on the core) say yes
    to the shape counters send and resolve it as the model way does, lines included."""
    population, bills = _stream()
    settler = _settler(population, engine)
    fast = settler.fast_path()
    # The core's route is C (medsettle._plain), not the Python twin it falls back to without that module.
    assert type(fast.route.__self__).__name__ == ("PlainRoute" if engine == "core" else "PythonRoute")
    for bill in bills[:100]:
        routed = fast.route(validate_plain(bill))
        assert routed is not None, bill  # the shape counters send is the quick route's
        (person, day, med_type, tier, region, acct_flag, adm, saf_cash, n), head = routed
        model = parse_bill(bill)
        expected = resolve_bill(model, settler.compiled, population, settler.admissions)
        assert (person, day, med_type, tier, region, acct_flag, adm, saf_cash) == tuple(expected[:8])
        assert (
            fast.item_in[:n].tolist(),
            fast.pric_in[:n].tolist(),
            fast.cnt_in[:n].tolist(),
            fast.appr_in[:n].tolist(),
        ) == (expected.items, expected.prices, expected.cnts, expected.apprs)
        assert head.feedetl_sns == tuple(line.feedetl_sn or str(j + 1) for j, line in enumerate(model.feedetail))
        assert head == BillHead.of(model)
    assert quick_resolve(bills[0], settler.compiled, population, settler.admissions) is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_both_ways_agree_on_random_bills(engine, data):
    """Streams of bills with up to two random changes each: the state carries over from bill to bill."""
    population, bills = _stream()
    quick = _settler(population, engine)
    model_way = _settler(population, engine)
    for _ in range(data.draw(st.integers(1, 6))):
        bill = bills[data.draw(st.integers(0, len(bills) - 1))]
        for where, value in data.draw(st.lists(MUTATIONS, max_size=2)):
            bill = _apply(bill, where, value)
        try:
            model = parse_bill(bill)
        except MedsettleError as exc:
            expected = ("error", type(exc).__name__, str(exc), exc.field)
        else:
            expected = _outcome(model_way, model)
        assert _outcome(quick, bill) == expected, bill
    assert all(quick.engine.get_state(p) == model_way.engine.get_state(p) for p in range(len(population)))


def test_both_ways_agree_on_every_single_change(engine):
    """Every change of MUTATION_TABLE, one at a time, to bills whose first line fee has a half fen or more
    to round (so a fen-off caller total tells half-up rounding from truncation)."""
    population, bills = _stream()
    bases = [b for b in bills if _fee(b["feedetail"][0]) > _exact_fen(b["feedetail"][0])][:3]  # rounds up
    assert len(bases) == 3
    for places, values in MUTATION_TABLE:
        for where in places:
            for value in values:
                for base in bases:
                    bill = _apply(base, where, value)
                    quick = _settler(population, engine)
                    model_way = _settler(population, engine)
                    try:
                        expected = _outcome(model_way, parse_bill(bill))
                    except MedsettleError as exc:
                        expected = ("error", type(exc).__name__, str(exc), exc.field)
                    assert _outcome(quick, bill) == expected, (where, value, bill)
