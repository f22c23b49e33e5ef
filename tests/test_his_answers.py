"""The centre's answers as an HIS reads them (docs/messages.md "The envelope", "The settlement answer"), over HTTP.

Every answer carries the platform's envelope keys: the centre's own inf_refmsgid, the 17-digit times,
enctype and signtype, err_msg null on success, warn_msg. Every settlement answer (2101-2103, 2206-2208,
2303-2305) carries setlinfo's 41 keys and setldetail's six per row, with real values: the person from the
registry, the clearing keys from the policy, each fund's room left this year from the accumulators; and
the amounts add up as the platform's identities say. A resend after a restart gives the same output, byte
for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from centre_rig import (
    CODES,
    HOSPITAL,
    PHARMACY,
    POLICY,
    ServedCentre,
    certificate_of,
    default_registry,
    first_person,
)
from medsettle.centre.answers import ANSWER, Stamps
from medsettle.centre.institutions import default_institutions
from medsettle.centre.messages import Envelope
from medsettle.centre.registry import DEFAULT_NATY, Identity, Registry
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.ledger import SQLiteJournal
from medsettle.timeutil import SHANGHAI
from platform_keys import ENVELOPE_KEYS, SETLDETAIL_KEYS, SETLINFO_KEYS

NOT_AMOUNTS = ("pool_prop_selfpay", "medins_setl_id", "clr_optins", "clr_way", "clr_type")
AMOUNTS = [k for k in SETLINFO_KEYS[16:] if k not in NOT_AMOUNTS]
NO_CAP = [
    item.med_list_codg
    for item in POLICY.region("130100").catalogues[0].items
    if item.chrgitm_lv == "01" and item.pric_uplmt_amt is None
]
DAY = "2026-03-02 09:58:00"
EMPLOYEE = first_person("130100", "310")
RESIDENT = first_person("130100", "390")


def second_employee() -> str:
    """An employee insured in 130100 other than EMPLOYEE."""
    population = default_registry().population
    return next(
        p
        for i, p in enumerate(population.psn_nos)
        if p != EMPLOYEE and population.describe(i)["insutype"] == "310" and p.startswith("130100")
    )


def yuan(value: Any) -> Decimal:
    return Decimal(str(value))


def fen(value: Any) -> int:
    return int(yuan(value) * 100)


class His:
    """One institution's calls to a served centre, each answer checked for the envelope's keys."""

    def __init__(self, server: ServedCentre, code: str) -> None:
        self.server, self.code = server, code
        self.sign_no = server.sign_in(code)

    def call(self, infno: str, input_: dict, msgid: str | None = None) -> dict:
        answer, self.msgid = self.server.call(
            infno, input_, sign_no=self.sign_no, fixmedins_code=self.code, msgid=msgid
        )
        assert list(answer) == ENVELOPE_KEYS, answer
        assert answer["infcode"] == 0, answer
        return answer

    def raw(self, infno: str, input_: dict, msgid: str) -> bytes:
        """The answer's bytes as the centre wrote them."""
        body = {
            "infno": infno,
            "msgid": msgid,
            "fixmedins_code": self.code,
            "mdtrtarea_admvs": "130100",
            "insuplc_admdvs": "130100",
            "sign_no": self.sign_no,
            "input": input_,
        }
        request = urllib.request.Request(self.server.url, json.dumps(body).encode(), self.server.signed_headers(body))
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()


def sale(psn: str, lines: list[tuple[int, str, str]]) -> dict:
    return {
        "data": {
            "psn_no": psn,
            **certificate_of(psn),
            "med_type": "41",
            "acct_used_flag": "1",
        },
        "feedetail": [
            {"feedetl_sn": str(i + 1), "med_list_codg": CODES[k], "pric": p, "cnt": c, "fee_ocur_time": DAY}
            for i, (k, p, c) in enumerate(lines)
        ],
    }


def fee(mdtrt_id: str, psn: str, sn: str, code: str, pric: str, med_type: str, when: str) -> dict:
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": med_type,
        "fee_ocur_time": when,
        "med_list_codg": code,
        "pric": pric,
        "cnt": "1",
    }


