"""What the fault simulator (medsettle sim) found wrong in the counter and the centre, each pinned by a test that
failed before its fix: a voucher's re-settlement or a provisional visit's forward that finds no centre mid-way is
left where it stopped (never abandoned into a second voucher), a re-settlement refused at its 1101 goes back to
pending, a 2201 answered by resume's resend is recorded before the visit goes on, no answer to the pre-settle
2206 is cash and a voucher, a full journal disk is one clear error with nothing sent, and a 3201 of a day with
only a cancel counts -1. In process: a real centre on a SQLite journal, a transport whose faults the test sets,
one virtual clock for both."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Literal

import pytest

from centre_rig import envelope
from medsettle.centre.institutions import default_institutions
from medsettle.centre.registry import Registry
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.errors import InvalidInput
from medsettle.jsontext import dumps_bytes, loads
from medsettle.ledger import SQLiteJournal
from medsettle.ledger.journaled import CANCEL, SETTLE
from medsettle.policy import load_default_policy
from medsettle.seams import Crashed, RaiseOnCrash, SeededRandomness
from medsettle.terminal import CentreUnreachable, Counter, CounterStore, Identity, Refused, SaleState
from medsettle.terminal.store import JournalUnwritable
from medsettle.timeutil import now_shanghai
from terminal_rig import FakeClock

pytestmark = pytest.mark.timeout(120)
POLICY = load_default_policy()
PHARMACY = "P13010000001"
HOSPITAL = "H13010000001"  # cash_deferred
SAF_HOSPITAL = "H13010000003"  # store_and_forward
CODES = [item.med_list_codg for item in POLICY.region("130100").catalogues[0].items if item.chrgitm_lv == "01"]
ITEMS = [
    {"med_list_codg": CODES[0], "pric": "12.50", "cnt": "2"},
    {"med_list_codg": CODES[1], "pric": "30.00", "cnt": "1"},
]
BIG = [{"med_list_codg": CODES[0], "pric": "2000.00", "cnt": "1"}]  # crosses the deductible


class FaultyTransport:
    """The centre in this process, the request's exact bytes decoded as the HTTP server decodes them and the
    answer encoded as it encodes it, with the faults the test sets: ``down`` (nothing arrives), ``unreachable``
    (infnos whose requests do not arrive), ``lose`` (infnos whose answers are lost: the centre applied them).
    ``arrived`` lists the infno of every request that reached the centre."""

    def __init__(self, centre: Centre) -> None:
        self.centre = centre
        self.down = False
        self.unreachable: set[str] = set()
        self.lose: set[str] = set()
        self.arrived: list[str] = []

    def post(self, body: bytes) -> dict:
        request = loads(body)
        infno = request["infno"]
        if self.down or infno in self.unreachable:
            raise CentreUnreachable("nobody is listening (test)")
        self.arrived.append(infno)
        answer = json.loads(dumps_bytes(self.centre.handle(request)))
        if infno in self.lose:
            raise CentreUnreachable("the answer was lost on the way back (test)")
        return answer


def fake_start() -> dt.datetime:
    """Ten minutes before now (the same day), to the second: a day's bills, on a virtual clock."""
    real = now_shanghai().replace(microsecond=0)
    return max(real.replace(hour=0, minute=0, second=1), real.replace(second=0) - dt.timedelta(minutes=10))


def before_a_next_day(start: dt.datetime) -> dt.datetime:
    """``start``, or a day earlier when its next day is in another year: a test that moves on a day stays in
    the bill's year (a voucher of last year is a manual claim)."""
    return start - dt.timedelta(days=1) if (start.month, start.day) == (12, 31) else start


class World:
    """A centre of 200 people on ``engine`` and the virtual clock it shares with its counters."""

    def __init__(self, tmp_path, engine: Literal["core", "reference"], start: dt.datetime) -> None:
        self.tmp_path, self.clock = tmp_path, FakeClock(start)
        population = Population.generate(POLICY, 200, seed=0)
        registry = Registry.generate(population)
        self.journal = SQLiteJournal(tmp_path / "centre.db")
        self.centre = Centre(
            Settler(POLICY, population, engine=engine),
            self.journal,
            default_institutions(POLICY),
            registry=registry,
            clock=self.clock,
        )
        psn_no = next(p for i, p in enumerate(population.psn_nos) if population.region_of(i) == "130100")
        self.who = Identity("02", registry.identities[psn_no].certno)
        self.transport = FaultyTransport(self.centre)

    def counter(self, code: str, name: str = "t.db") -> Counter:
        counter = Counter(
            code,
            CounterStore(self.tmp_path / name, clock=self.clock),
            self.transport,
            clock=self.clock,
            randomness=SeededRandomness(13),
            resend_for=3.0,
            crash=RaiseOnCrash(),
        )
        counter.sign_in()
        return counter

    def live_settlements(self, code: str) -> list[dict]:
        """The settlements of institution ``code`` the centre holds live (settled, not cancelled or reversed)."""
        settled, cancelled = {}, set()
        for entry in self.journal.entries():
            if entry.kind == SETTLE and entry.body.get("fixmedins_code") == code:
                settled[entry.body["setl_id"]] = entry.body
            elif entry.kind == CANCEL:
                cancelled.add(entry.body["original"])
        return [body for setl_id, body in settled.items() if setl_id not in cancelled]


