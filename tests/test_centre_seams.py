"""The centre on its seams: one thread, a fake clock, a seeded random source, a journal whose commits land
when the test says so.

The fault simulator drives the centre this way: no event loop, no thread pool, no wall clock. A 2601 of a
message whose answer is not yet durable must not wait on a thread (there is only one): its answer is
chained to the original's and resolves when the commits land. The times a centre writes (sign_no,
sign_time, setl_time, answers' times, journal rows) and its QR tokens come from the seams it was given.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import signal
import sqlite3
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from centre_rig import id_certificate
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.jsontext import dumps, loads
from medsettle.ledger import SQLiteJournal, open_journal
from medsettle.ledger.journal import Entry
from medsettle.policy import load_default_policy
from medsettle.seams import SeededRandomness
from medsettle.timeutil import SHANGHAI

POLICY = load_default_policy()
PHARMACY = "P13010000001"
SRC = Path(__file__).resolve().parent.parent / "src" / "medsettle"
CODE = POLICY.region("130100").catalogues[0].items[0].med_list_codg


class FakeClock:
    """A clock that moves only when the test moves it."""

    def __init__(self, at: dt.datetime):
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def time(self) -> float:
        return self.at.timestamp()

    def monotonic(self) -> float:
        return self.at.timestamp()

    def sleep(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


class HeldJournal:
    """An in-memory journal whose appends become durable only when :meth:`land` is called, on the
    caller's thread: no writer thread, so everything the centre does happens on the test's thread."""

    def __init__(self) -> None:
        self.rows: list[Entry] = []
        self.queued: list[tuple[tuple, Future]] = []

    def claim_regions(self, regions: list[str]) -> None:
        pass

    def append_future(self, kind: str, region: str, key: str, body: dict) -> Future:
        future: Future = Future()
        self.queued.append(((kind, region, key, dumps(body)), future))
        return future

    def land(self) -> int:
        """Commit what is queued now (entries queued while landing wait for the next call)."""
        group, self.queued = self.queued, []
        for (kind, region, key, body), future in group:
            self.rows.append(Entry(len(self.rows) + 1, dt.datetime(2026, 3, 2), kind, region, key, loads(body)))
            future.set_result(len(self.rows))
        return len(group)

    def entries(self, after: int = 0):
        return iter(self.rows[after:])

    def find(self, kind: str, key: str) -> Entry | None:
        return next((e for e in self.rows if e.kind == kind and e.key == key), None)

    def count(self) -> int:
        return len(self.rows)


def persons_of(population, region="130100"):
    return [p for i, p in enumerate(population.psn_nos) if population.region_of(i) == region]


def sale(sign_no, msgid, psn):
    return {
        "infno": "2102",
        "msgid": msgid,
        "fixmedins_code": PHARMACY,
        "sign_no": sign_no,
        "input": {
            "data": {"psn_no": psn, **id_certificate(psn, 200), "med_type": "41", "acct_used_flag": "1"},
            "feedetail": [
                {
                    "feedetl_sn": "1",
                    "med_list_codg": CODE,
                    "pric": "3.00",
                    "cnt": "1",
                    "fee_ocur_time": "2026-03-02 09:58:00",
                }
            ],
        },
    }


def sign_in(msgid="SIGN"):
    return {"infno": "9001", "msgid": msgid, "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}


class no_blocking:
    """Fail (instead of hanging for ever) if the block takes longer than a few seconds: on one thread,
    a wait for a Future that only this thread can complete never ends."""

    def __enter__(self):
        def stuck(signum, frame):
            raise AssertionError("the centre blocked the only thread")

        self.previous = signal.signal(signal.SIGALRM, stuck)
        signal.alarm(5)
        return self

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def test_a_2601_of_an_answer_still_pending_resolves_on_one_thread_when_the_commit_lands(engine):
    assert threading.current_thread() is threading.main_thread()  # SIGALRM is delivered to the main thread
    journal = HeldJournal()
    population = Population.generate(POLICY, 200, seed=0)
    clock = FakeClock(dt.datetime(2026, 3, 2, 14, 15, 16, tzinfo=SHANGHAI))
    centre = Centre(
        Settler(POLICY, population, engine=engine),
        journal,
        default_institutions(POLICY),
        clock=clock,
        randomness=SeededRandomness(1),
    )
    threads = threading.active_count()
    with no_blocking():
        signed = centre.submit(sign_in())
        assert not signed.done()  # no answer before its entry is durable
        journal.land()
        sign_no = signed.result(timeout=0)["output"]["signinoutb"]["sign_no"]
        psn = persons_of(population)[0]
        settled = centre.submit(sale(sign_no, "M1", psn))
        reversal = centre.submit(
            {
                "infno": "2601",
                "msgid": "R1",
                "fixmedins_code": PHARMACY,
                "sign_no": sign_no,
                "input": {"data": {"psn_no": psn, "omsgid": "M1", "oinfno": "2102"}},
            }
        )
        assert not settled.done() and not reversal.done()
        assert journal.land() == 1  # the sale lands; the 2601 is applied now and queues its own entries
        assert settled.done() and not reversal.done()
        assert journal.land() == 2  # the cancel mirror and the reversal's answer
        answer = reversal.result(timeout=0)
    assert threading.active_count() == threads  # nothing ran on a thread of its own
    assert answer["infcode"] == 0, answer
    data = answer["output"]["data"]
    setl_id = settled.result(timeout=0)["output"]["setlinfo"]["setl_id"]
    assert data["rvs_rslt"] == "reversed" and data["reversed_setl_id"] == setl_id
    assert centre.settler.records[setl_id].cancelled_by == data["setl_id"]
    with no_blocking():  # the same 2601 again: its stored answer, at once
        again = centre.submit(
            {
                "infno": "2601",
                "msgid": "R2",
                "fixmedins_code": PHARMACY,
                "sign_no": sign_no,
                "input": {"data": {"psn_no": psn, "omsgid": "M1", "oinfno": "2102"}},
            }
        )
        journal.land()
        assert again.result(timeout=0)["output"] == answer["output"]


def test_a_2601_chained_to_an_original_whose_journal_failed_answers_unavailable(engine):
    """If the original's journal entry fails, the original was never applied for good: the 2601 chained
    to it answers as the centre's fail-stop demands (unavailable), on the same thread."""
    journal = HeldJournal()
    population = Population.generate(POLICY, 200, seed=0)
    centre = Centre(
        Settler(POLICY, population, engine=engine),
        journal,
        default_institutions(POLICY),
        clock=FakeClock(dt.datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI)),
    )
    with no_blocking():
        signed = centre.submit(sign_in())
        journal.land()
        sign_no = signed.result(timeout=0)["output"]["signinoutb"]["sign_no"]
        psn = persons_of(population)[0]
        settled = centre.submit(sale(sign_no, "M1", psn))
        reversal = centre.submit(
            {
                "infno": "2601",
                "msgid": "R1",
                "fixmedins_code": PHARMACY,
                "sign_no": sign_no,
                "input": {"data": {"psn_no": psn, "omsgid": "M1", "oinfno": "2102"}},
            }
        )
        ((_, failing),) = journal.queued
        journal.queued = []
        failing.set_exception(OSError("disk full"))
        assert settled.result(timeout=0)["err_msg"].startswith("CENTRE_UNAVAILABLE")
        assert reversal.result(timeout=0)["err_msg"].startswith("CENTRE_UNAVAILABLE")