def check_settlement(answer: dict, *, med_type: str, cert_type: str | None) -> dict:
    """Every key, the values the registry and the policy give, the identities; returns setlinfo."""
    info, rows = answer["output"]["setlinfo"], answer["output"]["setldetail"]
    assert list(info) == SETLINFO_KEYS and len(SETLINFO_KEYS) == 41
    ident = default_registry().identities[info["psn_no"]]
    day = dt.date.fromisoformat(info["setl_time"][:10])
    age = day.year - ident.brdy.year - ((day.month, day.day) < (ident.brdy.month, ident.brdy.day))
    assert {k: info[k] for k in ("psn_name", "psn_cert_type", "certno", "gend", "naty", "brdy", "age")} == {
        "psn_name": ident.psn_name,
        "psn_cert_type": "01",
        "certno": ident.certno,
        "gend": ident.gend,
        "naty": ident.naty,
        "brdy": ident.brdy.isoformat(),
        "age": age,
    }
    insured = info["psn_no"][:6]  # the default population numbers persons by their insured region
    assert info["clr_optins"] == insured
    assert info["clr_way"] == POLICY.region(insured).clr_way == "1"
    assert info["clr_type"] == {"11": "11", "13": "11", "14": "11", "21": "21", "41": "41"}[med_type]
    assert (info["med_type"], info["mdtrt_cert_type"], info["cvlserv_flag"]) == (med_type, cert_type, "0")
    for key in AMOUNTS:
        assert isinstance(info[key], (int, float)) and not isinstance(info[key], bool), (key, info[key])
    assert info["hifes_pay"] == info["oth_pay"] == info["acct_mulaid_pay"] == 0
    a = {k: fen(info[k]) for k in AMOUNTS}
    parts = ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")
    assert a["medfee_sumamt"] == sum(a[k] for k in parts)
    assert a["medfee_sumamt"] == a["fund_pay_sumamt"] + a["psn_part_amt"] + a["hosp_part_amt"]
    assert a["psn_part_amt"] == a["acct_pay"] + a["psn_cash_pay"]
    funds = ("hifp_pay", "hifob_pay", "hifmi_pay", "cvlserv_pay", "hifes_pay", "maf_pay", "oth_pay")
    assert a["fund_pay_sumamt"] == sum(a[k] for k in funds)
    for row in rows:
        assert list(row) == SETLDETAIL_KEYS, row
        assert row["fund_pay_type_name"] and row["setl_proc_info"] is None
        assert fen(row["inscp_scp_amt"]) == a["inscp_scp_amt"]
    by_fund = {r["fund_pay_type"]: fen(r["fund_payamt"]) for r in rows}
    assert sum(v for k, v in by_fund.items() if k not in ("310200", "999996")) == a["fund_pay_sumamt"]
    assert by_fund.get("310200", 0) == a["acct_pay"]
    account = next((r for r in rows if r["fund_pay_type"] == "310200"), None)
    if account is not None:
        assert fen(account["crt_payb_lmt_amt"]) == a["balc"]  # the account may still pay its balance
    return info


def room(answer: dict, fund: str) -> int:
    return fen(next(r["crt_payb_lmt_amt"] for r in answer["output"]["setldetail"] if r["fund_pay_type"] == fund))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ServedCentre(tmp_path_factory.mktemp("his-answers") / "centre") as served:
        yield served


