"""Cancelling an admission's settlements, worked by hand, on both engines (docs/settlement.md 'Admissions').

The rule: an admission's deductible standard and ordinal are fixed at its first settlement; it counts
once, in the year of its first settlement; cancelling its last settlement not yet cancelled un-counts it,
whether or not a later admission has begun since. Later admissions keep the ordinals they were settled
with; the next new admission takes the count as it now stands.

Region A (worlds.py), rule set 2026, employee E1 (balance 1000.00): inpatient (med type 21) deductible
per admission 500.00 / 300.00 / 100.00 for the 1st / 2nd / 3rd and later admission of the year, pooled
ratio 0.90, ceiling 50000.00 (never reached here). Every bill is one class A line (all in scope).
"""

from __future__ import annotations

import pytest

from medsettle.errors import SettlementRefused
from medsettle.ledger import JournaledSettler, SQLiteJournal, replay
from worlds import bill, make_settler


def stay(s, mdtrt_id, amount, when):
    """Settle an inpatient bill of ``amount`` yuan for admission ``mdtrt_id``."""
    return s.settle(bill("E1", [("A1", amount, 1)], med_type="21", mdtrt_id=mdtrt_id, when=when))


def fen(result, *names):
    return tuple(result.amount(name) for name in names)


def count(s):
    return s.person_state("E1").adm_count


def test_cancelling_an_earlier_admission_uncounts_it_and_the_next_one_takes_the_count_as_it_stands(engine):
    s = make_settler(engine)
    # A, the 1st admission of 2026: 1000.00, deductible 500.00, fund 0.90 x 500.00 = 450.00.
    a = stay(s, "ADM-A", "1000.00", "2026-03-01 10:00:00")
    assert fen(a, "act_pay_dedc", "hifp_pay", "adm_counted") == (50000, 45000, 1)
    # B, the 2nd: 200.00, all of it to its 300.00 deductible (100.00 of it left), fund 0.
    b1 = stay(s, "ADM-B", "200.00", "2026-04-01 10:00:00")
    assert fen(b1, "act_pay_dedc", "hifp_pay", "adm_counted") == (20000, 0, 1)
    assert count(s) == 2
    # A's only settlement cancelled, B in progress: A no longer counts (2 -> 1).
    s.cancel(a.setl_id)
    assert count(s) == 1
    # B keeps the 2nd ordinal's 300.00 it was settled with: 500.00 more meets the last 100.00 of it and the
    # fund pays 0.90 x 400.00 = 360.00 (had B become the 1st, 300.00 of a 500.00 deductible would be left).
    b2 = stay(s, "ADM-B", "500.00", "2026-04-03 10:00:00")
    assert fen(b2, "act_pay_dedc", "hifp_pay", "adm_counted") == (10000, 36000, 0)
    assert count(s) == 1
    # C, a new admission: the count as it now stands (1) + 1 = the 2nd ordinal, 300.00; fund 0.90 x 700.00.
    c = stay(s, "ADM-C", "1000.00", "2026-05-01 10:00:00")
    assert fen(c, "act_pay_dedc", "hifp_pay", "adm_counted") == (30000, 63000, 1)
    assert count(s) == 2


def test_an_earlier_admission_counts_until_its_last_live_settlement_is_cancelled(engine):
    s = make_settler(engine)
    # A: 400.00 (400.00 of its 500.00 deductible), then mid-stay 300.00 (the last 100.00; fund 0.90 x 200.00).
    a1 = stay(s, "ADM-A", "400.00", "2026-03-01 10:00:00")
    a2 = stay(s, "ADM-A", "300.00", "2026-03-03 10:00:00")
    assert fen(a1, "act_pay_dedc", "hifp_pay") == (40000, 0)
    assert fen(a2, "act_pay_dedc", "hifp_pay", "adm_counted") == (10000, 18000, 0)
    # B, the 2nd admission: 1000.00, deductible 300.00, fund 630.00.
    b = stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    assert fen(b, "act_pay_dedc", "hifp_pay") == (30000, 63000)
    assert count(s) == 2
    # A's mid-stay settlement cancelled: A still has its first one, so it still counts.
    s.cancel(a2.setl_id)
    assert count(s) == 2
    # A's first (now its last live one) cancelled: A no longer counts.
    s.cancel(a1.setl_id)
    assert count(s) == 1
    # B goes on with its own deductible met (300.00 of 300.00): 100.00 -> fund 90.00.
    assert fen(stay(s, "ADM-B", "100.00", "2026-04-02 10:00:00"), "act_pay_dedc", "hifp_pay") == (0, 9000)
    # C: the 2nd ordinal again, 300.00.
    assert stay(s, "ADM-C", "1000.00", "2026-05-01 10:00:00").amount("act_pay_dedc") == 30000
    assert count(s) == 2


