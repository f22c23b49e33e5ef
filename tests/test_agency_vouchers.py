"""Vouchers cannot be borrowed (issue 16): a deferred-settlement voucher is re-settled only for the person it
was made for. A counter over HTTP against a served centre: the centre is away at the sale (cash against a
voucher that keeps the certificate captured), and at re-settlement another person's ID number is refused
naming ``identity``, the voucher left pending; the buyer's own settles it. A dead buyer's voucher is refused
at the centre and cannot then be settled against someone else's account.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from centre_rig import ServedCentre, default_population, default_registry
from medsettle.errors import InvalidInput
from medsettle.terminal import Identity, Refused
from terminal_rig import ITEMS, balance_of, by_certno, make_counter, patient

pytestmark = pytest.mark.timeout(180)


def someone_else() -> Identity:
    """Another 130100 employee of the default population, by ID number."""
    population = default_population()
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == "130100" and d["insutype"] == "310" and d["psn_no"] != patient():
            return Identity("02", default_registry().identities[str(d["psn_no"])].certno)
    raise AssertionError("no second employee in 130100")


def voucher_while_the_centre_is_away(server: ServedCentre, tmp_path, identity: Identity):
    counter = make_counter(server.url, tmp_path / "t.db")
    counter.sign_in()
    server.stop()
    receipt = counter.sell(identity, ITEMS)
    assert receipt.kind == "deferred" and receipt.voucher
    server.start()
    counter.client.url = server.url
    counter.sign_in()
    return counter, receipt.voucher


def test_a_voucher_is_settled_only_for_the_person_it_was_made_for(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    try:
        counter, voucher = voucher_while_the_centre_is_away(server, tmp_path, by_certno())
        sign_no = counter.journal.get_meta("sign_no")
        before, journal = balance_of(server, sign_no), server.journal_count()
        with pytest.raises(InvalidInput, match="identity.*made for person"):
            counter.settle_voucher(voucher, someone_else())
        assert counter.journal.voucher(voucher)["state"] == "pending"
        assert server.journal_count() == journal and balance_of(server, sign_no) == before
        refund = counter.settle_voucher(voucher, by_certno())  # the buyer's own ID number
        assert refund.kind == "refund" and Decimal(refund.refund) > 0
    finally:
        server.stop()


def test_a_dead_buyers_voucher_cannot_be_settled_against_another_account(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    try:
        server.admin({"action": "cancel_person", "psn_no": patient(), "reason": "death"})
        counter, voucher = voucher_while_the_centre_is_away(server, tmp_path, by_certno())
        with pytest.raises(Refused):
            counter.settle_voucher(voucher)  # the centre refuses the dead buyer
        assert counter.journal.voucher(voucher)["state"] == "pending"
        journal = server.journal_count()
        with pytest.raises(InvalidInput, match="identity"):
            counter.settle_voucher(voucher, someone_else())
        assert server.journal_count() == journal
        assert counter.journal.voucher(voucher)["state"] == "pending"
    finally:
        server.stop()
