"""An HIS written for the national platform, unchanged, against `medsettle serve` over HTTP (issue 14).

The client below has every habit of the public adapters at once (docs/messages.md, "What real adapters
send"): each transaction's input is a fixed class whose unset properties go out as JSON null (Newtonsoft's
default), the infno is the last segment of the platform's URL, the body is text/plain with its keys sorted,
amounts are strings ("12.50"), infver is "1", the envelope carries serv_code and serv_sign, and inf_time has
a "T". It plays a day: sign-in, an outpatient day with a cancel, a pharmacy sale, an inpatient stay with a
mid-stay settlement, a lost answer resolved by 2601, then 3201 and the file-based 3202. Every answer is read
as such an HIS reads it: by key, every key of the platform's lists, amounts as Decimal from the JSON text, and
the settlement identities.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
import urllib.request
import zipfile
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from centre_rig import CODES, HOSPITAL, PHARMACY, POLICY, ServedCentre, card_of, certificate_of, default_registry
from medsettle.timeutil import SHANGHAI
from platform_keys import BASEINFO_KEYS, ENVELOPE_KEYS, INSUINFO_KEYS, RESULT_KEYS, SETLDETAIL_KEYS, SETLINFO_KEYS

PATH = "fsi/api/rsfComIfsService/callService"
REGISTER_KEYS = ["mdtrt_id", "psn_no", "ipt_otp_no", "exp_content"]
CLR_TYPE = {"11": "11", "13": "11", "14": "11", "21": "21", "41": "41"}

# The HIS's classes: every property of each transaction's input, as Newtonsoft serialises them (a list in a
# list is a list of such objects).
ENVELOPE = [
    "infno",
    "msgid",
    "mdtrtarea_admvs",
    "insuplc_admdvs",
    "recer_sys_code",
    "dev_no",
    "dev_safe_info",
    "cainfo",
    "signtype",
    "infver",
    "opter_type",
    "opter",
    "opter_name",
    "inf_time",
    "fixmedins_code",
    "fixmedins_name",
    "sign_no",
    "serv_code",
    "serv_sign",
    "input",
]
FEE = [
    "feedetl_sn",
    "init_feedetl_sn",
    "mdtrt_id",
    "drord_no",
    "psn_no",
    "med_type",
    "fee_ocur_time",
    "med_list_codg",
    "medins_list_codg",
    "det_item_fee_sumamt",
    "cnt",
    "pric",
    "sin_dos_dscr",
    "used_frqu_dscr",
    "prd_days",
    "medc_way_dscr",
    "bilg_dept_codg",
    "bilg_dept_name",
    "bilg_dr_codg",
    "bilg_dr_name",
    "acord_dept_codg",
    "acord_dept_name",
    "orders_dr_code",
    "orders_dr_name",
    "hosp_appr_flag",
    "tcmdrug_used_way",
    "etip_flag",
    "etip_hosp_code",
    "dscg_tkdrug_flag",
    "matn_fee_flag",
    "memo",
]
DISEASE = [
    "diag_type",
    "diag_srt_no",
    "diag_code",
    "diag_name",
    "diag_dept",
    "dise_dor_no",
    "dise_dor_name",
    "diag_time",
    "vali_flag",
]
SETTLE = [
    "psn_no",
    "mdtrt_cert_type",
    "mdtrt_cert_no",
    "med_type",
    "medfee_sumamt",
    "psn_setlway",
    "mdtrt_id",
    "chrg_bchno",
    "insutype",
    "acct_used_flag",
    "mid_setl_flag",
    "invono",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
]
CLASSES: dict[str, dict[str, Any]] = {
    "9001": {"signIn": ["opter_no", "mac", "ip"]},
    "1101": {
        "data": ["mdtrt_cert_type", "mdtrt_cert_no", "card_sn", "begntime", "psn_cert_type", "certno", "psn_name"]
    },
    "2201": {
        "data": [
            "psn_no",
            "insutype",
            "begntime",
            "mdtrt_cert_type",
            "mdtrt_cert_no",
            "ipt_otp_no",
            "atddr_no",
            "dr_name",
            "dept_code",
            "dept_name",
            "caty",
        ]
    },
    "2203": {
        "mdtrtinfo": [
            "mdtrt_id",
            "psn_no",
            "med_type",
            "begntime",
            "main_cond_dscr",
            "dise_codg",
            "dise_name",
            "birctrl_type",
            "birctrl_matn_date",
        ],
        "diseinfo": [DISEASE],
    },
    "2204": {"feedetail": [FEE]},
    "2206": {"data": SETTLE},
    "2207": {"data": SETTLE},
    "2103": {"data": ["setl_id", "psn_no", "exp_content"]},
    "2208": {"data": ["setl_id", "mdtrt_id", "psn_no", "exp_content"]},
    "2101": {"data": SETTLE, "feedetail": [FEE]},
    "2102": {"data": SETTLE, "feedetail": [FEE]},
    "2401": {
        "mdtrtinfo": [
            "psn_no",
            "insutype",
            "coner_name",
            "tel",
            "begntime",
            "mdtrt_cert_type",
            "mdtrt_cert_no",
            "med_type",
            "ipt_no",
            "medrcdno",
            "atddr_no",
            "chfpdr_name",
            "adm_diag_dscr",
            "adm_dept_codg",
            "adm_dept_name",
            "adm_bed",
            "dscg_maindiag_code",
            "dscg_maindiag_name",
            "main_cond_dscr",
            "dise_codg",
            "dise_name",
        ],
        "diseinfo": [DISEASE],
    },
    "2301": {"feedetail": [FEE]},
    "2304": {"data": SETTLE},
    "2402": {
        "dscginfo": [
            "mdtrt_id",
            "psn_no",
            "insutype",
            "endtime",
            "dise_codg",
            "dise_name",
            "dscg_way",
            "dscg_dept_codg",
            "dscg_dept_name",
        ],
        "diseinfo": [DISEASE],
    },
    "2601": {"data": ["psn_no", "omsgid", "oinfno"]},
    "3201": {
        "data": [
            "insutype",
            "clr_type",
            "setl_optins",
            "stmt_begndate",
            "stmt_enddate",
            "medfee_sumamt",
            "fund_pay_sumamt",
            "acct_pay",
            "fixmedins_setl_cnt",
        ]
    },
    "3202": {
        "data": [
            "setl_optins",
            "file_qury_no",
            "stmt_begndate",
            "stmt_enddate",
            "medfee_sumamt",
            "fund_pay_sumamt",
            "cash_payamt",
            "fixmedins_setl_cnt",
        ]
    },
    "9101": {"fsUploadIn": ["in", "filename", "fixmedins_code"]},
    "9102": {"fsDownloadIn": ["file_qury_no", "filename", "fixmedins_code"]},
}


def shaped(props: Any, values: Any) -> Any:
    """``values`` as the HIS's class would serialise it: every property, null where unset, nothing else."""
    if isinstance(props, list) and props and isinstance(props[0], list):
        return [shaped(props[0], row) for row in values or []]
    if isinstance(props, dict):
        assert set(values) <= set(props), set(values) - set(props)
        return {k: shaped(p, values.get(k)) for k, p in props.items()}
    assert set(values) <= set(props), set(values) - set(props)
    return {k: values.get(k) for k in props}