def test_the_envelope_is_the_platforms(server):
    his = His(server, PHARMACY)
    first = his.call("2101", sale(EMPLOYEE, [(0, "3.00", "1")]))
    second = his.call("2101", sale(EMPLOYEE, [(0, "3.00", "1")]))
    for answer in (first, second):
        assert re.fullmatch(r"130100\d{24}", answer["inf_refmsgid"]), answer  # the lowest region this process owns
        assert re.fullmatch(r"\d{17}", answer["refmsg_time"]) and re.fullmatch(r"\d{17}", answer["respond_time"])
        assert answer["refmsg_time"] <= answer["respond_time"]
        assert answer["inf_refmsgid"][6:20] == answer["respond_time"][:14]
        when = dt.datetime.strptime(answer["respond_time"][:14], "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
        assert abs((dt.datetime.now(SHANGHAI) - when).total_seconds()) < 120
        assert (answer["enctype"], answer["signtype"], answer["err_msg"], answer["warn_msg"]) == (None,) * 4
    assert first["inf_refmsgid"] != second["inf_refmsgid"] != his.msgid
    nobody = {"data": {"psn_no": "NOBODY"}, "feedetail": sale(EMPLOYEE, [(0, "3.00", "1")])["feedetail"]}
    refused, _ = server.call("2102", nobody, sign_no=his.sign_no)
    assert list(refused) == ENVELOPE_KEYS and refused["infcode"] == -1
    assert refused["err_msg"].startswith("UNKNOWN_PERSON: ") and refused["output"] == {} and refused["warn_msg"] is None
    # a state-changing answer sent again: what was stored, under a new id and this request's times
    settled = his.call("2102", sale(EMPLOYEE, [(0, "3.00", "1")]))
    again = his.call("2102", sale(EMPLOYEE, [(0, "3.00", "1")]), msgid=his.msgid)
    assert again["output"] == settled["output"] and again["inf_refmsgid"] != settled["inf_refmsgid"]


def test_stamps_keep_ids_apart_within_a_process_and_across_regions():
    class Frozen:  # a clock that stands still: only the counter keeps the ids apart
        def now(self) -> dt.datetime:
            return dt.datetime(2026, 3, 2, 9, 30, 1, 123456, tzinfo=SHANGHAI)

    stamps, other = Stamps(Frozen(), "130100"), Stamps(Frozen(), "330300")  # type: ignore[arg-type]
    ids = [stamps.respond()[0] for _ in range(1000)] + [other.respond()[0] for _ in range(1000)]
    assert len(set(ids)) == 2000
    assert ids[0] == "130100" + "20260302093001" + "123456" + "0000"
    assert stamps.time() == "20260302093001123"


def test_every_settlement_answer_has_every_key_with_the_registrys_and_the_policys_values(server):
    pharmacy = His(server, PHARMACY)
    pre = pharmacy.call("2101", sale(EMPLOYEE, [(0, "12.50", "2"), (1, "8.00", "1")]))
    check_settlement(pre, med_type="41", cert_type="03")
    sold = pharmacy.call("2102", sale(EMPLOYEE, [(0, "12.50", "2"), (1, "8.00", "1")]))
    info = check_settlement(sold, med_type="41", cert_type="03")
    mirror = pharmacy.call("2103", {"data": {"setl_id": info["setl_id"], "psn_no": EMPLOYEE}})
    assert check_settlement(mirror, med_type="41", cert_type="03")["medfee_sumamt"] == -info["medfee_sumamt"]

    hospital = His(server, HOSPITAL)
    ident = default_registry().identities[RESIDENT]
    reg = hospital.call(
        "2201", {"data": {"psn_no": RESIDENT, "begntime": "2026-03-02 09:30:00", **certificate_of(RESIDENT)}}
    )
    visit = reg["output"]["data"]["mdtrt_id"]
    hospital.call("2203", {"mdtrtinfo": {"mdtrt_id": visit, "psn_no": RESIDENT, "med_type": "14"}, "diseinfo": []})
    hospital.call("2204", {"feedetail": [fee(visit, RESIDENT, "1", NO_CAP[0], "900.00", "14", DAY)]})
    settle = {"data": {"psn_no": RESIDENT, "mdtrt_id": visit, "mdtrt_cert_type": "02", "mdtrt_cert_no": ident.certno}}
    check_settlement(hospital.call("2206", settle), med_type="14", cert_type="02")
    settled = hospital.call("2207", settle)
    info = check_settlement(settled, med_type="14", cert_type="02")
    assert info["clr_type"] == "11" and info["insutype"] == "390"
    cancel = hospital.call("2208", {"data": {"setl_id": info["setl_id"], "mdtrt_id": visit, "psn_no": RESIDENT}})
    check_settlement(cancel, med_type="14", cert_type="02")  # the mirror answers its original's certificate type


def test_each_fund_answers_what_it_may_still_pay_this_year(server):
    """crt_payb_lmt_amt: the ceiling less what the fund paid this year, this settlement included; a
    pre-settlement counts what it would pay; a cancel gives the room back."""
    psn = second_employee()  # nobody else in this module settles for this person
    hospital = His(server, HOSPITAL)
    admit = hospital.call(
        "2401",
        {
            "mdtrtinfo": {
                "psn_no": psn,
                "med_type": "21",
                "begntime": "2026-03-01 08:00:00",
                **certificate_of(psn),
            },
            "diseinfo": [],
        },
    )
    stay = admit["output"]["data"]["mdtrt_id"]
    codes = NO_CAP
    hospital.call("2301", {"feedetail": [fee(stay, psn, "1", codes[0], "20000.00", "21", "2026-03-03 10:00:00")]})
    data = {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "1", **certificate_of(psn)}
    pre = hospital.call("2303", {"data": data})
    mid = hospital.call("2304", {"data": data})
    info = check_settlement(mid, med_type="21", cert_type="03")
    assert info["clr_optins"] == "130100" and info["clr_type"] == "21"
    rules = POLICY.region("130100").ruleset_on(dt.date.fromisoformat(info["setl_time"][:10]))
    assert rules is not None
    ceiling = rules.benefit("inpatient", "310", info["psn_type"]).ceiling
    assert fen(info["hifp_pay"]) > 0
    assert room(mid, "310100") == ceiling - fen(info["hifp_pay"]) == room(pre, "310100")
    hospital.call("2301", {"feedetail": [fee(stay, psn, "2", codes[0], "5000.00", "21", "2026-03-04 10:00:00")]})
    hospital.call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "endtime": "2026-03-05 10:00:00"}})
    final = hospital.call("2304", {"data": {**data, "mid_setl_flag": "0"}})
    later = check_settlement(final, med_type="21", cert_type="03")
    assert room(final, "310100") == ceiling - fen(info["hifp_pay"]) - fen(later["hifp_pay"])
    mirror = hospital.call("2305", {"data": {"setl_id": later["setl_id"], "mdtrt_id": stay, "psn_no": psn}})
    check_settlement(mirror, med_type="21", cert_type="03")
    assert room(mirror, "310100") == room(mid, "310100")  # the cancel gave the final settlement's share back