@pytest.fixture()
def world(tmp_path, engine):
    world = World(tmp_path, engine, before_a_next_day(fake_start()))  # a test may move on a day
    yield world
    world.journal.close()


def visit_voucher(world: World) -> tuple[Counter, str]:
    """A hospital counter (cash_deferred) and the voucher of a visit made while the centre was away."""
    counter = world.counter(HOSPITAL)
    world.transport.down = True
    deferred = counter.visit(world.who, ITEMS)
    world.transport.down = False
    assert deferred.kind == "deferred" and deferred.voucher
    return counter, deferred.voucher


def check_refund(world: World, counter: Counter, voucher: str, refund) -> None:
    """The voucher settled once at the centre, and the refund is its fund and account share."""
    assert refund.kind == "refund" and refund.voucher == voucher
    [live] = [s for s in world.live_settlements(HOSPITAL) if s.get("deferred_voucher_no") == voucher]
    setlinfo = counter.journal.require_voucher(voucher)["setlinfo"]
    assert live["setl_id"] == setlinfo["setl_id"] == refund.setl_id
    assert Decimal(refund.refund) == Decimal(refund.fund) + Decimal(refund.account)
    assert Decimal(refund.fund) == Decimal(str(setlinfo["fund_pay_sumamt"]))
    assert Decimal(refund.account) == Decimal(str(setlinfo["acct_pay"]))
    assert Decimal(refund.medfee) == Decimal("55.00")
    assert counter.settle_voucher(voucher) == refund  # settled: the same receipt again, nothing sent
    assert counter.reconcile(detail=True)["clean"]


@pytest.mark.parametrize("step", ["2204", "2207"])
def test_a_voucher_resettled_while_the_centre_goes_away_is_left_where_it_stopped(world, step):
    counter, voucher = visit_voucher(world)
    world.transport.lose = {step}  # the centre applies it, the counter hears nothing
    with pytest.raises(CentreUnreachable):
        counter.settle_voucher(voucher)
    [only] = counter.journal.vouchers()  # no second voucher for a bill already paid in cash
    assert only["voucher"] == voucher and only["state"] == "settling"

    world.transport.lose = set()
    check_refund(world, counter, voucher, counter.settle_voucher(voucher))
    assert len(counter.journal.vouchers()) == 1


def test_a_resettlement_refused_at_its_identification_goes_back_to_pending(world):
    counter, voucher = visit_voucher(world)
    world.clock.advance(24 * 3600)  # the next day: the counter's sign_no has expired, its 1101 is refused
    with pytest.raises(Refused, match="sign_no"):
        counter.settle_voucher(voucher)
    v = counter.journal.require_voucher(voucher)
    assert v["state"] == "pending" and "sign_no" in v["err_msg"]  # not stuck in settling
    assert [p["voucher"] for p in counter.pending_vouchers()] == [voucher]

    counter.sign_in()  # the cause fixed
    check_refund(world, counter, voucher, counter.settle_voucher(voucher))


@pytest.mark.parametrize("step", ["2204", "2207"])
def test_a_provisional_visit_forwarded_while_the_centre_drops_is_forwarded_later(world, step):
    counter = world.counter(SAF_HOSPITAL, "h.db")
    assert counter.failure_policy == "store_and_forward"
    assert counter.visit(world.who, BIG).kind == "sale"  # the counter knows the patient now
    world.transport.down = True
    provisional = counter.visit(world.who, ITEMS)
    assert provisional.kind == "provisional"
    world.transport.down = False

    world.transport.lose = {step}  # the forward goes as far as ``step``, whose answer is lost
    assert counter.forward() == []
    [entry] = counter.journal.saf_entries()
    assert entry["state"] in ("queued", "forwarding") and entry["attempts"] == 1
    assert counter.journal.vouchers() == []  # no voucher: nobody waits at the counter for a forward

    world.transport.lose = set()
    [outcome] = counter.forward()
    assert outcome["state"] == "forwarded"
    [entry] = counter.journal.saf_entries()
    assert entry["state"] == "forwarded"
    forwards = [s for s in world.live_settlements(SAF_HOSPITAL) if s["setl_id"] == outcome["setl_id"]]
    assert len(forwards) == 1 and len(world.live_settlements(SAF_HOSPITAL)) == 2  # the online visit and it
    assert counter.journal.vouchers() == [] and counter.reconcile(detail=True)["clean"]