def parse(body: bytes) -> Any:
    """An answer as the HIS reads it: amounts as Decimal from the JSON text, never through float."""
    return json.loads(body, parse_float=Decimal)


class DropInHis:
    """One institution's HIS with all the adapters' habits; its books hold every settlement answer it read."""

    def __init__(self, server: ServedCentre, code: str, books: list[tuple[str, dict]]) -> None:
        self.server, self.code, self.books = server, code, books
        self.sign_no: str | None = None  # a first 9001 sends no sign_no: null
        signed = self.send("9001", {"signIn": {"opter_no": "001", "mac": "00-11-22-33-44-55", "ip": "10.0.0.7"}})
        self.sign_no = signed["output"]["signinoutb"]["sign_no"]

    def body(self, infno: str, input_: dict, msgid: str) -> bytes:
        """The request as the HIS writes it: every property (null where unset), keys sorted, a "T" time."""
        now = dt.datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": "130100",
            "insuplc_admdvs": "130100",
            "recer_sys_code": "HIS",
            "dev_no": "D1",
            "infver": "1",
            "opter_type": "1",
            "opter": "001",
            "opter_name": "clerk",
            "inf_time": now,
            "fixmedins_code": self.code,
            "fixmedins_name": "drop-in",
            "sign_no": self.sign_no,
            "serv_code": "",
            "serv_sign": "",
            "input": shaped(CLASSES[infno], input_),
        }
        return json.dumps(shaped(ENVELOPE, envelope), sort_keys=True, ensure_ascii=False).encode()

    def post(self, infno: str, input_: dict, msgid: str) -> tuple[str, bytes]:
        """POST to the platform's path with the infno at the end; (Content-Type, the body's bytes)."""
        url = f"{self.server.url}{PATH}/{infno}"
        data = self.body(infno, input_, msgid)
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.server.signed_headers(None, data)}
        request = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            return response.headers.get_content_type(), response.read()

    def send(self, infno: str, input_: dict, msgid: str | None = None, ok: bool = True) -> dict:
        self.msgid = msgid or ServedCentre.next_msgid(self.code)
        answer = parse(self.post(infno, input_, self.msgid)[1])
        assert list(answer) == ENVELOPE_KEYS, answer
        assert re.fullmatch(r"\d{30}", answer["inf_refmsgid"]) and answer["inf_refmsgid"] != self.msgid, answer
        assert re.fullmatch(r"\d{17}", answer["refmsg_time"]) and re.fullmatch(r"\d{17}", answer["respond_time"])
        assert isinstance(answer["infcode"], int) and answer["infcode"] in (0, -1)
        if ok:
            assert answer["infcode"] == 0 and answer["err_msg"] is None, answer
        return answer

    def settle(self, infno: str, input_: dict, *, med_type: str, cert_type: str | None, mirror: bool = False) -> dict:
        """A settlement call whose answer is checked and, unless a pre-settlement, kept in the books."""
        info = check_settlement(self.send(infno, input_), med_type=med_type, cert_type=cert_type)
        if infno not in ("2101", "2206", "2303"):
            assert (info["medfee_sumamt"] < 0) == mirror or info["medfee_sumamt"] == 0
            self.books.append((self.code, info))
        return info

    def lose(self, infno: str, input_: dict) -> str:
        """Send a request whose answer never reaches the HIS (the connection drops): its msgid."""
        self.msgid = ServedCentre.next_msgid(self.code)
        self.post(infno, input_, self.msgid)  # the bytes are read and thrown away, unparsed
        return self.msgid


