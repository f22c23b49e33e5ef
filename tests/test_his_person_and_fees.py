"""What an HIS reads from 1101, 2201 and the fee uploads' result rows (2204 / 2301), over real HTTP.

Every key of the platform's answer is there (DOMAIN's lists, docs/messages.md), the person's values are the
registry's, the result rows' flags the catalogue's, and amounts and ratios come back as JSON numbers whatever
the request sent (numbers, or numeric strings).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from centre_rig import HOSPITAL, POLICY, ServedCentre, card_of, certificate_of, default_registry, first_person
from medsettle.centre.person_info import age_on, person_answer
from medsettle.centre.registry import PERSON_EVENT, Registry
from medsettle.engine import Population
from medsettle.errors import PolicyError
from medsettle.policy.loader import OPTIONAL_CATALOGUE_COLUMNS, default_policy_path, load_policy
from medsettle.timeutil import month_index
from platform_keys import BASEINFO_KEYS, INSUINFO_KEYS, RESULT_KEYS

BASEINFO, INSUINFO, RESULT_ROW = set(BASEINFO_KEYS), set(INSUINFO_KEYS), set(RESULT_KEYS)
AMOUNTS = (
    "det_item_fee_sumamt",
    "cnt",
    "pric",
    "selfpay_prop",
    "fulamt_ownpay_amt",
    "overlmt_amt",
    "preselfpay_amt",
    "inscp_scp_amt",
)
FLAGS = ("bas_medn_flag", "hi_nego_drug_flag", "chld_medc_flag", "list_sp_item_flag", "lmt_used_flag", "drt_reim_flag")
CATALOGUE = POLICY.region("130100").catalogue_on(dt.date(2026, 3, 2))
SHANGHAI = ZoneInfo("Asia/Shanghai")


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def shanghai_today() -> dt.date:
    return dt.datetime.now(SHANGHAI).date()


def items(predicate) -> list:
    return [item for item in CATALOGUE.items if predicate(item)]


def test_1101_answers_every_key_with_the_registrys_values(served_centre: ServedCentre) -> None:
    registry = default_registry()
    population = registry.population
    sign_no = served_centre.sign_in()
    # the first person, and someone of another ethnicity than 01 (so naty is checked, not only defaulted)
    other = next(p for p, ident in registry.identities.items() if ident.naty != "01" and registry.cards_of.get(p))
    for psn_no in (first_person(), other):
        ident = registry.identities[psn_no]
        card = registry.cards[card_of(psn_no)]
        before = shanghai_today()
        for data in (
            {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn},
            {"mdtrt_cert_type": "02", "mdtrt_cert_no": ident.certno, "certno": ident.certno, "psn_cert_type": "01"},
        ):
            answer, _ = served_centre.call("1101", {"data": data}, sign_no=sign_no)
            assert answer["infcode"] == 0, answer
            base, insu = answer["output"]["baseinfo"], answer["output"]["insuinfo"]
            assert set(base) == BASEINFO
            assert {k: base[k] for k in ("psn_no", "psn_name", "certno", "gend", "naty", "brdy")} == {
                "psn_no": psn_no,
                "psn_name": ident.psn_name,
                "certno": ident.certno,
                "gend": ident.gend,
                "naty": ident.naty,
                "brdy": ident.brdy.isoformat(),
            }
            assert base["psn_cert_type"] == "01" and base["exp_content"] is None
            assert base["age"] in {age_on(ident.brdy, before), age_on(ident.brdy, shanghai_today())}
            assert base["certno"][6:14] == ident.brdy.strftime("%Y%m%d")  # the ID number carries the birth date
            assert int(base["certno"][16]) % 2 == (1 if base["gend"] == "1" else 0)
            assert len(insu) == 1 and set(insu[0]) == INSUINFO
            row, d = insu[0], population.describe(population.index_of(psn_no))
            assert is_number(row["balc"])
            assert {k: row[k] for k in ("insutype", "psn_type", "insuplc_admdvs", "emp_name")} == {
                "insutype": d["insutype"],
                "psn_type": d["psn_type"],
                "insuplc_admdvs": d["insuplc_admdvs"],
                "emp_name": ident.emp_name,
            }
            assert row["psn_insu_stas"] == "1" and row["paus_insu_date"] is None and row["cvlserv_flag"] == "0"
            assert row["psn_insu_date"] == f"{d['contrib_from']}-01"
            assert isinstance(answer["output"]["idetinfo"], list)


def test_a_paused_person_and_an_ended_one() -> None:
    """Contributions that stopped before last month pause the insurance (psn_insu_stas 2, paus_insu_date the
    first month not paid for); a cancelled person's insurance has ended (4) with no pause date."""
    registry = Registry.generate(Population.generate(POLICY, 20, seed=3))
    population = registry.population
    today = dt.date(2026, 3, 2)
    paused, ended, current = population.psn_nos[:3]
    population.attrs["paid_through"][population.index_of(paused)] = month_index(dt.date(2025, 11, 1))
    registry.apply(PERSON_EVENT, {"action": "cancel", "psn_no": ended})
    population.attrs["paid_through"][population.index_of(current)] = month_index(dt.date(2026, 2, 1))
    p = person_answer(registry, paused, 0, today=today)["insuinfo"][0]
    assert (p["psn_insu_stas"], p["paus_insu_date"]) == ("2", "2025-12-01")
    e = person_answer(registry, ended, 0, today=today)["insuinfo"][0]
    assert (e["psn_insu_stas"], e["paus_insu_date"]) == ("4", None)
    c = person_answer(registry, current, 12345, today=today)["insuinfo"][0]
    assert (c["psn_insu_stas"], c["paus_insu_date"], c["balc"]) == ("1", None, Decimal("123.45"))


