"""Every amount and balance has a bound, checked before it is applied (issue 15, docs/settlement.md
'Units and limits'): one credit at most 10^7 fen, a balance at most 10^11 fen, in both engines and the ledger.
The issue's attack: an admin credit of 92233720368546451.17 set the balance to 2^63-1 and a later cancel wrapped
it to about -9.2e16, which survived replay. Now the credit is refused naming its field and the bound, a cancel
whose refund would pass the balance bound is refused (BALANCE_LIMIT) and only its answer is journaled, and
replay stops at an entry past a bound instead of applying it. On SQLite and PostgreSQL, on both engines."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from medsettle.bounds import MAX_BALANCE_FEN, MAX_CREDIT_FEN
from medsettle.centre.cards import credit_key
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.engine.columns import COL
from medsettle.errors import InvalidInput, SettlementRefused
from medsettle.ledger import GroupCommitJournal, PostgresJournal, ReplayMismatch, SQLiteJournal
from medsettle.ledger.journaled import CREDIT
from medsettle.money import fen_to_decimal
from medsettle.policy import load_default_policy
from worlds import bill, make_settler, person

POLICY = load_default_policy()
PHARMACY = "P13010000001"
RICH = "13010000000000000001"  # 50,000.00 yuan short of the balance bound
AT_BOUND = "13010000000000000002"  # an employee in service at the bound, paid through 2025-12
CODE = POLICY.region("130100").catalogues[0].items[0].med_list_codg
NEAR = MAX_BALANCE_FEN - 5_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def open_journal(request: pytest.FixtureRequest, tmp_path: Any) -> Callable[[], GroupCommitJournal]:
    if request.param == "sqlite":
        return lambda: SQLiteJournal(tmp_path / "centre.db")
    url = request.getfixturevalue("postgres_server").new_database()
    return lambda: PostgresJournal(url)


def new_centre(journal: GroupCommitJournal, engine: str) -> Centre:
    rows = [
        person(RICH, region_="130100", balance=str(fen_to_decimal(NEAR))),
        person(AT_BOUND, region_="130100", balance=str(fen_to_decimal(MAX_BALANCE_FEN)), paid_through="2025-12"),
    ]
    return Centre(
        Settler(POLICY, Population.from_rows(POLICY, rows), engine=engine), journal, default_institutions(POLICY)
    )


@pytest.fixture()
def centre(open_journal: Callable[[], GroupCommitJournal], engine: str) -> Iterator[Centre]:
    journal = open_journal()
    c = new_centre(journal, engine)
    c.sign_no = c.handle(  # type: ignore[attr-defined]
        {"infno": "9001", "msgid": "SIGN", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )["output"]["signinoutb"]["sign_no"]
    yield c
    c.journal.close()


def balance(c: Centre, psn_no: str) -> int:
    return c.settler.person_state(psn_no).balance


def send(c: Centre, infno: str, msgid: str, input_: dict) -> dict:
    return c.handle(
        {
            "infno": infno,
            "msgid": msgid,
            "fixmedins_code": PHARMACY,
            "sign_no": c.sign_no,  # type: ignore[attr-defined]
            "mdtrtarea_admvs": "130100",
            "insuplc_admdvs": "130100",
            "input": input_,
        }
    )


def sale(c: Centre, msgid: str, psn_no: str = RICH) -> dict:
    cert = {"mdtrt_cert_type": "02", "mdtrt_cert_no": c.registry.identities[psn_no].certno}
    answer = send(
        c,
        "2102",
        msgid,
        {
            "data": {"psn_no": psn_no, "med_type": "41", **cert},
            "feedetail": [{"feedetl_sn": "1", "med_list_codg": CODE, "pric": "100.00", "cnt": "1"}],
        },
    )
    assert answer["infcode"] == 0, answer
    return answer["output"]["setlinfo"]


def test_the_issues_credit_and_one_past_the_balance_bound_are_refused_and_change_nothing(centre):
    before, held = centre.journal.count(), balance(centre, RICH)
    with pytest.raises(InvalidInput) as exc:
        centre.admin({"action": "credit", "psn_no": RICH, "amount": "92233720368546451.17", "key": "2026-01"})
    assert exc.value.field == "amount" and "at most 100000.00" in str(exc.value)
    with pytest.raises(InvalidInput) as exc:  # 999,950,000.00 + 100,000.00 is past 1,000,000,000.00
        centre.admin({"action": "credit", "psn_no": RICH, "amount": "100000.00", "key": "2026-01"})
    assert exc.value.field == "amount" and f"bound of {MAX_BALANCE_FEN} fen" in str(exc.value)
    assert centre.journal.count() == before and balance(centre, RICH) == held
    # Nothing was used up by the refusals: the month's credit may still be made, up to the bound exactly.
    done = centre.admin({"action": "credit", "psn_no": RICH, "amount": "50000.00", "key": "2026-01"})
    assert done["balc"] == str(fen_to_decimal(MAX_BALANCE_FEN)) and balance(centre, RICH) == MAX_BALANCE_FEN
    assert MAX_CREDIT_FEN == 10**7


def test_a_cancel_whose_refund_would_pass_the_balance_bound_is_refused_and_replays_so(open_journal, engine):
    journal = open_journal()
    c = new_centre(journal, engine)
    c.sign_no = c.handle(  # type: ignore[attr-defined]
        {"infno": "9001", "msgid": "SIGN", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )["output"]["signinoutb"]["sign_no"]
    info = sale(c, "SALE1")
    assert info["acct_pay"] > 0
    top_up = MAX_BALANCE_FEN - balance(c, RICH)  # 50,100.00 yuan: the balance is then at the bound
    c.admin({"action": "credit", "psn_no": RICH, "amount": str(fen_to_decimal(top_up)), "key": "2026-01"})
    before = c.journal.count()
    cancel = {"data": {"setl_id": info["setl_id"], "psn_no": RICH}}
    refused = send(c, "2103", "CANCEL1", cancel)
    assert refused["infcode"] == -1 and refused["err_msg"].startswith("BALANCE_LIMIT: "), refused
    assert "field balc" in refused["err_msg"] and str(MAX_BALANCE_FEN) in refused["err_msg"], refused
    assert c.journal.count() == before + 1  # the stored answer only
    assert balance(c, RICH) == MAX_BALANCE_FEN
    journal.close()

    journal = open_journal()  # a restart replays it: the balance is still at the bound, never past or wrapped
    c = new_centre(journal, engine)
    c.sign_no = c.handle(  # type: ignore[attr-defined]
        {"infno": "9001", "msgid": "SIGN2", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )["output"]["signinoutb"]["sign_no"]
    try:
        assert balance(c, RICH) == MAX_BALANCE_FEN
        assert send(c, "2103", "CANCEL1", cancel)["err_msg"] == refused["err_msg"]  # the stored answer
        sale(c, "SALE2")  # room for the refund: now the cancel goes through, to the bound exactly
        done = send(c, "2103", "CANCEL2", cancel)
        assert done["infcode"] == 0, done
        assert balance(c, RICH) == MAX_BALANCE_FEN
    finally:
        journal.close()


def test_a_contribution_whose_credit_would_pass_the_balance_bound_changes_nothing(centre):
    population = centre.settler.population
    before, held = centre.journal.count(), balance(centre, AT_BOUND)
    record = population.describe(population.index_of(AT_BOUND))
    with pytest.raises(InvalidInput) as exc:
        centre.admin({"action": "contribute", "psn_no": AT_BOUND, "month": "2026-01", "base": "8000.00"})
    assert exc.value.field == "balc" and f"bound of {MAX_BALANCE_FEN} fen" in str(exc.value)
    assert centre.journal.count() == before and balance(centre, AT_BOUND) == held
    assert population.describe(population.index_of(AT_BOUND)) == record  # the contribution run did not move
    assert AT_BOUND not in centre.registry.contributions


def test_replay_stops_at_a_journal_entry_past_the_balance_bound(open_journal):
    """The issue's journal: a credit entry an older version wrote with 92233720368546451.17 yuan in fen."""
    journal = open_journal()
    new_centre(journal, "reference")
    seq = journal.append(
        CREDIT,
        "130100",
        credit_key(RICH, "2026-01"),
        {"psn_no": RICH, "amount": 9223372036854645117, "reason": "monthly credit 2026-01", "balance": 2**63 - 1},
    )
    journal.close()
    journal = open_journal()
    try:
        with pytest.raises(ReplayMismatch) as exc:
            new_centre(journal, "reference")
        assert f"journal entry {seq}" in str(exc.value) and f"bound of {MAX_BALANCE_FEN} fen" in str(exc.value)
    finally:
        journal.close()


def test_both_engines_refuse_a_refund_past_the_balance_bound_before_anything_moves(engine):
    settler = make_settler(engine)
    settled = settler.settle(bill("E1", [("A1", "10.00", 1)], med_type="41", when="2026-05-01 10:00:00"))
    assert settled.row[COL["acct_pay"]] > 0  # paid from the account: a cancel refunds it
    settler.credit("E1", MAX_BALANCE_FEN - settler.person_state("E1").balance)
    state = settler.person_state("E1")
    with pytest.raises(SettlementRefused) as exc:
        settler.cancel(settled.setl_id)
    assert exc.value.code == "BALANCE_LIMIT" and "field balc" in str(exc.value)
    assert settler.person_state("E1") == state and settler.records[settled.setl_id].cancelled_by is None


def test_an_opening_balance_past_the_bound_is_refused():
    row = person("E9", balance=str(fen_to_decimal(MAX_BALANCE_FEN + 1)))
    with pytest.raises(InvalidInput) as exc:
        make_settler("reference", persons=[row])
    assert "column balance" in str(exc.value) and f"bound of {MAX_BALANCE_FEN} fen" in str(exc.value)