def test_a_resent_settlement_after_a_restart_answers_the_same_bytes(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    sent: list[tuple[str, str, str, dict, bytes]] = []  # (institution, msgid, infno, input, the answer's bytes)

    def send(his: His, infno: str, body: dict) -> dict:
        msgid = f"{his.code}20260302235959{len(sent):04d}"
        sent.append((his.code, msgid, infno, body, his.raw(infno, body, msgid)))
        return json.loads(sent[-1][4])

    try:
        pharmacy, hospital = His(server, PHARMACY), His(server, HOSPITAL)
        sold = send(pharmacy, "2102", sale(EMPLOYEE, [(0, "12.50", "2")]))
        send(pharmacy, "2102", sale(EMPLOYEE, [(1, "30.00", "1"), (0, "4.00", "3")]))
        send(pharmacy, "2103", {"data": {"setl_id": sold["output"]["setlinfo"]["setl_id"], "psn_no": EMPLOYEE}})
        psn = second_employee()
        visit = hospital.call(
            "2201", {"data": {"psn_no": psn, "begntime": "2026-03-02 09:30:00", **certificate_of(psn)}}
        )
        visit_id = visit["output"]["data"]["mdtrt_id"]
        hospital.call("2203", {"mdtrtinfo": {"mdtrt_id": visit_id, "psn_no": psn, "med_type": "11"}, "diseinfo": []})
        hospital.call("2204", {"feedetail": [fee(visit_id, psn, "1", NO_CAP[0], "80.00", "11", DAY)]})
        send(hospital, "2207", {"data": {"psn_no": psn, "mdtrt_id": visit_id, **certificate_of(psn, "02")}})
        admit = {
            "mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-03-01 08:00:00", **certificate_of(psn)},
            "diseinfo": [],
        }
        stay = hospital.call("2401", admit)["output"]["data"]["mdtrt_id"]
        hospital.call("2301", {"feedetail": [fee(stay, psn, "1", NO_CAP[0], "9000.00", "21", DAY)]})
        send(hospital, "2304", {"data": {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "1", **certificate_of(psn)}})
    finally:
        server.stop()
    server = ServedCentre(tmp_path / "centre").start()  # the answers are rebuilt from the journal's records
    try:
        others = {PHARMACY: His(server, PHARMACY), HOSPITAL: His(server, HOSPITAL)}
        for code, msgid, infno, body, first in sent:
            answer = json.loads(first)
            med_type = {"2207": "11", "2304": "21"}.get(infno, "41")
            check_settlement(answer, med_type=med_type, cert_type={"2207": "02"}.get(infno, "03"))
            again = others[code].raw(infno, body, msgid)
            assert again[again.index(b'"err_msg"') :] == first[first.index(b'"err_msg"') :], infno
            assert json.loads(again)["inf_refmsgid"] != answer["inf_refmsgid"]
    finally:
        server.stop()


