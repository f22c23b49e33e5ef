"""Worked examples of docs/settlement.md, each computed by hand in its comment, on both engines.

Region A (worlds.py), rule set 2026: outpatient deductible 100.00, ratio 0.80, ceiling 1000.00;
inpatient per-admission deductible 500/300/100 by ordinal, ratio 0.90; second tier on outpatient and
inpatient (employees 0.80, cap 5000.00; residents 0.60 above a 1000.00 threshold); assistance 0.70.
"""

import pytest

from medsettle.engine import PersonState
from medsettle.errors import InvalidInput, SettlementRefused, UnknownItem
from worlds import REGION_B, bill, make_settler, person, policy_dict, ruleset


def fen(result, name):
    return result.amount(name)


def check(result, **expected_fen):
    got = {name: fen(result, name) for name in expected_fen}
    assert got == expected_fen


def test_hebei_trace(engine):
    # One class B drug at 4.52 yuan, selfpay_prop 0.05: preselfpay round(22.6 fen) = 0.23, inscp 4.29,
    # all of it to the deductible; the account pays 4.52: balance 1378.15 -> 1373.63.
    s = make_settler(engine, persons=[person("E1", balance="1378.15")])
    r = s.settle(bill("E1", [("B05", "4.52", 1)]))
    check(
        r,
        medfee_sumamt=452,
        preselfpay_amt=23,
        inscp_scp_amt=429,
        act_pay_dedc=429,
        hifp_pay=0,
        psn_part_amt=452,
        acct_pay=452,
        psn_cash_pay=0,
        balc=137363,
    )
    info = r.setlinfo()
    assert str(info["balc"]) == "1373.63" and str(info["preselfpay_amt"]) == "0.23"
    assert r.setldetail() == [{"fund_pay_type": "310200", "fund_payamt": info["acct_pay"]}]


def test_deductible_crossing(engine):
    # 150.00 class A: deductible 100.00, E = 50.00, fund 0.80 × 50 = 40.00, person 110.00 from the account.
    s = make_settler(engine)
    r = s.settle(bill("E1", [("A1", "150.00", 1)]))
    check(r, inscp_scp_amt=15000, act_pay_dedc=10000, hifp_pay=4000, psn_part_amt=11000, acct_pay=11000, balc=89000)
    # The next bill finds the deductible met: 50.00 -> fund 40.00.
    r2 = s.settle(bill("E1", [("A1", "50.00", 1)], when="2026-05-11 10:00:00"))
    check(r2, act_pay_dedc=0, hifp_pay=4000, psn_part_amt=1000, balc=88000)
    st = s.person_state("E1")
    assert st.ded_met[0] == 10000 and st.pooled_paid[0] == 8000 and st.acc_year == 2026


def test_ceiling_reached_mid_bill_then_large_amount(engine):
    # 900.00 of the 1000.00 ceiling used. 500.00 eligible: share 400.00 > room 100.00, so hifp 100.00 and
    # E_over = 500.00 - round(100.00 / 0.8) = 375.00; 大额 pays round(375.00 × 0.8) = 300.00.
    s = make_settler(engine)
    p = s.population.index_of("E1")
    s.engine.set_state(p, PersonState(balance=100000, ded_met=[10000, 0, 0], pooled_paid=[90000, 0, 0], acc_year=2026))
    r = s.settle(bill("E1", [("A1", "500.00", 1)]))
    check(
        r,
        act_pay_dedc=0,
        hifp_pay=10000,
        hifob_pay=30000,
        fund_pay_sumamt=40000,
        psn_part_amt=10000,
        acct_pay=10000,
        balc=90000,
    )
    st = s.person_state("E1")
    assert st.pooled_paid[0] == 100000 and st.t2_paid == 30000
    # Ceiling now reached: the fund pays nothing and all of E is over; 大额 takes 0.8 of it.
    r2 = s.settle(bill("E1", [("A1", "100.00", 1)], when="2026-05-12 10:00:00"))
    check(r2, hifp_pay=0, hifob_pay=8000, psn_part_amt=2000)