def test_a_resettlements_2201_answered_by_resume_is_recorded_before_the_visit_goes_on(world):
    counter, voucher = visit_voucher(world)
    world.transport.lose = {"2201"}  # registered at the centre, the counter hears nothing
    with pytest.raises(CentreUnreachable):
        counter.settle_voucher(voucher)
    world.transport.lose = set()

    resumed = counter.resume()  # resends the 2201, then takes the voucher's visit on
    assert resumed["answered"] == 1 and "failed" not in resumed, resumed
    v = counter.journal.require_voucher(voucher)
    assert v["state"] == "settled"
    _, resale = counter.journal.require_sale(v["resale"])
    assert resale["mdtrt_id"] and set(resale["steps"]) == {"2201", "2203", "2204", "2207"}
    check_refund(world, counter, voucher, counter.settle_voucher(voucher))


def test_no_answer_to_the_presettle_is_cash_and_a_voucher(world):
    counter = world.counter(HOSPITAL)
    world.transport.unreachable = {"2206"}
    deferred = counter.visit(world.who, ITEMS)
    assert deferred.kind == "deferred" and deferred.voucher
    assert Decimal(deferred.cash) == Decimal(deferred.medfee) == Decimal("55.00")
    assert "2207" not in world.transport.arrived  # nothing that moves money was sent
    [v] = counter.pending_vouchers()
    assert v["voucher"] == deferred.voucher and v["blocked_by"] is None  # no 2601 to wait for
    assert counter.journal.unanswered() == []  # nothing else pending
    assert [state for _sale, state, _data in counter.journal.sales()] == [SaleState.DEFERRED]
    assert world.live_settlements(HOSPITAL) == []

    world.transport.unreachable = set()
    check_refund(world, counter, deferred.voucher, counter.settle_voucher(deferred.voucher))


def test_a_full_journal_disk_is_one_clear_error_with_nothing_sent(world):
    counter = world.counter(PHARMACY)
    counter.journal.limit_size(0)
    with pytest.raises(JournalUnwritable) as unwritable:
        counter.sell(world.who, ITEMS)
    assert unwritable.value.code == "JOURNAL_UNWRITABLE" and "cannot be written" in str(unwritable.value)
    assert "2102" not in world.transport.arrived and world.live_settlements(PHARMACY) == []

    counter.journal.limit_size(None)  # room again
    sale = counter.sell(world.who, ITEMS)
    assert sale.kind == "sale" and world.transport.arrived.count("2102") == 1
    [live] = world.live_settlements(PHARMACY)
    assert live["setl_id"] == sale.setl_id


def test_a_statement_of_a_day_with_only_a_cancel_counts_minus_one(tmp_path, engine):
    yesterday = before_a_next_day(now_shanghai().replace(microsecond=0) - dt.timedelta(days=1))
    world = World(tmp_path, engine, yesterday.replace(hour=23, minute=58, second=0))
    try:
        counter = world.counter(PHARMACY)
        sold = counter.sell(world.who, ITEMS)  # yesterday
        world.clock.advance(300)  # past midnight
        counter.sign_in()
        cancelled = counter.cancel(sold.sale)  # today: the mirror of yesterday's settlement, counting -1
        today = world.clock.now().date()
        assert today == yesterday.date() + dt.timedelta(days=1)
        insutype = counter.journal.require_sale(sold.sale)[1]["insutype"]

        def statement(count: int) -> dict:
            data = {
                "insutype": insutype,
                "clr_type": "41",
                "setl_optins": "130100",
                "stmt_begndate": today.isoformat(),
                "stmt_enddate": today.isoformat(),
                "medfee_sumamt": cancelled.medfee,
                "fund_pay_sumamt": cancelled.fund,
                "acct_pay": cancelled.account,
                "fixmedins_setl_cnt": count,
            }
            sign_no = counter.journal.get_meta("sign_no", "")
            request = envelope(
                "3201",
                {"data": data},
                sign_no=sign_no,
                msgid=f"{PHARMACY}{world.clock.now():%Y%m%d%H%M%S}{9002 + count:04d}",
            )
            return json.loads(dumps_bytes(world.centre.handle(request)))

        answer = statement(-1)
        assert answer["infcode"] == 0, answer
        stmtinfo = answer["output"]["stmtinfo"]
        assert stmtinfo["stmt_rslt"] == "0" and stmtinfo["fixmedins_setl_cnt"] == -1, stmtinfo
        assert Decimal(str(stmtinfo["medfee_sumamt"])) == -Decimal("55.00")
        assert statement(0)["output"]["stmtinfo"]["stmt_rslt"] == "1"  # a count that does not agree still differs
    finally:
        world.journal.close()


