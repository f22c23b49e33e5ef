"""Issue 15, isolation: each attack performed over HTTP against a served centre, and its refusal checked.

An institution acts only on its own records (a cancel or a 2601 of another's work is answered as if the
record did not exist), its msgids are its own namespace, no client text can forge a journal key (the
msgid `Z/2601` pair that fail-stopped the whole centre), a 2601 never waits on itself, and a voucher is
settled once per institution (docs/messages.md 'Isolation').
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from centre_rig import (
    CODES,
    HOSPITAL,
    PHARMACY,
    POLICY,
    ServedCentre,
    certificate_of,
    default_population,
    first_person,
    shared_centre,
)
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.errors import InvalidInput
from medsettle.ledger import PostgresJournal, SQLiteJournal

OTHER_PHARMACY = "P13010000002"  # B: the second pharmacy of the default institutions
OTHER_HOSPITAL = "H13010000002"


@pytest.fixture(scope="module")
def served_centre(tmp_path_factory):
    """One SQLite centre for the tests that neither restart it nor read its day's statements: each has its own
    persons (employees(n, skip)) and msgids, and counts journal entries only across its own requests. The
    tests that run on both ledgers, restart a centre or reconcile a pharmacy's day start their own."""
    with shared_centre(tmp_path_factory.mktemp("isolation") / "centre") as centre:
        yield centre


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_args(request):
    """The served centre's journal: its data directory's SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return []
    return ["--db", request.getfixturevalue("postgres_server").new_database()]


def entries(server):
    """The number of entries in the served centre's journal, on either backend."""
    if "--db" not in server.args:
        return server.journal_count()
    with PostgresJournal(server.args[server.args.index("--db") + 1]) as journal:
        return journal.count()


def sale(psn, price="20.00", code=0, when="2026-03-02 09:58:00", **data):
    """A 2102/2101 input: one line, the person's card presented (03 with its card_sn)."""
    return {
        "data": {"psn_no": psn, "med_type": "41", "acct_used_flag": "1", **certificate_of(psn), **data},
        "feedetail": [
            {"feedetl_sn": "1", "med_list_codg": CODES[code], "pric": price, "cnt": "1", "fee_ocur_time": when}
        ],
    }


def fee(mdtrt_id, psn, sn, price="10.00", med_type="11"):
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": med_type,
        "fee_ocur_time": "2026-03-02 10:05:00",
        "med_list_codg": CODES[int(sn) % len(CODES)],
        "pric": price,
        "cnt": "1",
    }


def employees(n, skip=0):
    population = default_population()
    found = []
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == "130100" and d["insutype"] == "310":
            found.append(str(d["psn_no"]))
            if len(found) == skip + n:
                return found[skip:]
    raise AssertionError("not enough employees")


def refused(answer, field, *words):
    """A refusal (infcode -1) whose err_msg names ``field`` and says ``words``."""
    assert answer["infcode"] == -1, answer
    assert f"field {field}" in answer["err_msg"], answer
    for word in words:
        assert word in answer["err_msg"], answer


class Counter:
    """One institution's counter on a served centre: signed in, calling with its own envelope."""

    def __init__(self, server: ServedCentre, code: str) -> None:
        self.server, self.code = server, code
        self.sign_no = server.sign_in(code)

    def __call__(self, infno, input_, msgid=None):
        return self.server.call(infno, input_, sign_no=self.sign_no, fixmedins_code=self.code, msgid=msgid)


