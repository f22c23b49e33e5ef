"""The counter on its seams: a virtual clock (the resend loop's back-off advances it, nothing really sleeps), a
seeded random source (the back-off's jitter), an in-memory transport that hands the journaled bytes to a real
centre's ``handle`` in this process, and a crash hook that raises at a crash point, then a restarted counter.
Also: the sale states' transitions are checked where a state is written, old journals open and resume, a
resume that cannot finish a step says so, and no module of the counter reaches the clock, randomness, process
exit or SQL except through its seams and its journal."""

from __future__ import annotations

import ast
import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import pytest

from medsettle.centre.institutions import default_institutions
from medsettle.centre.registry import Registry
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.jsontext import dumps_bytes, loads
from medsettle.ledger import SQLiteJournal
from medsettle.policy import load_default_policy
from medsettle.seams import Crashed, RaiseOnCrash, SeededRandomness
from medsettle.terminal import CentreUnreachable, Counter, CounterStore, Identity
from medsettle.terminal.states import TRANSITIONS, IllegalTransition, SaleState
from medsettle.timeutil import now_shanghai
from terminal_rig import FakeClock

pytestmark = pytest.mark.timeout(120)
POLICY = load_default_policy()
PHARMACY = "P13010000001"
CODES = [item.med_list_codg for item in POLICY.region("130100").catalogues[0].items if item.chrgitm_lv == "01"]
ITEMS = [
    {"med_list_codg": CODES[0], "pric": "12.50", "cnt": "2"},
    {"med_list_codg": CODES[1], "pric": "30.00", "cnt": "1"},
]
SEED = 13
TERMINAL = Path(__file__).resolve().parents[1] / "src" / "medsettle" / "terminal"


class MemoryTransport:
    """The centre in this process: the request's exact bytes decoded as the HTTP server decodes them, the
    answer encoded as it encodes it. ``lose`` names infnos whose answers are lost (the centre applies the
    request, the counter hears nothing) ``lose_times`` times each; ``posts`` lists (msgid, bytes, fake time)."""

    def __init__(self, centre: Centre, clock: FakeClock) -> None:
        self.centre, self.clock = centre, clock
        self.lose: dict[str, int] = {}
        self.posts: list[tuple[str, bytes, str]] = []

    def post(self, body: bytes) -> dict:
        request = loads(body)
        self.posts.append((request["msgid"], body, f"{self.clock.now():%Y%m%d%H%M%S}"))
        answer = json.loads(dumps_bytes(self.centre.handle(request)))
        if self.lose.get(request["infno"], 0) > 0:
            self.lose[request["infno"]] -= 1
            raise CentreUnreachable("the answer was lost on the way back")
        return answer


@pytest.fixture()
def world(tmp_path, engine):
    """A centre of 200 people on ``engine``, and one of them insured in 130100, identified by ID number."""
    population = Population.generate(POLICY, 200, seed=0)
    registry = Registry.generate(population)
    journal = SQLiteJournal(tmp_path / "centre.db")
    centre = Centre(
        Settler(POLICY, population, engine=engine), journal, default_institutions(POLICY), registry=registry
    )
    psn_no = next(p for i, p in enumerate(population.psn_nos) if population.region_of(i) == "130100")
    yield centre, Identity("02", registry.identities[psn_no].certno)
    journal.close()


def fake_start():
    """Ten minutes before now (the same day), to the second: distinguishable from the real clock."""
    real = now_shanghai().replace(microsecond=0)
    return max(real.replace(hour=0, minute=0, second=1), real.replace(second=0) - dt.timedelta(minutes=10))


def open_counter(path, transport, clock, **kwargs) -> Counter:
    return Counter(
        PHARMACY,
        CounterStore(path, clock=clock),
        transport,
        clock=clock,
        randomness=SeededRandomness(SEED),
        resend_for=3.0,
        **kwargs,
    )