def test_whole_years_of_age() -> None:
    born = dt.date(2000, 3, 2)
    assert [age_on(born, dt.date(2026, 3, 1)), age_on(born, dt.date(2026, 3, 2))] == [25, 26]
    assert age_on(dt.date(2004, 2, 29), dt.date(2026, 2, 28)) == 21


def _line(mdtrt_id: str, psn_no: str, sn: str, item, pric: str, cnt: str, approved: str = "0") -> str:
    """A fee line as JSON text with pric and cnt as bare numbers (as Newtonsoft writes a decimal)."""
    text = json.dumps(
        {
            "feedetl_sn": sn,
            "mdtrt_id": mdtrt_id,
            "psn_no": psn_no,
            "med_type": "11",
            "fee_ocur_time": "2026-03-02 10:00:00",
            "med_list_codg": item.med_list_codg,
            "medins_list_codg": "H-" + item.med_list_codg,
            "pric": "@PRIC@",
            "cnt": "@CNT@",
            "det_item_fee_sumamt": None,
            "hosp_appr_flag": approved,
        }
    )
    return text.replace('"@PRIC@"', pric).replace('"@CNT@"', cnt)


def _check_rows(rows: list[dict], lines: list[tuple], psn_type: str) -> None:
    """Every key, numbers as numbers, the flags and class as the catalogue has them, and the split adds up."""
    for row, (sn, item, pric, cnt, approved) in zip(rows, lines, strict=True):
        assert set(row) == RESULT_ROW, sorted(set(row) ^ RESULT_ROW)
        assert row["feedetl_sn"] == sn
        for key in AMOUNTS:
            assert is_number(row[key]), (key, row[key])
        assert Decimal(str(row["pric"])) == Decimal(pric) and Decimal(str(row["cnt"])) == Decimal(cnt)
        assert row["chrgitm_lv"] == item.chrgitm_lv and row["med_chrgitm_type"] == item.med_chrgitm_type
        for flag in FLAGS:
            assert row[flag] == ("1" if getattr(item, flag) else "0"), flag
        if item.pric_uplmt_amt is None:
            assert row["pric_uplmt_amt"] is None
        else:
            assert Decimal(str(row["pric_uplmt_amt"])) * 10_000 == item.pric_uplmt_amt
        own = item.chrgitm_lv == "03" or (item.lmt_used_flag and approved != "1")
        want = 1 if own else (Decimal(item.selfpay_for(psn_type)) / 10_000 if item.chrgitm_lv == "02" else 0)
        assert Decimal(str(row["selfpay_prop"])) == want
        assert row["memo"] is None and row["exp_content"] is None
        parts = ("fulamt_ownpay_amt", "overlmt_amt", "preselfpay_amt", "inscp_scp_amt")
        assert sum(Decimal(str(row[k])) for k in parts) == Decimal(str(row["det_item_fee_sumamt"]))
        if own:
            assert Decimal(str(row["fulamt_ownpay_amt"])) == Decimal(str(row["det_item_fee_sumamt"]))


