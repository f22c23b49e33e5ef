"""The project's own use of its pytest plugin (medsettle.testing, docs/testing.md): a served centre, a counter
through the fault proxy, the failure procedures of docs/failures.md driven by the proxy's controls.

The fixtures come from the plugin, which pytest loads by its entry point once medsettle is installed (README's
test command installs it): nothing here imports tests/centre_rig.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from medsettle.terminal import CentreUnreachable, Identity

pytestmark = pytest.mark.timeout(180)
PHARMACY = "P13010000001"  # cash with a deferred-settlement voucher when the centre is away
SAF_PHARMACY = "P13010000002"  # store-and-forward


def test_a_blackholed_centre_means_cash_and_a_voucher_then_one_settlement_after_heal(
    medsettle_centre, medsettle_counter, medsettle_faults
):
    patient = medsettle_centre.person("130100", "310", index=3)
    counter = medsettle_counter(PHARMACY, via_proxy=True, resend_for=0.5)
    counter.sign_in()
    medsettle_faults.blackhole()
    with pytest.raises(CentreUnreachable):
        counter.person_info(Identity("02", patient.certno))  # no answer at all: the centre is away
    receipt = counter.sell(Identity("02", patient.certno), medsettle_centre.bill(2))
    assert receipt.kind == "deferred" and receipt.voucher and Decimal(receipt.cash) == Decimal(receipt.medfee)
    medsettle_faults.heal()
    refund = counter.settle_voucher(receipt.voucher)
    assert refund.kind == "refund" and Decimal(refund.refund) == Decimal(refund.fund) + Decimal(refund.account)
    day = counter.now().date().isoformat()
    assert [s["setl_id"] for s in medsettle_centre.settlements(PHARMACY, day)] == [refund.setl_id]
    assert counter.reconcile(detail=True)["clean"]


def test_a_store_and_forward_counter_settles_provisionally_and_forwards_once(
    medsettle_centre, medsettle_counter, medsettle_faults
):
    patient = medsettle_centre.person("130100", "310", index=4)
    counter = medsettle_counter(SAF_PHARMACY, via_proxy=True, resend_for=0.5)
    counter.sign_in()  # caches the rules and the catalogue for provisional settlement
    who = Identity("02", patient.certno)
    assert counter.sell(who, medsettle_centre.bill(1)).kind == "sale"  # the counter knows the patient now
    medsettle_faults.reset()  # every connection refused: the centre is surely not reached
    receipt = counter.sell(who, medsettle_centre.bill(1))
    assert receipt.kind == "provisional", receipt
    medsettle_faults.heal()
    outcomes = counter.forward()
    assert [o["state"] for o in outcomes] == ["forwarded"], outcomes
    day = counter.now().date().isoformat()
    settled = [s["setl_id"] for s in medsettle_centre.settlements(SAF_PHARMACY, day)]
    assert settled.count(outcomes[0]["setl_id"]) == 1 and len(settled) == 2  # the online sale and the forward