def test_a_sale_a_lost_answer_and_a_reversal_on_a_virtual_clock(world, tmp_path):
    centre, who = world
    clock = FakeClock(fake_start())
    transport = MemoryTransport(centre, clock)
    counter = open_counter(tmp_path / "t.db", transport, clock)
    counter.sign_in()

    online = counter.sell(who, ITEMS)
    assert online.kind == "sale" and online.setl_id and clock.sleeps == []

    transport.lose = {"2102": 1}  # the settle's answer is lost once: resent unchanged, answered
    started = time.monotonic()
    resent = counter.sell(who, ITEMS)
    assert resent.kind == "sale" and resent.setl_id != online.setl_id
    jitter = SeededRandomness(SEED)
    assert clock.sleeps == [0.05 * jitter.uniform(0.5, 1.5)]  # the back-off's jitter is the seeded source's
    settles = [(msgid, body) for msgid, body, _ in transport.posts if b'"infno": "2102"' in body]
    assert settles[-1] == settles[-2]  # the same msgid and the same bytes

    transport.lose = {"2102": 99}  # the patient cannot wait: abandoned, a 2601 reverses what arrived
    before = clock.monotonic()
    deferred = counter.sell(who, ITEMS)
    assert deferred.kind == "deferred" and deferred.voucher
    assert 3.0 - 1.0 <= clock.monotonic() - before <= 3.0  # resent for resend_for seconds of the virtual clock
    assert time.monotonic() - started < 2.5  # ... and none of the real one
    [voucher] = counter.pending_vouchers()
    assert voucher["blocked_by"] is None  # the 2601 was answered at once: the voucher may be settled
    abandoned = [msgid for msgid, body, _ in transport.posts if b'"infno": "2102"' in body][-1]
    reversal = [json.loads(body) for _, body, _ in transport.posts if b'"infno": "2601"' in body]
    assert len(reversal) == 1 and reversal[0]["input"]["data"]["omsgid"] == abandoned

    transport.lose = {}
    refund = counter.settle_voucher(deferred.voucher)
    assert refund.kind == "refund" and refund.voucher == deferred.voucher
    assert counter.reconcile(detail=True)["clean"]  # three sales paid once each; the reversed one on both sides

    # every msgid is the counter's: its code, the virtual clock's second when it was written, its sequence
    first_posts: dict[str, str] = {}
    for msgid, _body, when in transport.posts:
        first_posts.setdefault(msgid, when)
    real_second = f"{now_shanghai():%Y%m%d%H%M%S}"
    for msgid, when in first_posts.items():
        assert msgid.startswith(PHARMACY) and msgid[len(PHARMACY) : -4] == when != real_second, (msgid, when)
    sequence = [int(msgid[-4:]) for msgid in first_posts]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)


@pytest.mark.parametrize("point", ["settle_written", "settle_sent", "settle_recorded"])
def test_a_crash_that_raises_and_a_restarted_counter_finish_the_sale_once(world, tmp_path, point):
    centre, who = world
    clock = FakeClock(fake_start())
    transport = MemoryTransport(centre, clock)
    counter = open_counter(tmp_path / "t.db", transport, clock, crash=RaiseOnCrash(), crash_at=point)
    counter.sign_in()
    with pytest.raises(Crashed) as crashed:
        counter.sell(who, ITEMS)
    assert crashed.value.point == point
    counter.journal.close()

    restarted = open_counter(tmp_path / "t.db", transport, clock)
    resumed = restarted.resume()
    assert resumed["answered"] + resumed["receipts"] == 1 and "failed" not in resumed, resumed
    [(sale, state, data)] = restarted.journal.sales()
    assert state is SaleState.DONE and data["receipt"]["setl_id"] == data["setlinfo"]["setl_id"]
    settles = {msgid for msgid, body, _ in transport.posts if b'"infno": "2102"' in body}
    assert len(settles) == 1  # never a second settle: the same msgid resent
    assert restarted.reconcile(detail=True)["clean"]  # the centre holds exactly the one settlement
    assert restarted.resume() == {"answered": 0, "still_unanswered": 0, "vouchers_made": 0, "receipts": 0}


def test_a_resume_that_cannot_finish_a_step_says_what_failed_and_goes_on(world, tmp_path):
    centre, who = world
    nine_days_ago = FakeClock(fake_start() - dt.timedelta(days=9))
    old = open_counter(tmp_path / "t.db", MemoryTransport(centre, nine_days_ago), nine_days_ago)
    outside = old.sell(None, ITEMS)  # equipment failure nine days ago: cash against a voucher
    old.journal.close()

    clock = FakeClock(fake_start())
    transport = MemoryTransport(centre, clock)
    for crash_at, step in (
        ("voucher_settle_written", lambda c: c.settle_voucher(outside.voucher, who)),
        ("settle_written", lambda c: c.sell(who, ITEMS)),
    ):
        counter = open_counter(tmp_path / "t.db", transport, clock, crash=RaiseOnCrash(), crash_at=crash_at)
        counter.sign_in()
        with pytest.raises(Crashed):
            step(counter)  # its 2102 written, not sent: the crash
        counter.journal.close()

    restarted = open_counter(tmp_path / "t.db", transport, clock)
    resumed = restarted.resume()  # the voucher's 2102 answered WINDOW_EXPIRED: a manual claim now
    assert resumed["answered"] == 2
    [line] = resumed["failed"]
    assert outside.voucher in line and "manual claim" in line and "WINDOW_EXPIRED" in line, line
    assert restarted.journal.voucher(outside.voucher)["state"] == "manual_claim"
    [(_sale, state, _data)] = [row for row in restarted.journal.sales() if not row[2].get("voucher")]
    assert state is SaleState.DONE  # the sale after it was finished all the same


