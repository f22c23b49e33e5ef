"""The idempotency window (docs/security.md 'Memory'): what the centre holds of each answer, and that a
resend is answered the same whether the answer is held, made again from its record, or read back from the
journal once its window has passed, before and after a restart.

A settlement's answer is never stored: it is made again from its record with what each capped fund could
still pay just after it (crt_payb_lmt_amt), which later settlements of the same person move. Any other
answer (a registration, a refusal, a sign-in) is held as text for the window, then leaves memory; its
request digest stays, so a reused msgid is still refused.
"""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from medsettle.centre.answers import IDEMPOTENCY_WINDOW, AnswerStore, Kept
from medsettle.centre.institutions import default_institutions
from medsettle.centre.registry import Registry
from medsettle.centre.service import Centre
from medsettle.cli import main
from medsettle.cli.serve import Duration
from medsettle.engine import Population, Settler
from medsettle.ledger import SQLiteJournal
from medsettle.policy import load_default_policy
from medsettle.timeutil import SHANGHAI

POLICY = load_default_policy()
PHARMACY, HOSPITAL = "P13010000001", "H13010000001"
CODE = POLICY.region("130100").catalogues[0].items[0].med_list_codg
START = dt.datetime(2026, 3, 2, 10, 0, 0, tzinfo=SHANGHAI)
KEPT_FIELDS = ("infcode", "err_msg", "warn_msg", "output")  # what a stored answer keeps (the rest is stamped anew)


class FakeClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


def fresh_registry() -> Registry:
    """Each centre its own (a card event changes it; a restarted centre rebuilds it from the journal)."""
    return Registry.generate(Population.generate(POLICY, 300, seed=0))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return fresh_registry()


class Counter:
    """One in-process centre on a SQLite journal and a fake clock, and the requests of a counter."""

    def __init__(self, engine: str, db, clock: FakeClock) -> None:
        self.registry = fresh_registry()
        self.clock = clock
        self.journal = SQLiteJournal(db, clock=clock)  # its entries are stamped by the same clock
        settler = Settler(POLICY, self.registry.population, engine=engine)
        self.centre = Centre(settler, self.journal, default_institutions(POLICY), self.registry, clock=clock)
        self.sign_no: dict[str, str] = {}

    def close(self) -> None:
        self.journal.close()

    def send(self, infno: str, msgid: str, input_: dict, code: str = PHARMACY) -> dict:
        body = {"infno": infno, "msgid": msgid, "fixmedins_code": code, "insuplc_admdvs": "130100", "input": input_}
        if infno != "9001":
            body["sign_no"] = self.sign_no[code]
        return self.centre.handle(body)

    def sign_in(self, msgid: str, code: str = PHARMACY) -> None:
        answer = self.send("9001", msgid, {"signIn": {"opter_no": "1"}}, code)
        assert answer["infcode"] == 0, answer
        self.sign_no[code] = answer["output"]["signinoutb"]["sign_no"]

    def card(self, psn: str) -> dict:
        card = self.registry.cards[self.registry.cards_of[psn][0]]
        return {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}

    def sale(self, msgid: str, psn: str, price: str, card: dict | None = None) -> dict:
        data = {"psn_no": psn, **(card or self.card(psn)), "med_type": "41", "acct_used_flag": "1"}
        line = {"feedetl_sn": "1", "med_list_codg": CODE, "pric": price, "cnt": "1"}
        return self.send("2102", msgid, {"data": data, "feedetail": [line]})

    def register(self, msgid: str, psn: str) -> dict:
        data = {"psn_no": psn, "begntime": "2026-03-02 09:30:00", **self.card(psn), "ipt_otp_no": "OP1"}
        return self.send("2201", msgid, {"data": data}, HOSPITAL)

    def held_as_text(self, code: str, msgid: str) -> bool:
        stored = self.centre._answers._find(code, msgid)
        assert stored is not None, f"{code} {msgid} is not indexed"
        return isinstance(stored[1], bytes)


def kept(answer: dict) -> dict:
    return {key: answer[key] for key in KEPT_FIELDS}


def employees(registry: Registry) -> list[str]:
    population = registry.population
    described = (population.describe(i) for i in range(len(population)))
    return [str(d["psn_no"]) for d in described if d["insuplc_admdvs"] == "130100" and d["insutype"] == "310"]