def test_resident_critical_illness_starts_mid_bill(engine):
    # T0 = 990.00 of the 1000.00 threshold. 200.00 class A, deductible met: hifp 160.00,
    # S = 40.00, excess = 990 + 40 - 1000 = 30.00, 大病 = round(30.00 × 0.6) = 18.00, cash 22.00.
    s = make_settler(engine)
    p = s.population.index_of("R1")
    s.engine.set_state(p, PersonState(ded_met=[10000, 0, 0], t2_base=99000, acc_year=2026))
    r = s.settle(bill("R1", [("A1", "200.00", 1)]))
    check(
        r,
        hifp_pay=16000,
        hifmi_pay=1800,
        hifob_pay=0,
        psn_part_amt=2200,
        acct_pay=0,
        psn_cash_pay=2200,
        t2_base_add=4000,
    )
    assert {d["fund_pay_type"] for d in r.setldetail()} == {"390100", "390200"}
    st = s.person_state("R1")
    assert st.t2_base == 103000 and st.t2_paid == 1800
    # Past the threshold every further self-paid fen counts: S = 40.00 -> 24.00.
    r2 = s.settle(bill("R1", [("A1", "200.00", 1)], when="2026-05-12 10:00:00"))
    check(r2, hifmi_pay=2400)


def test_class_b_with_price_cap_and_person_type_selfpay(engine):
    # BCAP 120.00 × 2 with a cap of 100.00: overlmt 40.00, preselfpay 10% of 200.00 = 20.00, inscp 180.00.
    s = make_settler(engine)
    r = s.settle(bill("E1", [("BCAP", "120.00", 2)]))
    check(r, medfee_sumamt=24000, overlmt_selfpay=4000, preselfpay_amt=2000, inscp_scp_amt=18000)
    assert [str(x["overlmt_amt"]) for x in r.line_split()] == ["40.00"]
    # B10 is 10% for employees in service, 5% for retirees (selfpay_prop by person type).
    r_e = s.presettle(bill("E1", [("B10", "10.00", 1)]))
    r_r = s.presettle(bill("E2", [("B10", "10.00", 1)]))
    assert fen(r_e, "preselfpay_amt") == 100 and fen(r_r, "preselfpay_amt") == 50


def test_quantity_with_decimals_rounds_half_up(engine):
    # 0.0333 yuan × 1.5 = 0.04995 yuan = 4.995 fen -> 5 fen; 0.0333 × 1.5001 also 5 fen.
    s = make_settler(engine)
    r = s.presettle(bill("E1", [("A1", "0.0333", "1.5"), ("A1", "0.0001", "0.5")]))
    assert [int(x) for x in r.lines[:, 0]] == [5, 0]


def test_all_class_c_bill(engine):
    # Everything self-pay: inscp 0, no deductible used; scope "all" lets the account pay it.
    s = make_settler(engine)
    r = s.settle(bill("E1", [("C1", "80.00", 1), ("R1", "20.00", 1)]))  # R1 restricted, not approved
    check(
        r,
        medfee_sumamt=10000,
        fulamt_ownpay_amt=10000,
        inscp_scp_amt=0,
        act_pay_dedc=0,
        hifp_pay=0,
        psn_part_amt=10000,
        acct_pay=10000,
    )
    assert s.person_state("E1").ded_met == [0, 0, 0]
    # Approved restricted item is class B again: 10% first, 18.00 in scope.
    r2 = s.presettle(bill("E1", [("R1", "20.00", 1, "1")]))
    check(r2, fulamt_ownpay_amt=0, preselfpay_amt=200, inscp_scp_amt=1800)
    # A region whose account pays only covered items: nothing from the account on an all-C bill.
    covered = make_settler(engine, policy=policy_dict([ruleset(account={"scope": "covered"})]))
    r3 = covered.settle(bill("E1", [("C1", "80.00", 1)]))
    check(r3, acct_pay=0, psn_cash_pay=8000, balc=100000)


def test_account_shorter_than_personal_share(engine):
    s = make_settler(engine)
    r = s.settle(bill("E2", [("A1", "50.00", 1)]))  # balance 10.00, all 50.00 to the deductible
    check(r, act_pay_dedc=5000, psn_part_amt=5000, acct_pay=1000, psn_cash_pay=4000, balc=0)
    r2 = s.settle(bill("E2", [("A1", "5.00", 1)], when="2026-05-11 08:00:00", acct_used_flag="1"))
    check(r2, acct_pay=0, psn_cash_pay=500, balc=0)


def test_cancel_after_a_later_bill_moves_back_exactly_the_original(engine):
    s = make_settler(engine)
    first = s.settle(bill("E1", [("A1", "150.00", 1)]))  # dedc 100, fund 40, acct 110
    second = s.settle(bill("E1", [("A1", "50.00", 1)], when="2026-05-11 10:00:00"))  # fund 40, acct 10
    mirror = s.cancel(first.setl_id)
    check(
        mirror,
        medfee_sumamt=-15000,
        act_pay_dedc=-10000,
        hifp_pay=-4000,
        acct_pay=-11000,
        psn_part_amt=-11000,
        balc=99000,
    )
    assert mirror.setlinfo()["pool_prop_selfpay"] == first.setlinfo()["pool_prop_selfpay"]
    assert mirror.mirror_of == first.setl_id and first.cancelled_by == mirror.setl_id
    st = s.person_state("E1")
    # The later bill is not recomputed: its deductible 0 and fund 40.00 stay as they were.
    assert st.ded_met[0] == 0 and st.pooled_paid[0] == 4000 and st.balance == 99000
    assert fen(second, "act_pay_dedc") == 0
    with pytest.raises(Exception, match="already cancelled"):
        s.cancel(first.setl_id)