def test_an_illegal_transition_raises_and_writes_nothing(tmp_path):
    journal = CounterStore(tmp_path / "t.db")
    with journal.transaction() as db:
        journal.put_sale(db, "SALE1", SaleState.NEW, {"n": 1})
    for illegal in (SaleState.DONE, SaleState.CANCELLED, SaleState.SETTLED):
        with pytest.raises(IllegalTransition, match="SALE1"), journal.transaction() as db:
            journal.put_sale(db, "SALE1", illegal, {"n": 2})
        assert journal.sale("SALE1") == (SaleState.NEW, {"n": 1})
    with journal.transaction() as db:
        journal.put_sale(db, "SALE1", SaleState.REFUSED, {"n": 3})
    with pytest.raises(IllegalTransition), journal.transaction() as db:  # a refusal is final
        journal.put_sale(db, "SALE1", SaleState.DEFERRED, {"n": 4})
    with pytest.raises(IllegalTransition), journal.transaction() as db:  # nothing begins but as new
        journal.put_sale(db, "SALE2", SaleState.SETTLING, {})
    assert journal.sale("SALE2") is None
    assert set(TRANSITIONS) == {None, *SaleState}  # every state says what may follow it


STORED = [
    "new",
    "identified",
    "settling",
    "settled",
    "done",
    "deferred",
    "provisional",
    "cancelling",
    "cancelled",
    "refused",
    "aborted",
    "visit 2201",
    "visit 2203",
    "visit 2204",
    "visit 2207",
    "stay 2401",
    "stay 2301#2",
    "stay 2304#1",
    "stay 2305#S1",
    "stay 2402",
    "stay deferred",
]  # every state string journals have held


def old_journal(path, states, data: dict) -> None:
    """A journal as the counter has always written it: its tables, and a sale row per stored state."""
    CounterStore(path).close()
    with sqlite3.connect(path) as db:
        for n, state in enumerate(states):
            db.execute(
                "INSERT INTO sales VALUES (?, ?, ?, ?)",
                (f"SALE{n:08d}", state, json.dumps(data), "2026-01-05T02:00:00.000+00:00"),
            )


def stored_states(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT state FROM sales ORDER BY rowid")]


def test_every_stored_state_reads_back_and_is_written_back_the_same(tmp_path):
    path = tmp_path / "old.db"
    old_journal(path, STORED, {"n": 0})
    journal = CounterStore(path)
    states = [state for _sale, state, _data in journal.sales()]
    assert states == [SaleState.parse(s) for s in STORED] and all(isinstance(s, SaleState) for s in states)
    assert [sale for sale, _, _ in journal.sales(SaleState.STAY_STEP)] == [f"SALE{n:08d}" for n in range(15, 20)]
    for n, stored in enumerate(STORED):  # each state written again (its data changed): the same string
        step = stored.removeprefix("stay ") if states[n] is SaleState.STAY_STEP else None
        with journal.transaction() as db:
            journal.put_sale(db, f"SALE{n:08d}", states[n], {"n": 1}, step=step)
    assert stored_states(path) == STORED


def test_a_journal_written_before_resumes(world, tmp_path):
    """A sale an old counter left ``new`` (it crashed before the settle was written) becomes a voucher."""
    centre, _who = world
    path = tmp_path / "old.db"
    line = {
        "feedetl_sn": "1",
        "med_list_codg": CODES[0],
        "pric": "12.50",
        "cnt": "2",
        "fee_ocur_time": "2026-01-05 10:00:00",
    }
    old_journal(
        path,
        ["new"],
        {"identity": None, "lines": [line], "bill_time": line["fee_ocur_time"], "medfee": "25.00", "acct_used": True},
    )
    clock = FakeClock(fake_start())
    counter = Counter(PHARMACY, CounterStore(path), MemoryTransport(centre, clock), clock=clock)
    assert counter.resume()["vouchers_made"] == 1
    assert stored_states(path) == ["deferred"] and counter.pending_vouchers()[0]["medfee"] == "25.00"


def _calls(tree: ast.AST) -> set[str]:
    """Every dotted name called in a module (``time.sleep``, ``db.execute``, ...)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func, parts = node.func, []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            if isinstance(func, ast.Name):
                names.add(".".join([func.id, *reversed(parts)]))
            elif parts:
                names.add("." + ".".join(reversed(parts)))
    return names


def test_the_counter_reaches_time_randomness_exit_and_sql_only_through_its_seams_and_store():
    forbidden = ("time.", "random.", "secrets.", "os._exit", "now_shanghai", "datetime.now", "dt.datetime.now")
    for module in sorted(TERMINAL.glob("*.py")):
        tree = ast.parse(module.read_text())
        calls = _calls(tree)
        assert not [c for c in calls if c.startswith(forbidden)], module.name
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not imported & {"time", "random", "secrets"}, module.name
        if module.name != "store.py":
            assert not [c for c in calls if c.endswith((".execute", ".executescript", ".executemany"))], module.name