def check_identity(record: dict, psn_no: str) -> None:
    ident = default_registry().identities[psn_no]
    got = {k: record[k] for k in ("psn_name", "certno", "gend", "brdy", "naty")}
    assert got == {
        "psn_name": ident.psn_name,
        "certno": ident.certno,
        "gend": ident.gend,
        "brdy": ident.brdy.isoformat(),
        "naty": ident.naty,
    }


def check_settlement(answer: dict, *, med_type: str, cert_type: str | None) -> dict:
    """Every key of setlinfo and setldetail, the person from the registry, the identities in Decimal."""
    info, rows = answer["output"]["setlinfo"], answer["output"]["setldetail"]
    assert list(info) == SETLINFO_KEYS and len(SETLINFO_KEYS) == 41, sorted(set(SETLINFO_KEYS) ^ set(info))
    check_identity(info, info["psn_no"])
    day = dt.date.fromisoformat(info["setl_time"][:10])
    brdy = default_registry().identities[info["psn_no"]].brdy
    assert info["age"] == day.year - brdy.year - ((day.month, day.day) < (brdy.month, brdy.day))
    assert (info["med_type"], info["mdtrt_cert_type"], info["clr_type"]) == (med_type, cert_type, CLR_TYPE[med_type])
    assert info["clr_optins"] == info["psn_no"][:6]
    assert info["clr_way"] == POLICY.region(info["psn_no"][:6]).clr_way
    a = {k: Decimal(info[k]) for k in SETLINFO_KEYS[16:36] if k != "pool_prop_selfpay"}
    assert all(isinstance(info[k], (int, Decimal)) for k in a), info
    parts = ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")
    assert a["medfee_sumamt"] == sum(a[k] for k in parts)
    assert a["medfee_sumamt"] == a["fund_pay_sumamt"] + a["psn_part_amt"] + a["hosp_part_amt"]
    assert a["psn_part_amt"] == a["acct_pay"] + a["psn_cash_pay"]
    funds = ("hifp_pay", "hifob_pay", "hifmi_pay", "cvlserv_pay", "hifes_pay", "maf_pay", "oth_pay")
    assert a["fund_pay_sumamt"] == sum(a[k] for k in funds)
    for row in rows:
        assert list(row) == SETLDETAIL_KEYS, row
        assert row["fund_pay_type_name"] and isinstance(row["fund_payamt"], (int, Decimal)), row
    return info