def test_cancelling_the_first_settlement_first_and_the_mid_stay_last_uncounts_at_the_last(engine):
    s = make_settler(engine)
    a1 = stay(s, "ADM-A", "400.00", "2026-03-01 10:00:00")
    a2 = stay(s, "ADM-A", "300.00", "2026-03-03 10:00:00")
    stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    s.cancel(a1.setl_id)  # A keeps its mid-stay settlement: it still counts
    assert count(s) == 2
    s.cancel(a2.setl_id)
    assert count(s) == 1
    # The next admission is the 2nd: 300.00.
    assert stay(s, "ADM-C", "1000.00", "2026-05-01 10:00:00").amount("act_pay_dedc") == 30000


def test_cancelling_a_later_admission_away_puts_back_the_earlier_one_as_its_cancels_left_it(engine):
    s = make_settler(engine)
    # A: 400.00 then 300.00, as above (deductible met 400.00 + 100.00).
    stay(s, "ADM-A", "400.00", "2026-03-01 10:00:00")
    a2 = stay(s, "ADM-A", "300.00", "2026-03-03 10:00:00")
    b = stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    # A's mid-stay settlement cancelled while B is in progress: A has met 400.00 of its 500.00 now.
    s.cancel(a2.setl_id)
    # B cancelled away: it no longer counts (2 -> 1) and A is in progress again, as the cancels left it.
    s.cancel(b.setl_id)
    st = s.person_state("E1")
    assert (st.adm_count, st.adm_ded_std, st.adm_ded_met, st.adm_nsetl) == (1, 50000, 40000, 1)
    # So A's next 200.00 meets the 100.00 left of its deductible; fund 0.90 x 100.00 = 90.00.
    a3 = stay(s, "ADM-A", "200.00", "2026-03-05 10:00:00")
    assert fen(a3, "act_pay_dedc", "hifp_pay", "adm_counted") == (10000, 9000, 0)


def test_when_every_earlier_admission_is_cancelled_none_is_put_back(engine):
    s = make_settler(engine)
    a = stay(s, "ADM-A", "1000.00", "2026-03-01 10:00:00")
    b = stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    s.cancel(a.setl_id)  # 2 -> 1
    s.cancel(b.setl_id)  # 1 -> 0; A has no live settlement: nothing is in progress
    st = s.person_state("E1")
    assert (st.adm_count, st.adm_nsetl) == (0, 0)
    # A bill for A again begins it anew: the 1st admission, 500.00.
    again = stay(s, "ADM-A", "1000.00", "2026-03-02 10:00:00")
    assert fen(again, "act_pay_dedc", "adm_counted") == (50000, 1)
    assert count(s) == 1


def test_an_earlier_run_of_the_same_mdtrt_id_is_not_the_admission_in_progress(engine):
    s = make_settler(engine)
    # A, then B, then A's mdtrt_id again after B began: the state holds one admission in progress, so that
    # is a new admission (the 3rd: 100.00), and the first run of A is an earlier one.
    a_first = stay(s, "ADM-A", "1000.00", "2026-03-01 10:00:00")
    stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    a_again = stay(s, "ADM-A", "1000.00", "2026-05-01 10:00:00")
    assert fen(a_again, "act_pay_dedc", "adm_counted") == (10000, 1)
    # Cancelling the first run's settlement un-counts that run only; the run in progress keeps its 100.00.
    s.cancel(a_first.setl_id)
    st = s.person_state("E1")
    assert (st.adm_count, st.adm_ded_std, st.adm_ded_met, st.adm_nsetl) == (2, 10000, 10000, 1)
    assert fen(stay(s, "ADM-A", "100.00", "2026-05-02 10:00:00"), "act_pay_dedc", "hifp_pay") == (0, 9000)