def test_cross_region_uses_treatment_catalogue_and_insured_policy(engine):
    # ONLYB (in B's catalogue only, class B 20%) at 300.00: preselfpay 60.00, inscp 240.00;
    # A's deductible 100.00; ratio 0.80 - 0.20 cut = 0.60 -> fund 84.00.
    s = make_settler(engine)
    r = s.presettle(bill("E1", [("ONLYB", "300.00", 1)], region_=REGION_B))
    check(r, preselfpay_amt=6000, inscp_scp_amt=24000, act_pay_dedc=10000, hifp_pay=8400, pool_prop_bp=6000)
    assert str(r.setlinfo()["pool_prop_selfpay"]) == "0.6"
    emergency = s.presettle(bill("E1", [("ONLYB", "300.00", 1)], region_=REGION_B, med_type="13"))
    check(emergency, hifp_pay=9800, pool_prop_bp=7000)
    filed = s.presettle(bill("F1", [("ONLYB", "300.00", 1)], region_=REGION_B))  # filing for B: no cut
    check(filed, hifp_pay=11200, pool_prop_bp=8000)
    with pytest.raises(UnknownItem, match=r"feedetail\[0\]\.med_list_codg"):
        s.settle(bill("E1", [("B05", "1.00", 1)], region_=REGION_B))  # A's item, not in B's catalogue


def test_year_rollover_and_closed_year(engine):
    s = make_settler(engine)
    dec = s.settle(bill("E1", [("A1", "150.00", 1)], when="2026-12-30 10:00:00"))
    jan = s.settle(bill("E1", [("A1", "150.00", 1)], when="2027-01-05 10:00:00"))
    check(jan, act_pay_dedc=10000, hifp_pay=4000)  # a new year: the deductible starts again
    st = s.person_state("E1")
    assert st.acc_year == 2027 and st.ded_met[0] == 10000 and st.pooled_paid[0] == 4000
    before = s.person_state("E1")
    with pytest.raises(SettlementRefused) as late:
        s.settle(bill("E1", [("A1", "10.00", 1)], when="2026-12-31 23:00:00"))
    assert late.value.code == "YEAR_CLOSED"
    with pytest.raises(SettlementRefused) as closed:
        s.cancel(dec.setl_id)
    assert closed.value.code == "YEAR_CLOSED"
    assert s.person_state("E1") == before and dec.cancelled_by is None


def test_admissions_ordinals_mid_stay_and_uncounting(engine):
    s = make_settler(engine)
    # 1st admission: deductible 500.00 of 1000.00, fund 0.9 × 500 = 450.00.
    a1 = s.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM1", when="2026-03-01 10:00:00"))
    check(a1, act_pay_dedc=50000, hifp_pay=45000, adm_counted=1)
    # Mid-stay settlement of the same admission: its deductible is already met.
    a1b = s.settle(bill("E1", [("A1", "200.00", 1)], med_type="21", mdtrt_id="ADM1", when="2026-03-05 10:00:00"))
    check(a1b, act_pay_dedc=0, hifp_pay=18000, adm_counted=0)
    # 2nd admission: 300.00.
    a2 = s.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM2", when="2026-04-01 10:00:00"))
    check(a2, act_pay_dedc=30000, hifp_pay=63000)
    assert s.person_state("E1").adm_count == 2
    # Cancelling its only settlement un-counts it: the next admission is the 2nd again.
    s.cancel(a2.setl_id)
    assert s.person_state("E1").adm_count == 1
    a3 = s.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM3", when="2026-05-01 10:00:00"))
    check(a3, act_pay_dedc=30000)
    a4 = s.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM4", when="2026-06-01 10:00:00"))
    a5 = s.settle(bill("E1", [("A1", "1000.00", 1)], med_type="21", mdtrt_id="ADM5", when="2026-07-01 10:00:00"))
    check(a4, act_pay_dedc=10000)
    check(a5, act_pay_dedc=10000)  # 3rd and later