def statement(counter, day, kept):
    """3201 of ``counter``'s pharmacy sales on ``day`` against the totals of ``kept`` (its setlinfos)."""
    totals = {k: f"{sum(s[k] for s in kept):.2f}" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
    count = sum(1 if s["medfee_sumamt"] >= 0 else -1 for s in kept)
    data = {"insutype": "310", "clr_type": "41", "setl_optins": "130100", "stmt_begndate": day, "stmt_enddate": day}
    answer, _ = counter("3201", {"data": {**data, "fixmedins_setl_cnt": count, **totals}})
    assert answer["infcode"] == 0, answer
    return answer["output"]["stmtinfo"]


def balance(counter, psn):
    """The person's account balance, from a pre-settlement (which changes nothing)."""
    answer, _ = counter("2101", sale(psn, "1.00"))
    assert answer["infcode"] == 0, answer
    return answer["output"]["setlinfo"]["balc"]


# -- 1. an institution acts only on its own records ----------------------------------------------------


def test_a_pharmacy_cannot_cancel_or_reverse_another_pharmacys_settlement(tmp_path, journal_args):
    with ServedCentre(tmp_path / "centre", args=journal_args) as served_centre:
        _cancel_or_reverse_another_pharmacys_settlement(served_centre)


def _cancel_or_reverse_another_pharmacys_settlement(served_centre):
    a, b = Counter(served_centre, PHARMACY), Counter(served_centre, OTHER_PHARMACY)
    psn = first_person()
    settled, b_msgid = b("2102", sale(psn))
    assert settled["infcode"] == 0, settled
    info = settled["output"]["setlinfo"]
    day = info["setl_time"][:10]
    assert statement(b, day, [info])["stmt_rslt"] == "0"
    before_balance, before_count = balance(b, psn), entries(served_centre)
    for infno in ("2103", "2208", "2305"):
        answer, _ = a(infno, {"data": {"setl_id": info["setl_id"], "psn_no": psn}})
        # the same words as for a settlement that does not exist: nothing tells A that B's exists
        refused(answer, "input.data.setl_id", f"no settlement {info['setl_id']} of person {psn}")
    assert entries(served_centre) == before_count  # bad input journals nothing
    # A's 2601 of B's msgid: as for a message A never sent, a tombstone in A's namespace, nothing undone.
    rvs, _ = a("2601", {"data": {"psn_no": psn, "omsgid": b_msgid, "oinfno": "2102"}})
    assert rvs["infcode"] == 0 and rvs["output"]["data"]["rvs_rslt"] == "tombstone", rvs
    assert balance(b, psn) == before_balance
    assert statement(b, day, [info])["stmt_rslt"] == "0"  # B's books still agree, and A booked no mirror
    assert statement(a, day, [])["stmt_rslt"] == "0"
    again, _ = b("2102", sale(psn), msgid=b_msgid)  # B's msgid is neither tombstoned nor taken
    assert again["output"] == settled["output"]
    cancel, _ = b("2103", {"data": {"setl_id": info["setl_id"], "psn_no": psn}})
    assert cancel["infcode"] == 0, cancel  # B itself may cancel it


def test_a_hospital_cannot_touch_another_hospitals_visit_admission_or_fee_lines(served_centre):
    a, b = Counter(served_centre, HOSPITAL), Counter(served_centre, OTHER_HOSPITAL)
    out_psn, in_psn = employees(2, skip=10)
    reg, _ = b("2201", {"data": {"psn_no": out_psn, "begntime": "2026-03-02 09:30:00", **certificate_of(out_psn)}})
    assert reg["infcode"] == 0, reg
    visit = reg["output"]["data"]["mdtrt_id"]
    upload, upload_msgid = b("2204", {"feedetail": [fee(visit, out_psn, "1"), fee(visit, out_psn, "2")]})
    assert upload["infcode"] == 0, upload
    admit, _ = b(
        "2401",
        {
            "mdtrtinfo": {
                "psn_no": in_psn,
                "med_type": "21",
                "begntime": "2026-03-01 08:00:00",
                **certificate_of(in_psn),
            }
        },
    )
    assert admit["infcode"] == 0, admit
    stay = admit["output"]["data"]["mdtrt_id"]
    assert b("2301", {"feedetail": [fee(stay, in_psn, "1", "300.00", "21")]})[0]["infcode"] == 0
    dscg = {"dscginfo": {"mdtrt_id": stay, "psn_no": in_psn, "endtime": "2026-03-05 10:00:00"}}
    assert b("2402", dscg)[0]["infcode"] == 0
    count = served_centre.journal_count()
    attacks = [
        ("2202", {"data": {"mdtrt_id": visit, "psn_no": out_psn}}, "input.data.mdtrt_id", visit),
        ("2205", {"data": {"mdtrt_id": visit, "psn_no": out_psn, "feedetl_sn": "1"}}, "input.data.mdtrt_id", visit),
        ("2205", {"data": {"mdtrt_id": visit, "psn_no": out_psn, "feedetl_sn": "0000"}}, "input.data.mdtrt_id", visit),
        ("2204", {"feedetail": [fee(visit, out_psn, "9")]}, "input.feedetail[0].mdtrt_id", visit),
        ("2302", {"data": {"mdtrt_id": stay, "psn_no": in_psn, "feedetl_sn": "1"}}, "input.data.mdtrt_id", stay),
        ("2404", {"data": {"mdtrt_id": stay, "psn_no": in_psn}}, "input.data.mdtrt_id", stay),
        ("2405", {"data": {"mdtrt_id": stay, "psn_no": in_psn}}, "input.data.mdtrt_id", stay),
    ]
    for infno, input_, field, mdtrt_id in attacks:
        answer, _ = a(infno, input_)
        refused(answer, field, f"no open visit '{mdtrt_id}' at {HOSPITAL}")  # as for a visit that does not exist
    assert served_centre.journal_count() == count
    rvs, _ = a("2601", {"data": {"psn_no": out_psn, "omsgid": upload_msgid, "oinfno": "2204"}})
    assert rvs["output"]["data"]["rvs_rslt"] == "tombstone", rvs
    # B's visit, lines and stay are as they were: B settles both lines, and the stay after its discharge.
    settle = {"data": {"psn_no": out_psn, "mdtrt_id": visit, "med_type": "11", "acct_used_flag": "1"}}
    settled, _ = b("2207", {"data": {**settle["data"], **certificate_of(out_psn)}})
    assert settled["infcode"] == 0 and settled["output"]["setlinfo"]["medfee_sumamt"] == 20.0, settled
    final, _ = b("2304", {"data": {"psn_no": in_psn, "mdtrt_id": stay, "mid_setl_flag": "0", **certificate_of(in_psn)}})
    assert final["infcode"] == 0 and final["output"]["setlinfo"]["medfee_sumamt"] == 300.0, final
    for infno, setl in (("2208", settled), ("2305", final)):
        info = setl["output"]["setlinfo"]
        answer, _ = a(infno, {"data": {"setl_id": info["setl_id"], "psn_no": info["psn_no"], "mdtrt_id": ""}})
        refused(answer, "input.data.setl_id", "no settlement")


# -- 2. msgids are each institution's own namespace -----------------------------------------------------


def test_msgids_are_each_institutions_own(served_centre):
    a, b = Counter(served_centre, PHARMACY), Counter(served_centre, OTHER_PHARMACY)
    psn_a, psn_b = employees(2, skip=20)
    b_settled, shared = b("2102", sale(psn_b))
    assert b_settled["infcode"] == 0, b_settled
    # A sends B's msgid: its own message, settled for A (not B's answer, not "already used").
    a_settled, _ = a("2102", sale(psn_b), msgid=shared)
    assert a_settled["infcode"] == 0, a_settled
    assert a_settled["output"]["setlinfo"]["setl_id"] != b_settled["output"]["setlinfo"]["setl_id"]
    assert b("2102", sale(psn_b), msgid=shared)[0]["output"] == b_settled["output"]  # B's answer is B's
    # A tombstones a msgid B has not sent yet: B's message under it is still taken in.
    future = f"{OTHER_PHARMACY}20260302100000FUTURE"
    rvs, _ = a("2601", {"data": {"psn_no": psn_b, "omsgid": future, "oinfno": "2102"}})
    assert rvs["output"]["data"]["rvs_rslt"] == "tombstone", rvs
    late, _ = b("2102", sale(psn_b), msgid=future)
    assert late["infcode"] == 0, late
    late_a, _ = a("2102", sale(psn_a), msgid=future)  # A's own copy of it is refused, as tombstoned
    refused(late_a, "msgid", "reversed by 2601 before it arrived")
    # A takes a msgid first: B may still use it.
    squat, _ = a("2102", sale(psn_a), msgid=f"{OTHER_PHARMACY}20260302100000SQUAT")
    assert squat["infcode"] == 0, squat
    mine, _ = b("2102", sale(psn_b), msgid=f"{OTHER_PHARMACY}20260302100000SQUAT")
    assert mine["infcode"] == 0, mine


def test_msgid_namespaces_survive_a_restart(tmp_path):
    psn = employees(1, skip=30)[0]
    with ServedCentre(tmp_path / "c") as server:
        a, b = Counter(server, PHARMACY), Counter(server, OTHER_PHARMACY)
        b_settled, shared = b("2102", sale(psn))
        a_settled, _ = a("2102", sale(psn), msgid=shared)
        rvs, _ = a("2601", {"data": {"psn_no": psn, "omsgid": "LATER", "oinfno": "2102"}})
        assert rvs["output"]["data"]["rvs_rslt"] == "tombstone"
    with ServedCentre(tmp_path / "c") as server:
        a, b = Counter(server, PHARMACY), Counter(server, OTHER_PHARMACY)
        assert b("2102", sale(psn), msgid=shared)[0]["output"] == b_settled["output"]
        assert a("2102", sale(psn), msgid=shared)[0]["output"] == a_settled["output"]
        refused(a("2102", sale(psn), msgid="LATER")[0], "msgid", "reversed")
        assert b("2102", sale(psn), msgid="LATER")[0]["infcode"] == 0


# -- 3. no client text forges a journal key; a client's conflict is its own refusal ---------------------


def test_the_z_slash_2601_pair_no_longer_stops_the_centre(tmp_path, journal_args):
    psn, other = employees(2, skip=40)
    data_dir = tmp_path / "centre"
    with ServedCentre(data_dir, args=journal_args) as server:
        h, p = Counter(server, HOSPITAL), Counter(server, PHARMACY)
        reg, _ = h("2201", {"data": {"psn_no": psn, "begntime": "2026-03-02 09:30:00", **certificate_of(psn)}})
        visit = reg["output"]["data"]["mdtrt_id"]
        upload, upload_msgid = h("2204", {"feedetail": [fee(visit, psn, "1"), fee(visit, psn, "2")]})
        assert upload["infcode"] == 0, upload
        # 2205 under msgid "Z/2601" wrote the key fees_cancel/"Z/2601"; so did the 2601 under msgid "Z"
        cancel, _ = h("2205", {"data": {"mdtrt_id": visit, "psn_no": psn, "feedetl_sn": "1"}}, msgid="Z/2601")
        assert cancel["infcode"] == 0, cancel
        rvs, _ = h("2601", {"data": {"psn_no": psn, "omsgid": upload_msgid, "oinfno": "2204"}}, msgid="Z")
        assert rvs["infcode"] == 0, rvs
        assert rvs["output"]["data"] == {
            "omsgid": upload_msgid,
            "oinfno": "2204",
            "rvs_rslt": "reversed",
            "feedetl_sns": ["2"],
        }
        # the centre answers everyone afterwards
        sold, _ = p("2102", sale(other))
        assert sold["infcode"] == 0, sold
        assert h("2204", {"feedetail": [fee(visit, psn, "3", "7.00")]})[0]["infcode"] == 0
    with ServedCentre(
        data_dir, args=journal_args
    ) as server:  # replayed: both lines are cancelled, the stored answers kept
        h = Counter(server, HOSPITAL)
        again, _ = h("2601", {"data": {"psn_no": psn, "omsgid": upload_msgid, "oinfno": "2204"}}, msgid="Z")
        assert again["output"] == rvs["output"]
        line_2, _ = h("2205", {"data": {"mdtrt_id": visit, "psn_no": psn, "feedetl_sn": "2"}})
        refused(line_2, "input.data.feedetl_sn", "no unsettled line '2'")
        settle = {"data": {"psn_no": psn, "mdtrt_id": visit, "acct_used_flag": "1", **certificate_of(psn)}}
        settled, _ = h("2207", settle)
        assert settled["infcode"] == 0 and settled["output"]["setlinfo"]["medfee_sumamt"] == 7.0, settled


def test_a_msgid_that_reads_as_a_journal_key_is_an_ordinary_msgid(served_centre):
    p = Counter(served_centre, PHARMACY)
    psn = employees(1, skip=50)[0]
    for msgid in ('["P13010000001","X"]', "X/activate", 'X","2601'):
        answer, _ = p("2102", sale(psn, "2.00"), msgid=msgid)
        assert answer["infcode"] == 0, answer
    assert p("2102", sale(psn, "2.00"), msgid="X")[0]["infcode"] == 0
    assert p("2102", sale(psn, "3.00"))[0]["infcode"] == 0


# -- 4. no answer waits on itself -----------------------------------------------------------------------


def test_a_2601_naming_its_own_msgid_is_refused_and_the_centre_keeps_answering(served_centre):
    p = Counter(served_centre, PHARMACY)
    psn, other = employees(2, skip=60)
    count = served_centre.journal_count()

    def self_reversal(i):
        msgid = f"SELF{i}"
        return p("2601", {"data": {"psn_no": psn, "omsgid": msgid, "oinfno": "2102"}}, msgid=msgid)[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [f.result(timeout=60) for f in [pool.submit(self_reversal, i % 8) for i in range(16)]]
    for answer in answers:
        refused(answer, "input.data.omsgid", "own msgid")
    assert served_centre.journal_count() == count
    assert served_centre.admin({"action": "credit", "psn_no": other, "amount": "10.00", "key": "2026-03"})["ok"]
    settled, msgid = p("2102", sale(other))
    rvs, _ = p("2601", {"data": {"psn_no": other, "omsgid": msgid, "oinfno": "2102"}})
    assert rvs["infcode"] == 0 and rvs["output"]["data"]["rvs_rslt"] == "reversed", rvs
    day = settled["output"]["setlinfo"]["setl_time"][:10]
    detail, _ = p("3202", {"data": {"stmt_begndate": day, "stmt_enddate": day}, "detail": []})
    assert detail["infcode"] == 0, detail
    # a chain: R1 reverses R2 before R2 arrives, R2 then names R1: tombstoned, refused, no wait
    chain1, _ = p("2601", {"data": {"psn_no": other, "omsgid": "R2", "oinfno": "2102"}}, msgid="R1")
    assert chain1["output"]["data"]["rvs_rslt"] == "tombstone"
    chain2, _ = p("2601", {"data": {"psn_no": other, "omsgid": "R1", "oinfno": "2102"}}, msgid="R2")
    refused(chain2, "msgid", "reversed by 2601 before it arrived")


# -- 5. a voucher is settled once per institution -------------------------------------------------------


def test_a_voucher_is_settled_once_per_institution(tmp_path, journal_args):
    with ServedCentre(tmp_path / "centre", args=journal_args) as served_centre:
        _a_voucher_is_settled_once_per_institution(served_centre)


def _a_voucher_is_settled_once_per_institution(served_centre):
    a, b = Counter(served_centre, PHARMACY), Counter(served_centre, OTHER_PHARMACY)
    psn, psn_b = employees(2, skip=70)
    yesterday = (dt.datetime.now(ZoneInfo("Asia/Shanghai")) - dt.timedelta(days=1)).strftime("%Y-%m-%d 10:00:00")
    voucher = sale(psn, "25.00", when=yesterday, deferred_voucher_no="V-0001")
    first, _ = a("2102", voucher)
    assert first["infcode"] == 0, first
    balc = balance(a, psn)
    count = entries(served_centre)
    # a second counter process re-settles the same voucher under another msgid: the first's answer
    second, second_msgid = a("2102", voucher)
    assert second["infcode"] == 0 and second["output"] == first["output"], second
    assert balance(a, psn) == balc and entries(served_centre) == count  # nothing settled, no debit
    # its 2601 undoes nothing: it settled nothing
    rvs, _ = a("2601", {"data": {"psn_no": psn, "omsgid": second_msgid, "oinfno": "2102"}})
    assert rvs["output"]["data"]["rvs_rslt"] == "nothing applied", rvs
    assert balance(a, psn) == balc
    # voucher numbers are per institution: B's V-0001 is another voucher
    other, _ = b("2102", sale(psn_b, "25.00", when=yesterday, deferred_voucher_no="V-0001"))
    assert other["infcode"] == 0, other
    assert other["output"]["setlinfo"]["setl_id"] != first["output"]["setlinfo"]["setl_id"]


# -- journals of older versions still replay ------------------------------------------------------------


def _as_an_older_version_wrote_it(path):
    """Rewrite a journal's keys and bodies as versions before per-institution msgids wrote them: keys the
    msgid alone (or joined with "/"), and no fixmedins_code where those versions kept none."""
    had_institution = {"register", "settle", "cancel", "signin"}
    conn = sqlite3.connect(path)
    with conn:
        for seq, kind, key, body in conn.execute("SELECT seq, kind, key, body FROM journal").fetchall():
            if key.startswith("["):
                parts = json.loads(key)
                key = "/".join(parts[1:]) if kind not in ("credit", "person_event") else "/".join(parts)
            data = json.loads(body)
            if kind not in had_institution:
                data.pop("fixmedins_code", None)
            if kind == "answer":
                data.pop("msgid", None)
            conn.execute("UPDATE journal SET key = ?, body = ? WHERE seq = ?", (key, json.dumps(data), seq))
    conn.close()


def test_a_journal_written_before_per_institution_msgids_replays(tmp_path):
    population = Population.generate(POLICY, 200, seed=0)
    path = tmp_path / "centre.db"

    def centre_on(journal):
        return Centre(Settler(POLICY, population), journal, default_institutions(POLICY))

    def request(centre, code, infno, input_, msgid, sign_no):
        return {"infno": infno, "msgid": msgid, "fixmedins_code": code, "sign_no": sign_no, "input": input_}

    with SQLiteJournal(path) as journal:
        centre = centre_on(journal)
        psn = next(p for p in centre.registry.cards_of if population.describe(population.index_of(p))["active"])
        card = centre.registry.cards[centre.registry.cards_of[psn][0]]
        cert = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}
        signs = {}
        for code in (HOSPITAL, PHARMACY):
            signed = centre.handle(
                {"infno": "9001", "msgid": f"S{code}", "fixmedins_code": code, "input": {"signIn": {"opter_no": "1"}}}
            )
            signs[code] = signed["output"]["signinoutb"]["sign_no"]
        sent = []

        def send(code, infno, input_, msgid):
            req = request(centre, code, infno, input_, msgid, signs[code])
            answer = centre.handle(req)
            assert answer["infcode"] == 0, answer
            sent.append((req, answer))
            return answer

        reg = send(HOSPITAL, "2201", {"data": {"psn_no": psn, "begntime": "2026-03-02 09:30:00", **cert}}, "REG")
        visit = reg["output"]["data"]["mdtrt_id"]
        send(HOSPITAL, "2204", {"feedetail": [fee(visit, psn, "1"), fee(visit, psn, "2")]}, "UP")
        send(HOSPITAL, "2205", {"data": {"mdtrt_id": visit, "psn_no": psn, "feedetl_sn": "1"}}, "FC")
        send(HOSPITAL, "2601", {"data": {"psn_no": psn, "omsgid": "UP", "oinfno": "2204"}}, "R")
        send(PHARMACY, "2601", {"data": {"psn_no": psn, "omsgid": "LOST", "oinfno": "2102"}}, "T")
        sold = send(PHARMACY, "2102", sale(psn, "4.00"), "SALE")
        centre.credit_account(psn, "10.00", "2026-03")
    _as_an_older_version_wrote_it(path)
    with SQLiteJournal(path) as journal:  # an older version's refusal whose msgid reads as one of today's keys
        refusal = {"infcode": -1, "err_msg": "PERSON_INACTIVE: x", "output": {}}
        journal.append("answer", "130100", f'["{PHARMACY}","LOOK"]', {"hash": "0" * 64, "response": refusal})
    with SQLiteJournal(path) as journal:
        centre = centre_on(journal)
        for req, answer in sent:  # every message sent again gets its stored answer
            assert centre.handle(req)["output"] == answer["output"], req["msgid"]
        late = centre.handle(request(centre, PHARMACY, "2102", sale(psn, "4.00"), "LOST", signs[PHARMACY]))
        assert late["infcode"] == -1 and "reversed by 2601" in late["err_msg"], late
        with pytest.raises(InvalidInput, match="already made"):
            centre.credit_account(psn, "10.00", "2026-03")
        assert not [ln for ln in centre.encounters.get(visit).open_lines()]  # line 1 by 2205, line 2 by 2601
        # and new entries beside the old ones: the same msgids at another institution, then a cancel
        other = request(centre, OTHER_PHARMACY, "2102", sale(psn, "4.00"), "UP", "")
        signed = centre.handle(
            {"infno": "9001", "msgid": "S2", "fixmedins_code": OTHER_PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
        )
        other["sign_no"] = signed["output"]["signinoutb"]["sign_no"]
        # today's key of the pharmacy's msgid LOOK is held by that entry: refused before anything changes
        look = centre.handle(request(centre, PHARMACY, "2102", sale(psn, "4.00"), "LOOK", signs[PHARMACY]))
        assert look["infcode"] == -1 and "field msgid" in look["err_msg"] and "cannot be used" in look["err_msg"]
        assert centre.failed is None
        # an older fee upload's institution is its encounter's: another institution's "UP" is its own
        assert centre.handle(other)["infcode"] == 0
        # an older reversal names no institution: its msgid stays shared, as it was
        shared = centre.handle({**other, "msgid": "R"})
        assert shared["infcode"] == -1 and "already used" in shared["err_msg"], shared
        setl = sold["output"]["setlinfo"]
        cancel = request(
            centre, PHARMACY, "2103", {"data": {"setl_id": setl["setl_id"], "psn_no": psn}}, "C1", signs[PHARMACY]
        )
        assert centre.handle(cancel)["infcode"] == 0
    with SQLiteJournal(path) as journal:  # old and new entries replay together
        centre = centre_on(journal)
        assert centre.settler.records[setl["setl_id"]].cancelled_by is not None