def test_an_admission_of_a_closed_year_stays_counted_in_its_year(engine):
    s = make_settler(engine)
    # A, 1st admission of 2026; B, 1st admission of 2027 (the year's count starts again): 500.00 each.
    a = stay(s, "ADM-A", "1000.00", "2026-12-01 10:00:00")
    b = stay(s, "ADM-B", "1000.00", "2027-01-05 10:00:00")
    assert fen(b, "act_pay_dedc", "year") == (50000, 2027)
    # A's year is closed: its settlement can no longer be cancelled, and 2027's count is untouched.
    with pytest.raises(SettlementRefused) as closed:
        s.cancel(a.setl_id)
    assert closed.value.code == "YEAR_CLOSED" and count(s) == 1
    assert stay(s, "ADM-C", "1000.00", "2027-02-01 10:00:00").amount("act_pay_dedc") == 30000  # the 2nd of 2027


def test_replay_rebuilds_the_admissions_and_their_cancels(engine, tmp_path):
    with SQLiteJournal(tmp_path / "j.db") as journal:
        live = JournaledSettler(make_settler(engine), journal)
        a1 = live.settle(bill("E1", [("A1", "400.00", 1)], med_type="21", mdtrt_id="ADM-A", when="2026-03-01 10:00:00"))
        a2 = live.settle(bill("E1", [("A1", "300.00", 1)], med_type="21", mdtrt_id="ADM-A", when="2026-03-03 10:00:00"))
        b = live.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM-B", when="2026-04-01 10:00:00"))
        live.cancel(a2.setl_id)
        rebuilt = make_settler(engine)
        replay(journal, rebuilt)
        assert rebuilt.person_state("E1") == live.settler.person_state("E1")
        # What the records know of A (one live settlement left) was rebuilt too: the same cancels then
        # un-count A, put nothing back, and the next admission is the 1st.
        for s in (live.settler, rebuilt):
            s.cancel(a1.setl_id)
            assert count(s) == 1
            s.cancel(b.setl_id)
            assert count(s) == 0
            assert stay(s, "ADM-C", "1000.00", "2026-05-01 10:00:00").amount("act_pay_dedc") == 50000
        assert rebuilt.person_state("E1") == live.settler.person_state("E1")


class _RefusingJournal:
    """A journal whose next append fails (a full disk), then works again."""

    def __init__(self, journal):
        self.journal, self.fail_next = journal, False

    def append(self, *args, **kwargs):
        if self.fail_next:
            self.fail_next = False
            raise OSError("disk full")
        return self.journal.append(*args, **kwargs)


def test_a_cancel_the_journal_refused_leaves_the_admission_as_it_was(engine, tmp_path):
    with SQLiteJournal(tmp_path / "j.db") as sqlite:
        journal = _RefusingJournal(sqlite)
        live = JournaledSettler(make_settler(engine), journal)
        a = live.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM-A", when="2026-03-01 10:00:00"))
        live.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM-B", when="2026-04-01 10:00:00"))
        before = live.settler.person_state("E1")
        journal.fail_next = True
        with pytest.raises(OSError):
            live.cancel(a.setl_id)
        assert live.settler.person_state("E1") == before and count(live.settler) == 2
        # Sent again, the cancel finds A with its one live settlement: it un-counts A.
        live.cancel(a.setl_id)
        assert count(live.settler) == 1
        c = live.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM-C", when="2026-05-01 10:00:00"))
        assert c.amount("act_pay_dedc") == 30000


# -- the rule against a model of it, on random stays and cancels ------------------------------------------

LADDER = (50000, 30000, 10000)  # fen: the 1st, 2nd, 3rd and later admission's deductible


class _Model:
    """Admissions as the rule describes them, kept as a plain list (independent of the engines' records)."""

    def __init__(self):
        self.admissions: list[dict] = []
        self.current: int | None = None  # index of the admission in progress
        self.year = 0

    def counted(self) -> int:
        return sum(1 for a in self.admissions if a["live"] and a["year"] == self.year)

    def settle(self, key: str, year: int, fee: int) -> tuple[int, int] | None:
        """(admission index, expected deductible) of a settlement, or None: YEAR_CLOSED."""
        if year < self.year:
            return None
        self.year = year
        cur = self.current
        if cur is not None and self.admissions[cur]["key"] == key and self.admissions[cur]["live"]:
            adm = self.admissions[cur]
            dedc = min(fee, adm["std"] - adm["met"])
        else:
            std = LADDER[min(self.counted(), 2)]
            dedc = min(fee, std)
            before = cur if cur is not None and self.admissions[cur]["live"] else None
            self.admissions.append({"key": key, "year": year, "live": 0, "met": 0, "std": std, "before": before})
            self.current = cur = len(self.admissions) - 1
            adm = self.admissions[cur]
        adm["live"] += 1
        adm["met"] += dedc
        return cur, dedc

    def cancel(self, index: int, dedc: int, year: int) -> bool:
        if year < self.year:
            return False
        adm = self.admissions[index]
        adm["live"] -= 1
        adm["met"] -= dedc
        if self.current == index and not adm["live"]:
            before = adm["before"]
            while before is not None and not self.admissions[before]["live"]:
                before = self.admissions[before]["before"]
            self.current = before
        return True