def check_fee_rows(answer: dict, sent: list[dict]) -> None:
    rows = answer["output"]["result"]
    assert [r["feedetl_sn"] for r in rows] == [s["feedetl_sn"] for s in sent]
    for row, line in zip(rows, sent, strict=True):
        assert list(row) == RESULT_KEYS or set(row) == set(RESULT_KEYS), sorted(set(RESULT_KEYS) ^ set(row))
        for key in ("det_item_fee_sumamt", "cnt", "pric", "fulamt_ownpay_amt", "overlmt_amt", "inscp_scp_amt"):
            assert isinstance(row[key], (int, Decimal)), (key, row[key])
        assert row["pric"] == Decimal(line["pric"]) and row["cnt"] == Decimal(line["cnt"])
        parts = row["fulamt_ownpay_amt"] + row["overlmt_amt"] + row["preselfpay_amt"] + row["inscp_scp_amt"]
        assert row["det_item_fee_sumamt"] == parts


def persons(n: int, insutype: str = "310") -> list[str]:
    """The first ``n`` persons of the default population insured in 130100 under ``insutype``."""
    population = default_registry().population
    found = []
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == "130100" and d["insutype"] == insutype:
            found.append(str(d["psn_no"]))
            if len(found) == n:
                return found
    raise AssertionError(f"fewer than {n} persons")


def insutype_of(psn: str) -> str:
    population = default_registry().population
    return str(population.describe(population.psn_nos.index(psn))["insutype"])


EMPLOYEES = persons(6)
RESIDENTS = persons(2, "390")