def test_fee_result_rows_carry_every_key_and_the_catalogues_flags(served_centre: ServedCentre) -> None:
    psn_no = first_person()
    psn_type = default_registry().population.describe(default_registry().population.index_of(psn_no))["psn_type"]
    sign_no = served_centre.sign_in(HOSPITAL)

    def call(infno: str, input_: object) -> dict:
        answer, _ = served_centre.call(infno, input_, sign_no=sign_no, fixmedins_code=HOSPITAL)
        assert answer["infcode"] == 0, answer
        return answer

    reg = call(
        "2201",
        {
            "data": {
                "psn_no": psn_no,
                "insutype": "310",
                "begntime": "2026-03-02 09:30:00",
                **certificate_of(psn_no),
                "ipt_otp_no": "OP7",
            }
        },
    )
    data = reg["output"]["data"]
    assert set(data) == {"mdtrt_id", "psn_no", "ipt_otp_no", "exp_content"}
    assert (data["psn_no"], data["ipt_otp_no"], data["exp_content"]) == (psn_no, "OP7", None)
    mdtrt_id = data["mdtrt_id"]
    call(
        "2203",
        {
            "mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": "11"},
            "diseinfo": [{"diag_type": "1", "diag_code": "J00"}],
        },
    )
    capped = items(lambda i: i.pric_uplmt_amt is not None and i.chrgitm_lv != "03")[0]
    over = str((Decimal(capped.pric_uplmt_amt) / 10_000 + Decimal("1.5")).quantize(Decimal("0.01")))
    lines = [  # (sn, item, pric, cnt, hosp_appr_flag): one of each kind the split treats apart
        ("1", items(lambda i: i.chrgitm_lv == "01" and i.pric_uplmt_amt is None)[0], "12.5", "180.000000", "0"),
        ("2", items(lambda i: i.chrgitm_lv == "02" and not i.lmt_used_flag and i.selfpay_prop)[0], "3.25", "2", "0"),
        ("3", items(lambda i: i.chrgitm_lv == "03")[0], "8", "1", "0"),
        ("4", capped, over, "2", "0"),
        ("5", items(lambda i: i.lmt_used_flag)[0], "20.00", "1", "0"),
        ("6", items(lambda i: i.lmt_used_flag)[0], "20.00", "1", "1"),
        ("7", items(lambda i: i.bas_medn_flag and i.chld_medc_flag)[0], "1.1", "3", "0"),
        ("8", items(lambda i: i.hi_nego_drug_flag)[0], "45.6", "1", "0"),
        ("9", items(lambda i: i.list_sp_item_flag)[0], "100", "1", "0"),
    ]
    body = '{"feedetail": [' + ", ".join(_line(mdtrt_id, psn_no, *line) for line in lines) + "]}"
    raw = json.dumps(
        {
            "infno": "2204",
            "msgid": served_centre.next_msgid(HOSPITAL),
            "mdtrtarea_admvs": "130100",
            "insuplc_admdvs": "130100",
            "recer_sys_code": "MEDSETTLE",
            "dev_no": "D1",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "001",
            "opter_name": "clerk",
            "inf_time": "2026-03-02 10:00:00",
            "fixmedins_code": HOSPITAL,
            "fixmedins_name": "x",
            "sign_no": sign_no,
            "input": "@INPUT@",
        }
    ).replace('"@INPUT@"', body)
    up = served_centre.post(None, raw=raw.encode())
    assert up["infcode"] == 0, up
    rows = up["output"]["result"]
    _check_rows(rows, lines, psn_type)
    assert rows[3]["overlmt_amt"] > 0  # over the cap
    assert rows[4]["fulamt_ownpay_amt"] == rows[4]["det_item_fee_sumamt"]  # restricted, not approved: own pay
    assert rows[5]["fulamt_ownpay_amt"] == 0 and rows[5]["selfpay_prop"] < 1  # approved: class B as any other
    # the same lines as numeric strings answer the same numbers
    strings = [(f"1{sn}", item, pric, cnt, appr) for sn, item, pric, cnt, appr in lines]
    feedetail = [
        json.loads(_line(mdtrt_id, psn_no, sn, item, json.dumps(pric), json.dumps(cnt), appr))
        for sn, item, pric, cnt, appr in strings
    ]
    again = call("2204", {"feedetail": feedetail})["output"]["result"]
    _check_rows(again, strings, psn_type)
    assert [{k: r[k] for k in AMOUNTS} for r in again] == [{k: r[k] for k in AMOUNTS} for r in rows]