def test_admission_deductible_survives_year_rollover(engine):
    s = make_settler(engine)
    s.settle(bill("E1", [("A1", "300.00", 1)], med_type="21", mdtrt_id="ADM1", when="2026-12-28 10:00:00"))
    r = s.settle(bill("E1", [("A1", "400.00", 1)], med_type="21", mdtrt_id="ADM1", when="2027-01-03 10:00:00"))
    # 300.00 of the 500.00 deductible met in December; 200.00 remain in January.
    check(r, act_pay_dedc=20000, hifp_pay=18000)
    st = s.person_state("E1")
    assert st.acc_year == 2027 and st.adm_count == 0 and st.adm_ded_met == 50000  # counted in 2026


def test_refusals_change_nothing(engine):
    s = make_settler(engine)
    cases = [
        ("X1", "2026-05-10 10:00:00", "PERSON_INACTIVE"),
        ("W1", "2026-03-31 10:00:00", "WAITING_PERIOD"),  # contributions from January: benefits from April
        ("E1", "2025-06-01 10:00:00", "NO_RULES_IN_FORCE"),  # the only rule set starts 2026-01-01
    ]
    for psn, when, code in cases:
        before = s.person_state(psn)
        with pytest.raises(SettlementRefused) as exc:
            s.settle(bill(psn, [("A1", "10.00", 1)], when=when))
        assert exc.value.code == code
        assert s.person_state(psn) == before
    assert s.records == {}
    s.settle(bill("W1", [("A1", "10.00", 1)], when="2026-04-01 00:00:00"))  # first day of eligibility


def test_contributions_must_be_current():
    for engine in ("core", "reference"):
        s = make_settler(engine, persons=[person("P", paid_through="2026-02")])
        s.settle(bill("P", [("A1", "10.00", 1)], when="2026-03-15 10:00:00"))  # paid through last month
        with pytest.raises(SettlementRefused, match="WAITING|waiting"):
            s.settle(bill("P", [("A1", "10.00", 1)], when="2026-04-15 10:00:00"))


def test_medical_assistance(engine):
    # Resident with assistance, 200.00: deductible 100.00, fund 80.00, 大病 0 (far below threshold),
    # assistance round(0.7 × (200 - 80)) = 84.00, cash 36.00.
    s = make_settler(engine)
    r = s.settle(bill("M1", [("A1", "200.00", 1)]))
    check(r, hifp_pay=8000, hifmi_pay=0, maf_pay=8400, fund_pay_sumamt=16400, psn_cash_pay=3600)
    assert {"fund_pay_type": "610100", "fund_payamt": r.setlinfo()["maf_pay"]} in r.setldetail()


def test_store_and_forward_forward_puts_shortfall_on_institution(engine):
    # 150.00: fund 40.00; the counter collected 50.00 cash; the institution bears 150 - 40 - 50 = 60.00.
    s = make_settler(engine)
    r = s.settle(bill("E1", [("A1", "150.00", 1)], acct_used_flag="0", saf_cash_amt="50.00"))
    check(r, fund_pay_sumamt=4000, hosp_part_amt=6000, psn_part_amt=5000, acct_pay=0, psn_cash_pay=5000)
    assert {"fund_pay_type": "999996", "fund_payamt": r.setlinfo()["hosp_part_amt"]} in r.setldetail()
    with pytest.raises(InvalidInput, match="acct_used_flag"):
        s.settle(bill("E1", [("A1", "1.00", 1)], acct_used_flag="1", saf_cash_amt="1.00"))


def test_rules_in_force_on_the_bill_date(engine):
    # 2027 rules raise the outpatient ratio to 0.90; a 2026 bill still settles at 0.80.
    later = ruleset(version="R2027", effective_from="2027-01-01")
    for b in later["benefits"]:
        if b["group"] == "outpatient":
            b["tiers"] = {t: {"deductible": ["100.00"], "ratio": "0.90"} for t in ("pharmacy", "1", "2", "3")}
    s = make_settler(engine, policy=policy_dict([ruleset(), later]))
    r26 = s.settle(bill("E1", [("A1", "200.00", 1)], when="2026-12-01 10:00:00"))
    r27 = s.settle(bill("F1", [("A1", "200.00", 1)], when="2027-02-01 10:00:00"))
    check(r26, hifp_pay=8000, pool_prop_bp=8000)
    check(r27, hifp_pay=9000, pool_prop_bp=9000)


def test_bill_date_is_the_shanghai_date(engine):
    # 20:00 UTC on 31 December is 04:00 on 1 January in Shanghai: the bill counts in the new year.
    s = make_settler(engine)
    s.settle(bill("E1", [("A1", "150.00", 1)], when="2026-12-31 10:00:00"))
    r = s.settle(bill("E1", [("A1", "150.00", 1)], when="2026-12-31T20:00:00+00:00"))
    check(r, act_pay_dedc=10000, year=2027)
    assert s.person_state("E1").acc_year == 2027