def journal_times(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {at for (at,) in conn.execute("SELECT at FROM journal")}
    finally:
        conn.close()


def test_times_and_qr_tokens_come_from_the_centres_clock_and_random_source(tmp_path, engine):
    at = dt.datetime(2026, 3, 2, 14, 15, 16, tzinfo=SHANGHAI)
    clock = FakeClock(at)
    population = Population.generate(POLICY, 200, seed=0)
    psn = persons_of(population)[0]
    tokens = []
    for run in range(2):  # the same seed twice: the same tokens
        path = tmp_path / f"centre{run}.db"
        clock.at = at
        with open_journal(str(path), clock=clock) as journal:
            centre = Centre(
                Settler(POLICY, Population.generate(POLICY, 200, seed=0), engine=engine),
                journal,
                default_institutions(POLICY),
                clock=clock,
                randomness=SeededRandomness(42),
            )
            signed = centre.handle(sign_in())
            info = signed["output"]["signinoutb"]
            assert info["sign_time"] == "2026-03-02 14:15:16"
            assert info["sign_no"].startswith("20260302141516")
            assert signed["refmsg_time"] == signed["respond_time"] == "20260302141516000"
            clock.sleep(1)
            settled = centre.handle(sale(info["sign_no"], "M1", psn))["output"]["setlinfo"]
            assert settled["setl_time"] == "2026-03-02 14:15:17"  # the centre's clock, not the fee lines' time
            mirror = centre.handle(
                {
                    "infno": "2103",
                    "msgid": "C1",
                    "fixmedins_code": PHARMACY,
                    "sign_no": info["sign_no"],
                    "input": {"data": {"setl_id": settled["setl_id"], "psn_no": psn}},
                }
            )
            assert mirror["output"]["setlinfo"]["setl_time"] == "2026-03-02 14:15:17", mirror
            qr = [centre.admin({"action": "issue_qr", "psn_no": psn}) for _ in range(3)]
            tokens.append([q["mdtrt_cert_no"] for q in qr])
            assert {q["expires"] for q in qr} == {"2026-03-02 14:20:17"}  # 5 minutes on the centre's clock
            person = {
                "infno": "1101",
                "msgid": "Q1",
                "fixmedins_code": PHARMACY,
                "sign_no": info["sign_no"],
                "input": {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": qr[0]["mdtrt_cert_no"]}},
            }
            assert centre.handle(person)["infcode"] == 0
            clock.sleep(301)
            assert centre.handle(person)["err_msg"].startswith("QR_EXPIRED")
            clock.at = at + dt.timedelta(days=1)  # the next day on the centre's clock: the sign_no has expired
            assert centre.handle(sale(info["sign_no"], "M2", psn))["err_msg"].startswith("ENVELOPE_REFUSED")
        assert journal_times(path) == {"2026-03-02T14:15:16.000000", "2026-03-02T14:15:17.000000"}
    seeded = SeededRandomness(42)
    assert tokens[0] == tokens[1] == [f"130100{seeded.token_hex(17)}" for _ in range(3)]
    other = SQLiteJournal(tmp_path / "other.db", clock=clock)
    with other:
        centre = Centre(
            Settler(POLICY, Population.generate(POLICY, 200, seed=0), engine=engine),
            other,
            default_institutions(POLICY),
            clock=clock,
            randomness=SeededRandomness(43),
        )
        assert centre.admin({"action": "issue_qr", "psn_no": psn})["mdtrt_cert_no"] != tokens[0][0]


# What the centre and its journal may not call directly: the wall clock, the OS's randomness, process exit.
DIRECT = re.compile(
    r"now_shanghai\(|time\.time\(|time\.monotonic\(|time\.sleep\(|datetime\.now\(|date\.today\("
    r"|secrets\.|os\._exit\(|random\.(random|randint|choice|uniform|getrandbits)\("
)


SEAMED = sorted(
    itertools.chain((SRC / "centre").glob("*.py"), [SRC / "ledger" / "journal.py", SRC / "ledger" / "postgres.py"])
)


@pytest.mark.parametrize("path", SEAMED, ids=lambda p: p.name)
def test_the_centre_asks_no_clock_randomness_or_exit_but_its_seams(path):
    calls = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DIRECT.search(line) and not line.lstrip().startswith("#")
    ]
    assert not calls, calls