def when(hours: int = 0) -> str:
    return (dt.datetime.now(SHANGHAI) - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")


def fees(mdtrt_id: str | None, psn: str, med_type: str, lines: list[tuple[str, int, str, str]]) -> list[dict]:
    return [
        {
            "feedetl_sn": sn,
            "mdtrt_id": mdtrt_id,
            "psn_no": psn,
            "med_type": med_type,
            "fee_ocur_time": when(1),
            "med_list_codg": CODES[k],
            "medins_list_codg": f"H{k:04d}",
            "pric": pric,
            "cnt": cnt,
            "det_item_fee_sumamt": f"{Decimal(pric) * Decimal(cnt):.2f}",
            "hosp_appr_flag": "1",
        }
        for sn, k, pric, cnt in lines
    ]


def total(lines: list[dict]) -> str:
    return f"{sum(Decimal(line['det_item_fee_sumamt']) for line in lines):.2f}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ServedCentre(tmp_path_factory.mktemp("his-dropin") / "centre") as served:
        yield served


@pytest.fixture(scope="module")
def reversals() -> list[tuple[str, str, str]]:
    """(institution, the settlement reversed, its mirror) of every 2601 that undid a lost settlement."""
    return []


@pytest.fixture(scope="module")
def books() -> list[tuple[str, dict]]:
    """(institution, setlinfo) of every settlement and cancel answer the HISes read in this module."""
    return []


def test_sign_in_and_1101_by_card(server, books):
    his = DropInHis(server, PHARMACY, books)
    assert his.sign_no
    psn = EMPLOYEES[0]
    answer = his.send("1101", {"data": {**certificate_of(psn)}})
    base, insu = answer["output"]["baseinfo"], answer["output"]["insuinfo"]
    assert list(base) == BASEINFO_KEYS or set(base) == set(BASEINFO_KEYS), sorted(set(base) ^ set(BASEINFO_KEYS))
    assert base["psn_no"] == psn
    check_identity(base, psn)
    assert insu and all(set(row) == set(INSUINFO_KEYS) for row in insu), insu
    assert insu[0]["insutype"] == "310" and insu[0]["insuplc_admdvs"] == "130100"
    assert isinstance(insu[0]["balc"], (int, Decimal))


def outpatient_visit(his: DropInHis, psn: str, med_type: str, lines: list[tuple[str, int, str, str]]) -> dict:
    ident = default_registry().identities[psn]
    otp_no = f"MZ{psn[-6:]}{med_type}"
    register = {"psn_no": psn, "begntime": when(2), "ipt_otp_no": otp_no, "dept_name": "内科"}
    reg = his.send("2201", {"data": {**register, "mdtrt_cert_type": "02", "mdtrt_cert_no": ident.certno}})
    data = reg["output"]["data"]
    assert list(data) == REGISTER_KEYS or set(data) == set(REGISTER_KEYS), data
    assert data["psn_no"] == psn and data["mdtrt_id"] and data["ipt_otp_no"] == otp_no, data
    visit = data["mdtrt_id"]
    disease = {"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900", "diag_name": "上呼吸道感染"}
    disease |= {"diag_dept": "内科", "dise_dor_no": "D001", "dise_dor_name": "王医生", "diag_time": when(2)}
    disease["vali_flag"] = "1"
    mdtrtinfo = {"mdtrt_id": visit, "psn_no": psn, "med_type": med_type, "begntime": when(2)}
    his.send("2203", {"mdtrtinfo": mdtrtinfo, "diseinfo": [disease]})
    sent = fees(visit, psn, med_type, lines)
    check_fee_rows(his.send("2204", {"feedetail": sent}), sent)
    return {
        "data": {
            "psn_no": psn,
            "mdtrt_id": visit,
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": ident.certno,
            "med_type": med_type,
            "medfee_sumamt": total(sent),
            "psn_setlway": "01",
            "insutype": insutype_of(psn),
            "acct_used_flag": "1",
        }
    }


def test_an_outpatient_day_with_a_cancel(server, books):
    his = DropInHis(server, HOSPITAL, books)
    settled = []
    for psn, med_type, lines in (
        (RESIDENTS[0], "11", [("1", 0, "12.50", "2"), ("2", 1, "30.00", "1")]),
        (EMPLOYEES[1], "11", [("1", 2, "45.00", "1")]),
        (EMPLOYEES[2], "14", [("1", 0, "900.00", "1")]),
    ):
        settle = outpatient_visit(his, psn, med_type, lines)
        pre = his.settle("2206", settle, med_type=med_type, cert_type="02")
        info = his.settle("2207", settle, med_type=med_type, cert_type="02")
        assert pre["medfee_sumamt"] == info["medfee_sumamt"] == Decimal(settle["data"]["medfee_sumamt"])
        settled.append(info)
    first = settled[0]
    cancel = {"data": {"setl_id": first["setl_id"], "mdtrt_id": first["mdtrt_id"], "psn_no": first["psn_no"]}}
    mirror = his.settle("2208", cancel, med_type="11", cert_type="02", mirror=True)
    assert mirror["medfee_sumamt"] == -first["medfee_sumamt"] and mirror["setl_id"] != first["setl_id"]


def read_card(his: DropInHis, psn: str) -> dict:
    """What an HIS does first: read the card's chip for 1101 (card number and card_sn), then name the card by
    its number alone in what follows, as the platform's 2102/2207/2304/2401 carry no card_sn."""
    person = his.send("1101", {"data": {**certificate_of(psn)}})["output"]
    assert person["baseinfo"]["psn_no"] == psn, person
    return {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_of(psn)}


def test_a_pharmacy_sale(server, books):
    his = DropInHis(server, PHARMACY, books)
    psn = EMPLOYEES[0]
    person = his.send("1101", {"data": {**certificate_of(psn)}})["output"]
    sent = fees(None, psn, "41", [("1", 0, "12.50", "2"), ("2", 1, "8.00", "1")])
    data = {"psn_no": person["baseinfo"]["psn_no"], "mdtrt_cert_type": "03", "mdtrt_cert_no": card_of(psn)}
    data |= {"med_type": "41", "medfee_sumamt": total(sent), "insutype": person["insuinfo"][0]["insutype"]}
    data |= {"psn_setlway": "01", "acct_used_flag": "1"}
    pre = his.settle("2101", {"data": data, "feedetail": sent}, med_type="41", cert_type="03")
    info = his.settle("2102", {"data": data, "feedetail": sent}, med_type="41", cert_type="03")
    assert pre["medfee_sumamt"] == info["medfee_sumamt"] == Decimal("33.00")
    assert info["balc"] <= person["insuinfo"][0]["balc"]


def test_an_inpatient_stay_with_a_mid_stay_settlement(server, books):
    his = DropInHis(server, HOSPITAL, books)
    psn = EMPLOYEES[3]
    card = read_card(his, psn)["mdtrt_cert_no"]
    disease = {"diag_type": "1", "diag_srt_no": "1", "diag_code": "K35.800", "diag_name": "阑尾炎", "vali_flag": "1"}
    admission = {"psn_no": psn, "insutype": "310", "begntime": when(72), "mdtrt_cert_type": "03"}
    admission |= {"mdtrt_cert_no": card, "med_type": "21", "ipt_no": "IPT0001"}
    admission["adm_dept_name"] = "外科"
    admit = his.send("2401", {"mdtrtinfo": admission, "diseinfo": [disease]})
    stay = admit["output"]["data"]["mdtrt_id"]
    first = fees(stay, psn, "21", [("1", 0, "2000.00", "1"), ("2", 1, "350.50", "2")])
    check_fee_rows(his.send("2301", {"feedetail": first}), first)
    data = {"psn_no": psn, "mdtrt_id": stay, "mdtrt_cert_type": "03", "mdtrt_cert_no": card}
    data["med_type"] = "21"
    data |= {"insutype": "310", "medfee_sumamt": total(first), "mid_setl_flag": "1", "acct_used_flag": "0"}
    mid = his.settle("2304", {"data": data}, med_type="21", cert_type="03")
    assert mid["medfee_sumamt"] == Decimal(total(first))
    more = fees(stay, psn, "21", [("3", 2, "480.00", "1")])
    check_fee_rows(his.send("2301", {"feedetail": more}), more)
    dscginfo = {"mdtrt_id": stay, "psn_no": psn, "insutype": "310", "endtime": when(0), "dscg_way": "1"}
    final_data = {**data, "medfee_sumamt": total(more), "mid_setl_flag": "0"}
    his.send("2402", {"dscginfo": dscginfo, "diseinfo": [disease]})
    final = his.settle("2304", {"data": final_data}, med_type="21", cert_type="03")
    assert final["medfee_sumamt"] == Decimal(total(more)) and final["setl_id"] != mid["setl_id"]


def test_a_lost_answer_then_2601(server, books, reversals):
    his = DropInHis(server, PHARMACY, books)
    psn = EMPLOYEES[4]
    sent = fees(None, psn, "41", [("1", 1, "20.00", "1")])
    data = {"psn_no": psn, **read_card(his, psn), "med_type": "41"}
    data |= {"medfee_sumamt": total(sent), "insutype": "310", "acct_used_flag": "1"}
    sale = {"data": data, "feedetail": sent}
    lost = his.lose("2102", sale)
    rvs = his.send("2601", {"data": {"psn_no": psn, "omsgid": lost, "oinfno": "2102"}})["output"]["data"]
    assert rvs["rvs_rslt"] == "reversed" and rvs["omsgid"] == lost, rvs
    reversals.append((PHARMACY, rvs["reversed_setl_id"], rvs["setl_id"]))
    again = his.send("2601", {"data": {"psn_no": psn, "omsgid": lost, "oinfno": "2102"}})["output"]["data"]
    assert again == rvs  # a second 2601 for the same omsgid answers as the first
    # The original resent: the stored answer of the settlement (now reversed), not a second settlement.
    resent = his.send("2102", sale, msgid=lost, ok=False)
    # DOMAIN.md's reversal rule: an applied original is undone, not tombstoned, so its late copy is the same
    # request and gets its stored answer (idempotency): the settlement now reversed, not a second one.
    assert resent["infcode"] == 0 and resent["err_msg"] is None, resent
    info = check_settlement(resent, med_type="41", cert_type="03")
    assert info["setl_id"] == rvs["reversed_setl_id"] != rvs["setl_id"]
    cancel = his.send("2103", {"data": {"setl_id": info["setl_id"], "psn_no": psn}}, ok=False)
    assert cancel["infcode"] == -1 and "already cancelled" in cancel["err_msg"], cancel
    # A message that never arrived: a tombstone, and its late copy is refused.
    never = ServedCentre.next_msgid(PHARMACY)
    tomb = his.send("2601", {"data": {"psn_no": psn, "omsgid": never, "oinfno": "2102"}})["output"]["data"]
    assert tomb["rvs_rslt"] == "tombstone", tomb
    late = his.send("2102", sale, msgid=never, ok=False)
    assert late["infcode"] == -1 and "reversed" in late["err_msg"] and late["output"] == {}, late


def unzipped(content: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return archive.read(archive.namelist()[0]).decode("utf-8-sig")


def zipped(name: str, text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, text.encode())
    return out.getvalue()


def test_3201_for_the_day_then_the_file_based_3202(server, books, reversals):
    for code, lines in ((PHARMACY, [("1", 2, "15.00", "1")]), (HOSPITAL, None)):
        his = DropInHis(server, code, books)
        if lines:  # at least one settlement of each institution, whatever ran before
            psn = EMPLOYEES[5]
            sent = fees(None, psn, "41", lines)
            data = {"psn_no": psn, **read_card(his, psn), "med_type": "41"}
            his.settle(
                "2102",
                {"data": {**data, "medfee_sumamt": total(sent)}, "feedetail": sent},
                med_type="41",
                cert_type="03",
            )
        else:
            settle = outpatient_visit(his, EMPLOYEES[5], "11", [("1", 1, "60.00", "1")])
            his.settle("2207", settle, med_type="11", cert_type="02")
        mine = [info for owner, info in books if owner == code]
        today = dt.datetime.now(SHANGHAI).date().isoformat()
        assert {info["setl_time"][:10] for info in mine} == {today}
        groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for info in mine:
            groups[(info["insutype"], info["clr_type"], info["clr_optins"])].append(info)
        for (insutype, clr_type, optins), infos in sorted(groups.items()):
            sums = {k: f"{sum(i[k] for i in infos):.2f}" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
            count = sum(-1 if i["medfee_sumamt"] < 0 else 1 for i in infos)
            period = {"insutype": insutype, "clr_type": clr_type, "setl_optins": optins}
            period |= {"stmt_begndate": today, "stmt_enddate": today, "fixmedins_setl_cnt": str(count)}
            stmt = his.send("3201", {"data": {**period, **sums}})["output"]["stmtinfo"]
            assert stmt["stmt_rslt"] == "0", (code, period, sums, stmt)

        lines_out = []
        for info in mine:
            refd = "1" if info["medfee_sumamt"] < 0 else "0"
            amounts = [f"{info[k]:.2f}" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")]
            lines_out.append("\t".join([info["setl_id"], info["mdtrt_id"], info["psn_no"], *amounts, refd]))
        text = "setl_id\tmdtrt_id\tpsn_no\tmedfee_sumamt\tfund_pay_sumamt\tacct_pay\trefd_setl_flag\r\n"
        text += "\r\n".join(lines_out) + "\r\n"
        upload = {"in": base64.b64encode(zipped("detail.txt", text)).decode(), "filename": "detail.txt.zip"}
        uploaded = his.send("9101", {"fsUploadIn": {**upload, "fixmedins_code": code}})["output"]
        totals = {
            "medfee_sumamt": f"{sum(i['medfee_sumamt'] for i in mine):.2f}",
            "fund_pay_sumamt": f"{sum(i['fund_pay_sumamt'] for i in mine):.2f}",
            "cash_payamt": f"{sum(i['psn_cash_pay'] for i in mine):.2f}",
            "fixmedins_setl_cnt": str(len(mine)),
        }
        request = {"setl_optins": "130100", "file_qury_no": uploaded["file_qury_no"], "stmt_begndate": today}
        answer = his.send("3202", {"data": {**request, "stmt_enddate": today, **totals}})["output"]
        fileinfo = answer["fileinfo"]
        download = {"file_qury_no": fileinfo["file_qury_no"], "filename": fileinfo["filename"], "fixmedins_code": code}
        kind, content = his.post("9102", {"fsDownloadIn": download}, ServedCentre.next_msgid(code))
        assert kind == "application/octet-stream"
        rows = [line.split("\t") for line in unzipped(content).splitlines()]
        assert all(len(row) == 8 for row in rows) and [r[0] for r in rows] == sorted(r[0] for r in rows)
        by_id = {row[0]: row for row in rows}
        for line in lines_out:
            assert by_id[line.split("\t")[0]] == [*line.split("\t"), "both"]
        others = [row for row in rows if row[0] not in {i["setl_id"] for i in mine}]
        assert all(row[7] == "centre_only" for row in others), others
        # only the lost sales and their reversals' mirrors, which the HIS never booked: netting to zero
        assert {row[0] for row in others} == {s for rvs in reversals if rvs[0] == code for s in rvs[1:]}, others
        assert sum(Decimal(row[3]) for row in others) == 0
        assert answer["one_sided"] == len(others)
