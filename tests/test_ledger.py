"""The SQLite journal: durable appends, group commit, and state rebuilt by replay equal to the live state."""

import random
import threading
from collections import Counter

import pytest

from faults import small_sqlite_journal
from medsettle.engine import Population, Settler
from medsettle.errors import MedsettleError
from medsettle.ledger import DuplicateEntry, JournaledSettler, JournalError, PostgresJournal, SQLiteJournal, replay
from medsettle.policy import policy_from_dict
from worlds import DEFAULT_PERSONS, bill, policy_dict

POLICY = policy_from_dict(policy_dict())


@pytest.fixture(params=["sqlite", "postgresql"])
def new_journal(request, tmp_path):
    """Opens journals on one database of the backend under test (reopening opens the same database)."""
    if request.param == "sqlite":
        path = tmp_path / "centre.db"
        return lambda: SQLiteJournal(path)
    url = request.getfixturevalue("postgres_server").new_database()
    return lambda: PostgresJournal(url)


def fresh_settler(engine):
    return Settler(POLICY, Population.from_rows(POLICY, DEFAULT_PERSONS), engine=engine)


def test_entries_survive_reopening(new_journal):
    with new_journal() as j:
        assert j.append("credit", "110100", "k1", {"amount": 5, "note": "划入"}) == 1
        assert j.append("credit", "110100", "k2", {"amount": 7}) == 2
    with new_journal() as j:
        entries = list(j.entries())
        assert [(e.seq, e.key, e.body) for e in entries] == [
            (1, "k1", {"amount": 5, "note": "划入"}),
            (2, "k2", {"amount": 7}),
        ]
        assert list(j.entries(after=1))[0].key == "k2"
        assert j.append("credit", "110100", "k3", {}) == 3


def test_a_duplicate_fails_alone_and_the_others_land(new_journal):
    with new_journal() as j:
        j.append("settle", "110100", "S1", {})
        futures = [j.append_future("settle", "110100", key, {}) for key in ("S2", "S1", "S3")]
        assert isinstance(futures[1].exception(), DuplicateEntry)
        assert futures[0].result() > 0 and futures[2].result() > 0
        assert [e.key for e in j.entries()] == ["S1", "S2", "S3"]


def test_concurrent_appends_share_commits(new_journal):
    with new_journal() as j:
        seqs: list[int] = []
        lock = threading.Lock()

        def worker(w):
            for i in range(25):
                seq = j.append("credit", "110100", f"w{w}-{i}", {"i": i})
                with lock:
                    seqs.append(seq)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(seqs) == list(range(1, 401))
        assert j.count() == 400
        assert j.commits < 400  # appends that waited together were committed together


def test_a_large_group_gets_each_entry_its_own_seq(new_journal):
    with new_journal() as j:
        j.append("credit", "110100", "first", {})
        # Queued together, so the writer commits them in one or a few groups of several statements.
        futures = {f"k{i}": j.append_future("credit", "110100", f"k{i}", {"i": i}) for i in range(300)}
        seqs = {key: future.result() for key, future in futures.items()}
        assert sorted(seqs.values()) == list(range(2, 302))
        assert {e.key: e.seq for e in j.entries(after=1)} == seqs
        assert all(e.body == {"i": int(e.key[1:])} for e in j.entries(after=1))


def test_after_a_failed_commit_nothing_more_is_written(tmp_path):
    with small_sqlite_journal(tmp_path / "small.db", pages=8) as j:
        j.append("credit", "110100", "fits", {"note": "small"})
        with pytest.raises(JournalError, match="full"):
            j.append("credit", "110100", "too-big", {"note": "x" * 100_000})
        # This one would fit, but it came after an entry that was lost: refused too.
        with pytest.raises(JournalError, match="an earlier commit failed"):
            j.append("credit", "110100", "after", {"note": "small"})
        assert [e.key for e in j.entries()] == ["fits"]


def test_a_closed_journal_refuses_appends(new_journal):
    j = new_journal()
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.append("credit", "110100", "k", {})


def test_a_file_that_is_not_a_journal_is_refused(tmp_path):
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError):
        SQLiteJournal(path)


def test_replay_equals_live_state(engine, new_journal):
    rng = random.Random(7)
    live = fresh_settler(engine)
    made = []
    with new_journal() as journal:
        js = JournaledSettler(live, journal)
        for i in range(150):
            who = rng.choice(["E1", "E2", "R1", "M1", "F1", "X1", "W1"])
            action = rng.random()
            try:
                if action < 0.65:
                    day = 1 + i // 6
                    b = bill(
                        who,
                        [
                            (
                                rng.choice(["A1", "B05", "B10", "BCAP", "C1", "R1"]),
                                f"{rng.randint(1, 90000) / 100:.2f}",
                                rng.choice([1, 2, "0.5"]),
                            )
                        ],
                        med_type=rng.choice(["11", "13", "14", "21", "41"]),
                        mdtrt_id=f"M{rng.randint(0, 9)}",
                        when=f"2026-{1 + day // 28:02d}-{1 + day % 28:02d} 10:00:00",
                        bill_id=f"B{i}",
                    )
                    made.append(js.settle(b).setl_id)
                elif action < 0.85 and made:
                    js.cancel(rng.choice(made))
                else:
                    js.credit(who, rng.randint(0, 50_000), key=f"credit-{i}", reason="monthly")
            except MedsettleError:
                pass  # refusals and cancels of cancelled settlements change nothing and are not journaled
        n = journal.count()
        kinds = Counter(e.kind for e in journal.entries())
    assert kinds["settle"] >= 40 and kinds["cancel"] >= 5 and kinds["credit"] >= 5, kinds
    rebuilt = fresh_settler(engine)
    with new_journal() as journal:
        assert replay(journal, rebuilt) == n
    for p in range(len(live.population)):
        assert rebuilt.engine.get_state(p) == live.engine.get_state(p)
    assert set(rebuilt.records) == set(live.records)
    for setl_id, record in live.records.items():
        assert rebuilt.records[setl_id].row.tolist() == record.row.tolist()
        assert rebuilt.records[setl_id].cancelled_by == record.cancelled_by


def test_a_failed_append_leaves_memory_as_it_was(engine, new_journal):
    live = fresh_settler(engine)
    with new_journal() as journal:
        journal.append("settle", "110100", "S000000000000001", {})  # the id the next settlement will take
        js = JournaledSettler(live, journal)
        before = live.person_state("E1")
        with pytest.raises(DuplicateEntry):
            js.settle(bill("E1", [("A1", "150.00", 1)]))
        assert live.person_state("E1") == before and live.records == {}
        ok = js.settle(bill("E1", [("A1", "150.00", 1)]))  # the next id is free
        assert ok.setl_id == "S000000000000002"
