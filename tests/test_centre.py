"""The centre as an integrator meets it: a real `medsettle serve` process, HTTP on 127.0.0.1."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import urllib.request

from centre_rig import (
    CODES,
    HOSPITAL,
    PHARMACY,
    POLICY,
    ServedCentre,
    card_of,
    certificate_of,
    default_population,
    default_registry,
    first_person,
)
from medsettle.policy.models import RuleSet


def sale(psn_no, lines=((0, "12.50", "2"),), **data):
    return {
        "data": {
            "psn_no": psn_no,
            **(certificate_of(psn_no) if psn_no in default_registry().cards_of else {}),
            "med_type": "41",
            "acct_used_flag": "1",
            **data,
        },
        "feedetail": [
            {
                "feedetl_sn": str(i + 1),
                "med_list_codg": CODES[k],
                "pric": p,
                "cnt": c,
                "fee_ocur_time": "2026-03-02 09:58:00",
            }
            for i, (k, p, c) in enumerate(lines)
        ],
    }


def test_a_pharmacy_sale_from_sign_in_to_cancel_survives_a_restart(tmp_path):
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        psn = first_person()
        pre, _ = server.call("2101", sale(psn), sign_no=sign_no)
        assert pre["infcode"] == 0, pre
        assert pre["output"]["setlinfo"]["medfee_sumamt"] == 25.0
        settled, msgid = server.call("2102", sale(psn, medfee_sumamt="25.00"), sign_no=sign_no)
        assert settled["infcode"] == 0, settled
        info = settled["output"]["setlinfo"]
        assert info["medfee_sumamt"] == 25.0 and info["psn_part_amt"] + info["fund_pay_sumamt"] == 25.0
        # The same request again: the stored answer, not a second settlement.
        again, _ = server.call("2102", sale(psn, medfee_sumamt="25.00"), sign_no=sign_no, msgid=msgid)
        assert again["output"] == settled["output"]
        # The same msgid with another body is refused.
        other, _ = server.call("2102", sale(psn, lines=((1, "3.00", "1"),)), sign_no=sign_no, msgid=msgid)
        assert other["infcode"] == -1 and "msgid" in other["err_msg"]
        entries = server.journal_count()
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()  # the same data directory: the journal is replayed
    try:
        sign_no = server.sign_in()
        again, _ = server.call("2102", sale(psn, medfee_sumamt="25.00"), sign_no=sign_no, msgid=msgid)
        assert again["output"] == settled["output"]
        cancelled, _ = server.call("2103", {"data": {"setl_id": info["setl_id"], "psn_no": psn}}, sign_no=sign_no)
        assert cancelled["infcode"] == 0, cancelled
        mirror = cancelled["output"]["setlinfo"]
        assert mirror["medfee_sumamt"] == -25.0 and mirror["balc"] == info["balc"] + info["acct_pay"]
        twice, _ = server.call("2103", {"data": {"setl_id": info["setl_id"], "psn_no": psn}}, sign_no=sign_no)
        assert twice["infcode"] == -1 and "already cancelled" in twice["err_msg"]
        assert server.journal_count() > entries
    finally:
        server.stop()


def test_bad_requests_name_what_is_wrong_and_change_nothing(served_centre):
    sign_no = served_centre.sign_in()
    psn = first_person()
    before = served_centre.journal_count()
    cases = [
        (served_centre.post(None, raw=b"{not json"), "not JSON"),
        (served_centre.post(None, raw=b"x" * (1024 * 1024 + 10)), "over"),
        (served_centre.post(None, raw=b'{"infno":"2102","msgid":"\\ud800"}'), "surrogate"),
        (served_centre.call("9999", {}, sign_no=sign_no)[0], "infno"),
        (served_centre.call("2102", sale(psn), sign_no="nope")[0], "sign_no"),
        (served_centre.call("2102", sale(psn), sign_no=sign_no, fixmedins_code="X00000000000")[0], "fixmedins_code"),
        (served_centre.call("2102", sale(psn, lines=((0, "-1.00", "1"),)), sign_no=sign_no)[0], "feedetail[0].pric"),
        (served_centre.call("2102", sale(psn, lines=((0, "1.00", "abc"),)), sign_no=sign_no)[0], "feedetail[0].cnt"),
        (served_centre.call("2102", sale(psn, medfee_sumamt="99.99"), sign_no=sign_no)[0], "medfee_sumamt"),
        (served_centre.call("2102", sale("NOBODY"), sign_no=sign_no)[0], "psn_no"),
        (served_centre.call("2102", {"data": {"psn_no": psn}}, sign_no=sign_no)[0], "feedetail"),
        (served_centre.call("2102", sale(psn, med_type="11"), sign_no=sign_no)[0], "med_type"),
    ]
    for answer, named in cases:
        assert answer["infcode"] == -1 and named in answer["err_msg"], (named, answer)
    assert served_centre.journal_count() == before
    # A hospital may not sell as a pharmacy.
    hospital_sign = served_centre.sign_in(HOSPITAL)
    answer, _ = served_centre.call("2102", sale(psn), sign_no=hospital_sign, fixmedins_code=HOSPITAL)
    assert answer["infcode"] == -1 and "med_type 41" in answer["err_msg"]


def test_schemas_are_published(served_centre):
    with urllib.request.urlopen(served_centre.url + "schema", timeout=30) as resp:
        schemas = json.loads(resp.read())
    assert "msgid" in schemas["envelope"]["properties"]
    assert set(schemas["inputs"]) >= {"9001", "9002", "2101", "2102", "2103"}
    assert {"enrol", "contribute", "issue_card", "transfer_out", "transfer_in", "issue_qr"} <= set(schemas["admin"])
    assert "certno" in schemas["admin"]["enrol"]["properties"]


def fee(mdtrt_id, psn, sn, code_index, pric, cnt="1"):
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": "11",
        "fee_ocur_time": "2026-03-02 10:05:00",
        "med_list_codg": CODES[code_index],
        "medins_list_codg": "L" + sn,
        "pric": pric,
        "cnt": cnt,
        "det_item_fee_sumamt": None,
        "hosp_appr_flag": "0",
    }


def test_an_outpatient_visit_from_registration_to_settlement_and_back(tmp_path):
    psn = first_person()
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in(HOSPITAL)

        def call(infno, input_, **kw):
            answer, msgid = server.call(infno, input_, sign_no=sign_no, fixmedins_code=HOSPITAL, **kw)
            return answer, msgid

        reg, _ = call(
            "2201",
            {
                "data": {
                    "psn_no": psn,
                    "insutype": "310",
                    "begntime": "2026-03-02 09:30:00",
                    **certificate_of(psn),
                    "ipt_otp_no": "OP1",
                }
            },
        )
        assert reg["infcode"] == 0, reg
        mdtrt_id = reg["output"]["data"]["mdtrt_id"]
        visit, _ = call(
            "2203",
            {
                "mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn, "med_type": "11"},
                "diseinfo": [{"diag_type": "1", "diag_code": "J00"}],
            },
        )
        assert visit["infcode"] == 0, visit
        up, _ = call(
            "2204", {"feedetail": [fee(mdtrt_id, psn, "1", 0, "30.00"), fee(mdtrt_id, psn, "2", 1, "12.00", "2")]}
        )
        assert up["infcode"] == 0, up
        assert [r["det_item_fee_sumamt"] for r in up["output"]["result"]] == [30.0, 24.0]
        dup_sn, _ = call("2204", {"feedetail": [fee(mdtrt_id, psn, "2", 1, "1.00")]})
        assert dup_sn["infcode"] == -1 and "feedetl_sn" in dup_sn["err_msg"]
        assert call("2204", {"feedetail": [fee(mdtrt_id, psn, "3", 2, "5.00")]})[0]["infcode"] == 0
        assert call("2205", {"data": {"feedetl_sn": "3", "mdtrt_id": mdtrt_id, "psn_no": psn}})[0]["infcode"] == 0
        settle_input = {
            "data": {
                "psn_no": psn,
                "mdtrt_id": mdtrt_id,
                "med_type": "11",
                "medfee_sumamt": "54.00",
                "acct_used_flag": "1",
                "insutype": "310",
                **certificate_of(psn),
            }
        }
        pre, _ = call("2206", settle_input)
        assert pre["infcode"] == 0 and pre["output"]["setlinfo"]["medfee_sumamt"] == 54.0, pre
        settled, msgid = call("2207", settle_input)
        assert settled["infcode"] == 0, settled
        info = settled["output"]["setlinfo"]
        assert {k: info[k] for k in ("medfee_sumamt", "mdtrt_id")} == {"medfee_sumamt": 54.0, "mdtrt_id": mdtrt_id}
        assert call("2207", settle_input, msgid=msgid)[0]["output"] == settled["output"]  # resent: same answer
        nothing_left, _ = call("2207", settle_input)
        assert nothing_left["infcode"] == -1 and "no unsettled fee lines" in nothing_left["err_msg"]
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()  # restart: visits, lines and answers come back from the journal
    try:
        sign_no = server.sign_in(HOSPITAL)
        assert (
            server.call("2207", settle_input, sign_no=sign_no, fixmedins_code=HOSPITAL, msgid=msgid)[0]["output"]
            == settled["output"]
        )
        cancel, _ = server.call(
            "2208",
            {"data": {"setl_id": info["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": psn}},
            sign_no=sign_no,
            fixmedins_code=HOSPITAL,
        )
        assert cancel["infcode"] == 0 and cancel["output"]["setlinfo"]["medfee_sumamt"] == -54.0, cancel
        again, _ = server.call("2207", settle_input, sign_no=sign_no, fixmedins_code=HOSPITAL)
        assert again["infcode"] == 0 and again["output"]["setlinfo"]["setl_id"] != info["setl_id"], again
        assert again["output"]["setlinfo"]["medfee_sumamt"] == 54.0
    finally:
        server.stop()


def test_accumulators_after_a_settlement(served_centre):
    psn = first_person()
    cert = certificate_of(psn)
    sign_no = served_centre.sign_in()
    before, _ = served_centre.call("5206", {"data": {"psn_no": psn, "cum_ym": "202603", **cert}}, sign_no=sign_no)
    assert before["infcode"] == 0, before
    settled, _ = served_centre.call("2102", sale(psn, lines=((0, "300.00", "1"),)), sign_no=sign_no)
    info = settled["output"]["setlinfo"]
    after, _ = served_centre.call("5206", {"data": {"psn_no": psn, "cum_ym": "202603", **cert}}, sign_no=sign_no)
    cum = {c["cum_type_code"]: c["cum"] for c in after["output"]["cuminfo"]}
    assert cum["D-outpatient"] == info["act_pay_dedc"] and cum["P-outpatient"] == info["hifp_pay"]
    bad, _ = served_centre.call("5206", {"data": {"psn_no": psn, "cum_ym": "2026-3", **cert}}, sign_no=sign_no)
    assert bad["infcode"] == -1 and "cum_ym" in bad["err_msg"]


def test_reversal_undoes_an_applied_settlement_and_tombstones_a_lost_one(tmp_path):
    psn = first_person()
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        settled, omsgid = server.call("2102", sale(psn), sign_no=sign_no)
        assert settled["infcode"] == 0
        rvs = {"data": {"psn_no": psn, "omsgid": omsgid, "oinfno": "2102"}}
        first, _ = server.call("2601", rvs, sign_no=sign_no)
        assert first["infcode"] == 0 and first["output"]["data"]["rvs_rslt"] == "reversed", first
        second, _ = server.call("2601", rvs, sign_no=sign_no)  # another 2601 for the same omsgid
        assert second["output"] == first["output"]
        # The settlement is cancelled: a 2103 for it is refused as already cancelled.
        setl_id = settled["output"]["setlinfo"]["setl_id"]
        again, _ = server.call("2103", {"data": {"setl_id": setl_id, "psn_no": psn}}, sign_no=sign_no)
        assert again["infcode"] == -1 and "already cancelled" in again["err_msg"]
        # A message that never arrived: a tombstone, and its late copy is refused.
        lost = f"{PHARMACY}202603021000009999"
        tomb, _ = server.call("2601", {"data": {"psn_no": psn, "omsgid": lost, "oinfno": "2102"}}, sign_no=sign_no)
        assert tomb["output"]["data"]["rvs_rslt"] == "tombstone"
        late, _ = server.call("2102", sale(psn), sign_no=sign_no, msgid=lost)
        assert late["infcode"] == -1 and "reversed" in late["err_msg"]
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        assert server.call("2601", rvs, sign_no=sign_no)[0]["output"] == first["output"]
        late, _ = server.call("2102", sale(psn), sign_no=sign_no, msgid=lost)
        assert late["infcode"] == -1 and "reversed" in late["err_msg"]
    finally:
        server.stop()


def test_reversal_of_a_registration(served_centre):
    psn = first_person()
    sign_no = served_centre.sign_in(HOSPITAL)
    reg, omsgid = served_centre.call(
        "2201",
        {"data": {"psn_no": psn, "begntime": "2026-03-02 09:30:00", **certificate_of(psn)}},
        sign_no=sign_no,
        fixmedins_code=HOSPITAL,
    )
    mdtrt_id = reg["output"]["data"]["mdtrt_id"]
    rvs, _ = served_centre.call(
        "2601", {"data": {"psn_no": psn, "omsgid": omsgid, "oinfno": "2201"}}, sign_no=sign_no, fixmedins_code=HOSPITAL
    )
    assert rvs["output"]["data"] == {"omsgid": omsgid, "oinfno": "2201", "rvs_rslt": "reversed", "mdtrt_id": mdtrt_id}
    up, _ = served_centre.call(
        "2204", {"feedetail": [fee(mdtrt_id, psn, "1", 0, "1.00")]}, sign_no=sign_no, fixmedins_code=HOSPITAL
    )
    assert up["infcode"] == -1 and "no open visit" in up["err_msg"]


def test_reconciliation_finds_a_one_sided_settlement_and_2601_clears_it(served_centre):
    sign_no = served_centre.sign_in()
    population = default_population()
    persons = [population.describe(i) for i in range(len(population))]
    employees = [p["psn_no"] for p in persons if p["insuplc_admdvs"] == "130100" and p["insutype"] == "310"][:4]
    kept = []  # what the pharmacy's own books hold
    for k, psn in enumerate(employees):
        answer, msgid = served_centre.call("2102", sale(psn, lines=((k, "20.00", "1"),)), sign_no=sign_no)
        assert answer["infcode"] == 0, answer
        if k == 2:
            lost_msgid = msgid  # the answer never reached the counter: the books do not have it
            continue
        kept.append(answer["output"]["setlinfo"])
    cancel, _ = served_centre.call(
        "2103", {"data": {"setl_id": kept[0]["setl_id"], "psn_no": kept[0]["psn_no"]}}, sign_no=sign_no
    )
    kept.append(cancel["output"]["setlinfo"])
    today = cancel["output"]["setlinfo"]["setl_time"][:10]

    def statement():
        totals = {k: f"{sum(s[k] for s in kept):.2f}" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
        count = sum(1 if s["medfee_sumamt"] >= 0 else -1 for s in kept)
        answer, _ = served_centre.call(
            "3201",
            {
                "data": {
                    "insutype": "310",
                    "clr_type": "41",
                    "setl_optins": "130100",
                    "stmt_begndate": today,
                    "stmt_enddate": today,
                    "fixmedins_setl_cnt": count,
                    **totals,
                }
            },
            sign_no=sign_no,
        )
        assert answer["infcode"] == 0, answer
        return answer["output"]["stmtinfo"]

    assert statement()["stmt_rslt"] == "1"
    detail, _ = served_centre.call(
        "3202",
        {"data": {"stmt_begndate": today, "stmt_enddate": today}, "detail": [{"setl_id": s["setl_id"]} for s in kept]},
        sign_no=sign_no,
    )
    one_sided = [d for d in detail["output"]["detail"] if d["stmt_rslt"] != "both"]
    assert len(one_sided) == 1 and one_sided[0]["stmt_rslt"] == "centre_only"
    rvs, _ = served_centre.call(
        "2601", {"data": {"psn_no": employees[2], "omsgid": lost_msgid, "oinfno": "2102"}}, sign_no=sign_no
    )
    assert rvs["output"]["data"]["rvs_rslt"] == "reversed"
    # The settlement and its reversal mirror net to zero: the books now agree with the centre.
    assert statement()["stmt_rslt"] == "0"


NO_CAP = [
    item.med_list_codg
    for item in POLICY.region("130100").catalogues[0].items
    if item.chrgitm_lv == "01" and item.pric_uplmt_amt is None
]


def inpatient_fee(mdtrt_id, psn, sn, pric):
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": "21",
        "fee_ocur_time": "2026-03-03 10:00:00",
        "med_list_codg": NO_CAP[0],
        "pric": pric,
        "cnt": "1",
    }


def test_an_inpatient_stay_with_a_mid_stay_settlement(tmp_path):
    # Default policy, 130100, tier 3, employees: inpatient deductible 1000.00 for the 1st admission of the
    # year, 500.00 for the 2nd. A 600.00 mid-stay settlement uses 600.00 of it, the final one the other 400.00.
    psn = first_person()
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in(HOSPITAL)

        def call(infno, input_, **kw):
            return server.call(infno, input_, sign_no=sign_no, fixmedins_code=HOSPITAL, **kw)[0]

        admit = {
            "mdtrtinfo": {
                "psn_no": psn,
                "med_type": "21",
                "begntime": "2026-03-01 08:00:00",
                "ipt_no": "Z1",
                **certificate_of(psn),
            },
            "diseinfo": [{"diag_code": "K35"}],
        }
        first = call("2401", admit)
        assert first["infcode"] == 0, first
        stay = first["output"]["data"]["mdtrt_id"]
        again = call("2401", admit)
        assert again["infcode"] == -1 and "in hospital already" in again["err_msg"]
        assert call("2301", {"feedetail": [inpatient_fee(stay, psn, "1", "600.00")]})["infcode"] == 0
        early = call("2304", {"data": {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "0", **certificate_of(psn)}})
        assert early["infcode"] == -1 and "discharge first" in early["err_msg"]
        mid = call("2304", {"data": {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "1", **certificate_of(psn)}})
        assert mid["infcode"] == 0, mid
        assert mid["output"]["setlinfo"]["act_pay_dedc"] == 600.0
        assert call("2301", {"feedetail": [inpatient_fee(stay, psn, "2", "800.00")]})["infcode"] == 0
        assert (
            call(
                "2402",
                {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "endtime": "2026-03-05 10:00:00"}},
            )["infcode"]
            == 0
        )
        final = call("2304", {"data": {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "0", **certificate_of(psn)}})
        assert final["infcode"] == 0, final
        assert final["output"]["setlinfo"]["act_pay_dedc"] == 400.0
        assert final["output"]["setlinfo"]["setl_time"].startswith("2026-")
        wrong = call("2207", {"data": {"psn_no": psn, "mdtrt_id": stay}})
        assert wrong["infcode"] == -1 and "2303/2304" in wrong["err_msg"]
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()  # after a restart the stay is over and a 2nd admission starts at 500.00
    try:
        sign_no = server.sign_in(HOSPITAL)
        second = server.call(
            "2401",
            {"mdtrtinfo": {"psn_no": psn, "med_type": "21", "begntime": "2026-04-01 08:00:00", **certificate_of(psn)}},
            sign_no=sign_no,
            fixmedins_code=HOSPITAL,
        )[0]
        assert second["infcode"] == 0, second
        stay2 = second["output"]["data"]["mdtrt_id"]
        assert (
            server.call(
                "2301",
                {"feedetail": [inpatient_fee(stay2, psn, "1", "900.00")]},
                sign_no=sign_no,
                fixmedins_code=HOSPITAL,
            )[0]["infcode"]
            == 0
        )
        assert (
            server.call(
                "2402",
                {"dscginfo": {"mdtrt_id": stay2, "psn_no": psn, "endtime": "2026-04-03 10:00:00"}},
                sign_no=sign_no,
                fixmedins_code=HOSPITAL,
            )[0]["infcode"]
            == 0
        )
        pre = server.call(
            "2303",
            {"data": {"psn_no": psn, "mdtrt_id": stay2, "mid_setl_flag": "0", **certificate_of(psn)}},
            sign_no=sign_no,
            fixmedins_code=HOSPITAL,
        )[0]
        assert pre["infcode"] == 0 and pre["output"]["setlinfo"]["act_pay_dedc"] == 500.0, pre
    finally:
        server.stop()


def test_cross_region_sale_is_routed_by_the_insured_region(served_centre):
    # A person insured in 330300 buys at a 130100 pharmacy: treatment catalogue of 130100, insured policy of
    # 330300 (with its cross-region cut unless filed); a wrong insuplc_admdvs is refused naming the field.
    visitor = first_person(region="330300")
    sign_no = served_centre.sign_in()
    body = {
        "infno": "2102",
        "msgid": f"{PHARMACY}202603021000007001",
        "mdtrtarea_admvs": "130100",
        "insuplc_admdvs": "130100",
        "fixmedins_code": PHARMACY,
        "sign_no": sign_no,
        "input": sale(visitor),
    }
    wrong = served_centre.post(body)
    assert wrong["infcode"] == -1 and "insuplc_admdvs" in wrong["err_msg"]
    body["insuplc_admdvs"] = "330300"
    ok = served_centre.post(body)
    assert ok["infcode"] == 0, ok
    assert ok["output"]["setlinfo"]["medfee_sumamt"] == 25.0


def test_counters_download_the_catalogue_and_rules_in_force(served_centre):
    sign_no = served_centre.sign_in()
    page, _ = served_centre.call("1312", {"data": {"page_size": 100, "date": "2026-03-02"}}, sign_no=sign_no)
    assert page["infcode"] == 0, page
    cat = POLICY.region("130100").catalogue_on(datetime.date(2026, 3, 2))
    assert page["output"]["ver"] == cat.version and page["output"]["total"] == len(cat.items)
    assert [i["med_list_codg"] for i in page["output"]["items"]] == [i.med_list_codg for i in cat.items[:100]]
    same, _ = served_centre.call("1312", {"data": {"ver": cat.version, "date": "2026-03-02"}}, sign_no=sign_no)
    assert same["output"] == {"ver": cat.version, "unchanged": True, "items": []}
    rules, _ = served_centre.call("9901", {"data": {"date": "2025-06-01", "admdvs": "330300"}}, sign_no=sign_no)
    assert rules["output"]["ver"] == "330300-2025.1"
    assert RuleSet.model_validate(rules["output"]["ruleset"]) == POLICY.region("330300").rulesets[0]
    bad, _ = served_centre.call("9901", {"data": {"admdvs": "999999"}}, sign_no=sign_no)
    assert bad["infcode"] == -1 and "input.data.admdvs" in bad["err_msg"]


def test_cards_person_info_activation_loss_and_cancellation(tmp_path):
    registry, population = default_registry(), default_population()
    active = next(
        c
        for c in registry.cards.values()
        if c.status == "active" and population.describe(population.index_of(c.psn_no))["insuplc_admdvs"] == "130100"
    )
    issued = next(
        c
        for c in registry.cards.values()
        if c.status == "issued" and population.describe(population.index_of(c.psn_no))["insuplc_admdvs"] == "130100"
    )
    server = ServedCentre(tmp_path).start()
    try:
        sign_no = server.sign_in()
        info, _ = server.call(
            "1101",
            {"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": active.card_no, "card_sn": active.card_sn}},
            sign_no=sign_no,
        )
        assert info["infcode"] == 0, info
        base = info["output"]["baseinfo"]
        assert base["psn_no"] == active.psn_no and len(base["certno"]) == 18
        by_id, _ = server.call("1101", {"data": {"mdtrt_cert_type": "02", "certno": base["certno"]}}, sign_no=sign_no)
        assert by_id["output"]["baseinfo"]["psn_no"] == active.psn_no
        wrong_sn, _ = server.call(
            "1101",
            {"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": active.card_no, "card_sn": "00" * 16}},
            sign_no=sign_no,
        )
        assert wrong_sn["infcode"] == -1 and "CARD_UNKNOWN" in wrong_sn["err_msg"]
        # An issued card is activated by its first pharmacy sale.
        first_use, _ = server.call("2102", sale(issued.psn_no), sign_no=sign_no)
        assert first_use["infcode"] == 0, first_use
        status, _ = server.call("1101", {"data": certificate_of(issued.psn_no)}, sign_no=sign_no)
        assert status["output"]["cardinfo"] == [{"card_no": issued.card_no, "status": "active"}]
        # Reported lost (and replaced): the old card is refused at every counter, as a stored answer.
        lost = server.admin({"action": "card", "card_no": active.card_no, "card_action": "lost", "replace": True})
        assert lost["ok"] and lost["replacement"]["status"] == "issued", lost
        refused, msgid = server.call("2102", sale(active.psn_no), sign_no=sign_no)
        assert refused["infcode"] == -1 and refused["err_msg"].startswith("CARD_LOST"), refused
        again, _ = server.call("2102", sale(active.psn_no), sign_no=sign_no, msgid=msgid)
        assert again["err_msg"] == refused["err_msg"]
        # A cancelled person: every card cancelled, and the engine refuses them too.
        gone = server.admin({"action": "cancel_person", "psn_no": issued.psn_no, "reason": "death"})
        assert gone["ok"], gone
        after, _ = server.call("2102", sale(issued.psn_no), sign_no=sign_no)
        assert after["err_msg"].startswith("CARD_CANCELLED"), after
        assert server.admin({"action": "card", "card_no": "nope", "card_action": "lost"})["ok"] is False
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()  # the card events were journaled: a restart keeps them
    try:
        sign_no = server.sign_in()
        again, _ = server.call("2102", sale(active.psn_no), sign_no=sign_no)
        assert again["err_msg"].startswith("CARD_LOST")
        no_card = sale(issued.psn_no)
        no_card["data"] = {**no_card["data"], **certificate_of(issued.psn_no, "02")}
        del no_card["data"]["card_sn"]
        dead, _ = server.call("2102", no_card, sign_no=sign_no)
        assert dead["err_msg"].startswith("PERSON_INACTIVE"), dead
    finally:
        server.stop()


def test_admin_commands_credit_and_cancel_through_the_cli(served_centre):
    psn = first_person()
    cli = [sys.executable, "-m", "medsettle.cli", "persons"]
    ok = subprocess.run(
        cli + ["credit", psn, "120.50", "--month", "2026-03", "--centre", served_centre.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    credited = json.loads(ok.stdout)
    again = subprocess.run(
        cli + ["credit", psn, "120.50", "--month", "2026-03", "--centre", served_centre.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1 and "already made" in again.stderr
    sign_no = served_centre.sign_in()
    info, _ = served_centre.call("1101", {"data": {**certificate_of(psn)}}, sign_no=sign_no)
    assert f"{info['output']['insuinfo'][0]['balc']:.2f}" == credited["balc"]
    lost = subprocess.run(
        cli + ["card", card_of(psn), "lost", "--replace", "--centre", served_centre.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lost.returncode == 0 and json.loads(lost.stdout)["replacement"]["status"] == "issued"
    unreachable = subprocess.run(
        cli + ["cancel", psn, "--reason", "death", "--centre", "http://127.0.0.1:9/"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1 and "cannot reach the centre" in unreachable.stderr


def test_a_resent_sign_in_gets_its_sign_no_again_after_a_restart(tmp_path):
    server = ServedCentre(tmp_path).start()
    signin = {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}}
    try:
        first, msgid = server.call("9001", signin)
    finally:
        server.stop()
    server = ServedCentre(tmp_path).start()
    try:
        again, _ = server.call("9001", signin, msgid=msgid)
        assert again["output"] == first["output"]
        sale_answer, _ = server.call("2101", sale(first_person()), sign_no=first["output"]["signinoutb"]["sign_no"])
        assert sale_answer["infcode"] == 0, sale_answer  # the sign-in survived the restart
    finally:
        server.stop()