def test_resends_past_the_window_are_answered_as_first_from_the_journal_and_reused_msgids_refused(
    engine, registry, tmp_path
):
    clock = FakeClock(START)
    counter = Counter(engine, tmp_path / "centre.db", clock)
    psn, lost_one = employees(registry)[:2]
    counter.sign_in("S1")
    counter.sign_in("S1H", HOSPITAL)
    sold = counter.sale("M1", psn, "30.00")
    registered = counter.register("M2", psn)
    lost_card = counter.card(lost_one)
    counter.centre.card_event(lost_card["mdtrt_cert_no"], "lost")
    refused = counter.sale("M3", lost_one, "5.00", lost_card)
    assert sold["infcode"] == 0 and registered["infcode"] == 0, (sold, registered)
    assert refused["infcode"] == -1 and refused["err_msg"].startswith("CARD_LOST"), refused
    firsts = {"M1": sold, "M2": registered, "M3": refused}
    codes = {"M1": PHARMACY, "M2": HOSPITAL, "M3": PHARMACY}
    # A settlement's answer is never held; the others are, within the window.
    assert not counter.held_as_text(PHARMACY, "M1")
    assert counter.held_as_text(HOSPITAL, "M2") and counter.held_as_text(PHARMACY, "M3")

    clock.at += dt.timedelta(seconds=IDEMPOTENCY_WINDOW + 3600)  # past the window: a new day's sign-in
    counter.sign_in("S2")
    counter.sign_in("S2H", HOSPITAL)
    for msgid in ("M2", "M3"):  # left memory; the digest stays indexed
        assert not counter.held_as_text(codes[msgid], msgid)
        assert isinstance(counter.centre._answers._find(codes[msgid], msgid)[1], Kept)
    assert counter.held_as_text(PHARMACY, "S2")

    assert kept(counter.sale("M1", psn, "30.00")) == kept(sold)
    assert kept(counter.register("M2", psn)) == kept(registered)
    assert kept(counter.sale("M3", lost_one, "5.00", lost_card)) == kept(refused)
    reused = counter.register("M2", employees(registry)[2])
    assert reused["infcode"] == -1 and "already used for another request" in reused["err_msg"], reused
    reversal = counter.send("2601", "R1", {"data": {"psn_no": psn, "omsgid": "M2", "oinfno": "2201"}}, HOSPITAL)
    assert reversal["output"]["data"]["rvs_rslt"] == "reversed", reversal
    counter.close()

    # After a restart, what the journal holds from before the window is indexed only, and answered the same.
    restarted = Counter(engine, tmp_path / "centre.db", clock)
    for msgid in firsts:
        assert not restarted.held_as_text(codes[msgid], msgid)
    restarted.sign_in("S3")
    restarted.sign_in("S3H", HOSPITAL)
    assert kept(restarted.sale("M1", psn, "30.00")) == kept(sold)
    assert kept(restarted.register("M2", psn)) == kept(registered)
    assert kept(restarted.sale("M3", lost_one, "5.00", lost_card)) == kept(refused)
    assert restarted.held_as_text(HOSPITAL, "R1")  # the 2601 was made within the window: held
    restarted.close()


def test_a_settlement_resent_after_later_ones_is_answered_with_what_the_funds_could_pay_then(
    engine, registry, tmp_path
):
    """crt_payb_lmt_amt is what each fund could still pay just after the settlement: the accumulators have
    moved on by the time a resend comes, and the answer made again from the record must not follow them."""
    clock = FakeClock(START)
    counter = Counter(engine, tmp_path / "centre.db", clock)
    psn = employees(registry)[3]
    counter.sign_in("S1")
    answers = [counter.sale(f"M{n}", psn, price) for n, price in enumerate(("900.00", "800.00", "700.00"))]
    assert all(a["infcode"] == 0 for a in answers), answers
    rooms = [[row["crt_payb_lmt_amt"] for row in a["output"]["setldetail"]] for a in answers]
    assert len({str(r) for r in rooms}) > 1, "the sales must move what a fund may still pay"
    for n, first in enumerate(answers):
        assert kept(counter.sale(f"M{n}", psn, ("900.00", "800.00", "700.00")[n])) == kept(first)
    counter.close()
    restarted = Counter(engine, tmp_path / "centre.db", clock)
    restarted.sign_in("S2")
    for n, first in enumerate(answers):
        assert kept(restarted.sale(f"M{n}", psn, ("900.00", "800.00", "700.00")[n])) == kept(first)
    restarted.close()


def test_the_window_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        AnswerStore(None, None, window=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0d", "2 weeks", "-1h", "1.5d"])
def test_serve_refuses_a_window_that_is_not_a_positive_duration_before_opening_a_journal(value, tmp_path):
    result = CliRunner().invoke(
        main, ["serve", "--port", "0", "--data-dir", str(tmp_path / "data"), "--idempotency-window", value]
    )
    assert result.exit_code == 2, result.output
    assert "--idempotency-window" in result.output and "positive duration" in result.output, result.output
    assert not (tmp_path / "data").exists()


def test_serve_reads_the_window_in_its_units():
    assert [Duration().convert(v, None, None) for v in ("90s", "30m", "36h", "2d")] == [90, 1800, 129_600, 172_800]