def reopened(world: World, counter: Counter, code: str, name: str = "t.db", crash_at: str | None = None) -> Counter:
    """The same counter's journal opened again (after a crash), optionally armed to crash at ``crash_at``."""
    counter.journal.close()
    return Counter(
        code,
        CounterStore(world.tmp_path / name, clock=world.clock),
        world.transport,
        clock=world.clock,
        randomness=SeededRandomness(13),
        resend_for=3.0,
        crash=RaiseOnCrash(),
        crash_at=crash_at,
    )


def test_a_resettlement_whose_visit_was_settled_when_the_counter_stopped_is_recorded_by_resume(world):
    """Seed 106 of `medsettle sim run --days 2`: the power went after the re-visit's 2207 answer was recorded and
    before its receipt; resume printed the visit's receipt and left the voucher settling for good."""
    counter, voucher = visit_voucher(world)
    armed = reopened(world, counter, HOSPITAL, crash_at="settle_recorded")
    with pytest.raises(Crashed):
        armed.settle_voucher(voucher)
    restarted = reopened(world, armed, HOSPITAL)
    resumed = restarted.resume()
    assert "failed" not in resumed, resumed
    v = restarted.journal.require_voucher(voucher)
    assert v["state"] == "settled"
    check_refund(world, restarted, voucher, restarted.settle_voucher(voucher))
    restarted.journal.close()


def test_a_forward_whose_visit_was_settled_when_the_counter_stopped_is_recorded_by_the_next_forward(world):
    counter = world.counter(SAF_HOSPITAL, "h.db")
    assert counter.visit(world.who, BIG).kind == "sale"  # the counter knows the patient now
    world.transport.down = True
    assert counter.visit(world.who, ITEMS).kind == "provisional"
    world.transport.down = False
    armed = reopened(world, counter, SAF_HOSPITAL, "h.db", crash_at="settle_recorded")
    with pytest.raises(Crashed):
        armed.forward()
    restarted = reopened(world, armed, SAF_HOSPITAL, "h.db")
    resumed = restarted.resume()  # resume forwards the queue: the forward's visit, settled, is recorded
    assert "failed" not in resumed, resumed
    [entry] = restarted.journal.saf_entries()
    assert entry["state"] == "forwarded"
    forwards = [s for s in world.live_settlements(SAF_HOSPITAL) if s["setl_id"] == entry["setlinfo"]["setl_id"]]
    assert len(forwards) == 1 and len(world.live_settlements(SAF_HOSPITAL)) == 2
    assert restarted.reconcile(detail=True)["clean"]
    restarted.journal.close()


def test_a_vouchers_resettlement_is_not_cancelled_as_a_sale_of_its_own(world):
    """Found by `medsettle sim live` (seed 3, 2 counters, 4 patients): cancelling a voucher's re-settlement by
    its sale number was sent and applied, the voucher stayed "settled" and the day's 3201 saw the centre's
    mirror alone. It is refused at the counter, before anything is sent."""
    counter, voucher = visit_voucher(world)
    counter.settle_voucher(voucher)
    settled = counter.journal.sales(SaleState.DONE, SaleState.SETTLED)
    [sale] = [sale for sale, _state, data in settled if data.get("voucher") == voucher]  # not the visit paid in cash
    arrived = len(world.transport.arrived)
    with pytest.raises(InvalidInput, match=f"re-settlement of voucher {voucher}"):
        counter.cancel(sale)
    assert len(world.transport.arrived) == arrived  # nothing sent
    assert counter.journal.require_voucher(voucher)["state"] == "settled"
    assert len([s for s in world.live_settlements(HOSPITAL) if s.get("deferred_voucher_no") == voucher]) == 1
    assert counter.reconcile(detail=True)["clean"]