def test_inpatient_fee_rows_too(served_centre: ServedCentre) -> None:
    psn_no = first_person()
    psn_type = default_registry().population.describe(default_registry().population.index_of(psn_no))["psn_type"]
    sign_no = served_centre.sign_in(HOSPITAL)
    admit, _ = served_centre.call(
        "2401",
        {
            "mdtrtinfo": {
                "psn_no": psn_no,
                "med_type": "21",
                "begntime": "2026-03-02 08:00:00",
                "ipt_no": "Z9",
                **certificate_of(psn_no),
            },
            "diseinfo": [{"diag_code": "K35"}],
        },
        sign_no=sign_no,
        fixmedins_code=HOSPITAL,
    )
    assert admit["infcode"] == 0, admit
    stay = admit["output"]["data"]["mdtrt_id"]
    item = items(lambda i: i.chrgitm_lv == "02" and i.selfpay_prop and i.med_chrgitm_type == "09")[0]
    line = json.loads(_line(stay, psn_no, "1", item, "66.6", "2.5"))
    line["med_type"] = "21"
    up, _ = served_centre.call("2301", {"feedetail": [line]}, sign_no=sign_no, fixmedins_code=HOSPITAL)
    assert up["infcode"] == 0, up
    _check_rows(up["output"]["result"], [("1", item, "66.6", "2.5", "0")], psn_type)


def _policy_with_catalogue(tmp_path: Path, edit) -> Path:
    """A copy of the default policy whose 130100 catalogue file is ``edit``(rows) of the shipped one's."""
    data = default_policy_path().parent
    for f in data.iterdir():
        shutil.copy(f, tmp_path / f.name)
    path = tmp_path / "catalogue-130100.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows = edit(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "default.toml"


def test_an_older_catalogue_file_without_the_answer_columns_loads_with_their_defaults(tmp_path: Path) -> None:
    def older(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k not in OPTIONAL_CATALOGUE_COLUMNS} for row in rows]

    policy = load_policy(_policy_with_catalogue(tmp_path, older))
    old, shipped = policy.region("130100").catalogues[0].items, CATALOGUE.items
    assert all(item.med_chrgitm_type == "14" for item in old)
    assert not any(getattr(item, flag) for item in old for flag in FLAGS if flag != "lmt_used_flag")
    engine_view = ("med_list_codg", "chrgitm_lv", "selfpay_prop", "selfpay_prop_by_psn_type", "pric_uplmt_amt")
    assert [[getattr(i, k) for k in engine_view + ("lmt_used_flag",)] for i in old] == [
        [getattr(i, k) for k in engine_view + ("lmt_used_flag",)] for i in shipped
    ]


def test_a_bad_answer_flag_is_refused_naming_its_line(tmp_path: Path) -> None:
    def bad(rows: list[dict]) -> list[dict]:
        rows[3]["bas_medn_flag"] = "maybe"
        return rows

    with pytest.raises(PolicyError, match=r"items\[3\]\.bas_medn_flag .*line 5"):
        load_policy(_policy_with_catalogue(tmp_path, bad))