def _operations():
    from hypothesis import strategies as st

    stay_ = st.tuples(
        st.just("settle"),
        st.sampled_from(["A", "B", "C"]),
        st.integers(0, 40),
        st.sampled_from([10000, 30000, 60000, 100000]),
    )
    cancel_ = st.tuples(st.just("cancel"), st.integers(0, 30))
    return st.lists(st.one_of(stay_, stay_, cancel_), min_size=1, max_size=25)


def test_random_stays_and_cancels_follow_the_rule(engine):
    """After every settle and cancel: the year's count is the admissions first settled this year with a
    live settlement, a new admission's deductible is the ordinal of the count as it then stands, and the
    admission in progress has the deductible and settlements the model says."""
    import datetime as dt

    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(ops=_operations())
    def run(ops):
        s, model, made, day = make_settler(engine), _Model(), [], dt.date(2026, 10, 1)
        for op in ops:
            if op[0] == "settle":
                _, key, days, fee = op
                day += dt.timedelta(days=days)
                expected = model.settle(key, day.year, fee)
                try:
                    r = stay(s, f"ADM-{key}", f"{fee // 100}.00", f"{day.isoformat()} 10:00:00")
                except SettlementRefused as exc:
                    assert expected is None and exc.code == "YEAR_CLOSED"
                    continue
                assert expected is not None and r.amount("act_pay_dedc") == expected[1], (op, expected)
                made.append((r, expected[0]))
            elif op[1] < len(made) and made[op[1]][0].cancelled_by is None:
                r, index = made[op[1]]
                if model.cancel(index, r.amount("act_pay_dedc"), r.amount("year")):
                    s.cancel(r.setl_id)
                else:
                    with pytest.raises(SettlementRefused):
                        s.cancel(r.setl_id)
            st_ = s.person_state("E1")
            assert st_.adm_count == model.counted(), op
            if model.current is None:
                assert st_.adm_nsetl == 0
            else:
                adm = model.admissions[model.current]
                assert (st_.adm_ded_std, st_.adm_ded_met, st_.adm_nsetl) == (adm["std"], adm["met"], adm["live"])

    run()


def test_an_admission_with_a_settlement_made_without_a_record_keeps_counting(engine):
    from medsettle.engine.plainbill import validate_plain

    s = make_settler(engine)
    # A begins on the bare fast path (a load run's way: no record, so never cancellable): 400.00 of its
    # 500.00 deductible. Then a recorded mid-stay 300.00 meets the last 100.00, and B (the 2nd) begins.
    fast = s.fast_path()
    args, _ = fast.route(
        validate_plain(bill("E1", [("A1", "400.00", "1")], med_type="21", mdtrt_id="ADM-A", when="2026-03-01 10:00:00"))
    )
    assert fast.settle_loaded(*args) == 0
    a2 = stay(s, "ADM-A", "300.00", "2026-03-03 10:00:00")
    assert fen(a2, "act_pay_dedc", "adm_counted") == (10000, 0)
    b = stay(s, "ADM-B", "1000.00", "2026-04-01 10:00:00")
    assert b.amount("act_pay_dedc") == 30000 and count(s) == 2
    # A's recorded settlement cancelled: A keeps its unrecorded one, so it still counts.
    s.cancel(a2.setl_id)
    assert count(s) == 2
    # B cancelled away: A is in progress again with 400.00 met, so 200.00 more meets 100.00 of it.
    s.cancel(b.setl_id)
    assert count(s) == 1
    assert fen(stay(s, "ADM-A", "200.00", "2026-03-05 10:00:00"), "act_pay_dedc", "adm_counted") == (10000, 0)