def test_the_registry_gives_every_person_an_ethnicity_stable_for_a_seed():
    registry = default_registry()
    shares = Counter(i.naty for i in registry.identities.values())
    assert all(re.fullmatch(r"\d{2}", code) for code in shares)
    assert 0.85 < shares["01"] / len(registry.identities) < 0.97 and len(shares) >= 8  # mostly 汉族, some others
    again = Registry.generate(Population.generate(POLICY, 10_000, seed=0))  # the same seed: the same people
    assert [i.naty for i in again.identities.values()] == [i.naty for i in registry.identities.values()]
    other = Registry.generate(again.population, seed=1)
    assert [i.naty for i in other.identities.values()] != [i.naty for i in again.identities.values()]
    enrolled = Identity("X", "周新", "130100199003151234", "1", dt.date(1990, 3, 15), "unit")
    assert enrolled.naty == DEFAULT_NATY == "01"  # a person enrolled without one


def test_the_example_answer_keys_are_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "messages.md").read_text(encoding="utf-8")
    for key in SETLINFO_KEYS + SETLDETAIL_KEYS + ENVELOPE_KEYS:
        assert f"`{key}`" in text or f'"{key}"' in text, key


def test_a_refusal_journaled_by_an_older_version_leaves_in_todays_envelope(tmp_path):
    """An older journal kept a refusal's envelope with fewer keys; sent again, it has every key."""
    request = {
        "infno": "2102",
        "msgid": f"{PHARMACY}202603020900009999",
        "fixmedins_code": PHARMACY,
        "input": {"data": {"psn_no": EMPLOYEE}, "feedetail": sale(EMPLOYEE, [(0, "3.00", "1")])["feedetail"]},
    }
    old = {"infcode": -1, "inf_refmsgid": request["msgid"], "err_msg": "PERSON_INACTIVE: x", "output": {}}
    digest = Envelope.model_validate(request).request_hash()
    path = tmp_path / "centre.db"
    with SQLiteJournal(path) as journal:
        journal.append(ANSWER, "130100", request["msgid"], {"hash": digest, "response": old})
    with SQLiteJournal(path) as journal:
        centre = Centre(
            Settler(POLICY, Population.generate(POLICY, 200, seed=0)), journal, default_institutions(POLICY)
        )
        sign_no = centre.handle(
            {"infno": "9001", "msgid": "S1", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "001"}}}
        )
        again = centre.handle({**request, "sign_no": sign_no["output"]["signinoutb"]["sign_no"]})
    assert list(again) == ENVELOPE_KEYS and again["err_msg"] == "PERSON_INACTIVE: x"
    assert re.fullmatch(r"\d{30}", again["inf_refmsgid"]) and re.fullmatch(r"\d{17}", again["respond_time"])
