"""Contributions at the region's agency: one month paid per event, with the account credit it carries
(an employee in service: a share of the base; a retiree: the policy's monthly amount; residents: none).
Each is a journaled PERSON_EVENT (medsettle.centre.person_events) that extends the contribution run the
person's record already holds (docs/agency.md): a gap breaks it as the policy says (engine.eligibility), a
month after the current one is refused, and a month the account was already credited for ('credit') is
recorded without a second credit. The credit is bounded as every credit is: one at most 100,000 yuan,
the balance at most 10^11 fen (docs/settlement.md 'Units and limits'; checked where the event is applied).

The month-end credit run (``credit_run``, docs/agency.md 'Month-end credit run') credits, as the bank does at
the end of the month, every account due a credit for a month paid and not yet credited; each credit
is a CREDIT entry of the cards flow's key, so the month stays credited once whichever command makes it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from ..bounds import MAX_CREDIT_FEN
from ..engine.persons import FLAG_ACTIVE
from ..errors import InvalidInput
from ..money import apply_bp, fen_to_decimal, to_fen
from ..policy.codes import PSN_TYPE_INDEX
from ..timeutil import month_index
from . import admin as A
from .cards import CREDIT, Cards, credit_key
from .core import Ledger
from .person_events import PersonEvents, month_text
from .regions import OwnedRegions
from .registry import Registry

MAX_BASE_FEN = 100_000_000  # a monthly contribution base above 1,000,000.00 yuan is a typing error


class Contributions:
    """Months paid (the registry's) and the contribution run they give (the settler's rows)."""

    def __init__(self, ledger: Ledger, registry: Registry, events: PersonEvents, cards: Cards) -> None:
        self._ledger = ledger
        self._registry = registry
        self._events = events
        self._cards = cards

    def contribute(self, req: A.Contribute) -> dict:
        d = self._events.describe(req.psn_no)
        if not d["active"]:
            raise InvalidInput(f"person {req.psn_no} is not insured here now", field="psn_no")
        year, mon = (int(x) for x in req.month.split("-"))
        month = year * 12 + mon - 1
        this_month = month_index(self._ledger.clock.now().date())
        if month > this_month:  # a mistyped 2031-06 would otherwise break the run of the months before
            raise InvalidInput(
                f"month {req.month} is in the future: a contribution is for {month_text(this_month)} or before",
                field="month",
            )
        if month in self._events.months_held(req.psn_no):
            raise InvalidInput(f"the contribution of {req.month} is already recorded", field="month")
        region = self._ledger.settler.policy.region(d["insuplc_admdvs"])
        rules = region.ruleset_on(dt.date(year, mon, 1)) or region.rulesets[0]
        if d["psn_type"] == "11":  # an employee in service: a share of the base goes to the account
            if req.base is None:
                raise InvalidInput("an employee in service contributes on a base: give base", field="base")
            base = to_fen(req.base, "base")
            if not 0 < base <= MAX_BASE_FEN:
                raise InvalidInput("the base must be above 0 and at most 1,000,000.00", field="base")
            credit = apply_bp(base, rules.account.in_service_share)
        else:
            if req.base is not None:
                raise InvalidInput(f"person type {d['psn_type']} contributes no base", field="base")
            credit = rules.account.retiree_monthly if d["psn_type"] == "12" else 0
        if credit > MAX_CREDIT_FEN:  # a policy's share of the highest base may give more than one credit may be
            raise InvalidInput(
                f"the month's account credit {fen_to_decimal(credit)} would pass the bound of one credit, "
                f"{fen_to_decimal(MAX_CREDIT_FEN)} yuan",
                field="base" if d["psn_type"] == "11" else "month",  # a retiree's credit is the policy's
            )
        credited = self._events.credited(req.psn_no, req.month)
        if credited:  # one account credit per person and month, whichever command makes it
            credit = 0
        body = {"action": "contribute", "psn_no": req.psn_no, "month": month, "credit": credit}
        self._events.commit(d["insuplc_admdvs"], f"{req.psn_no}/contribute/{req.month}", body)
        with self._ledger.lock:
            balance = self._ledger.settler.person_state(req.psn_no).balance
            attrs = self._ledger.settler.population.describe(self._ledger.settler.population.index_of(req.psn_no))
        return {
            "psn_no": req.psn_no,
            "month": req.month,
            "credit": str(fen_to_decimal(credit)),
            "balc": str(fen_to_decimal(balance)),
            "contrib_from": attrs["contrib_from"],
            "paid_through": attrs["paid_through"],
            **(
                {"note": f"the account was already credited for {req.month} ('credit'): no second credit"}
                if credited
                else {}
            ),
        }

    def credit_run(self, req: A.CreditRun, regions: OwnedRegions) -> dict:
        """Credit every account due the month's credit once: an insured retiree (not cancelled, not between
        regions) who paid ``req.month``, the policy's monthly sum. An employee in service's share is of the
        month's base, credited with its contribution ('contribute'); residents have no credit. A second run
        credits nothing; an account the credit would take past the balance bound is left (listed)."""
        year, mon = (int(x) for x in req.month.split("-"))
        month = year * 12 + mon - 1
        ledger = self._ledger
        if month > month_index(ledger.clock.now().date()):
            raise InvalidInput(f"month {req.month} is in the future: no credit for it yet", field="month")
        settler = ledger.settler
        population = settler.population
        owned = [i for i, code in enumerate(population.region_codes) if code in regions.owned]
        credited = already = 0
        past_bound: list[str] = []
        futures = []
        with ledger.lock:
            ledger.refuse_if_failed()
            for index in self._due(month, owned):
                psn_no = population.psn_nos[index]
                if self._cards.credited(psn_no, req.month):
                    already += 1
                    continue
                region = settler.policy.region(population.region_of(index))
                rules = region.ruleset_on(dt.date(year, mon, 1)) or region.rulesets[0]
                amount = rules.account.retiree_monthly
                if amount <= 0:
                    continue
                try:
                    if amount > MAX_CREDIT_FEN:
                        raise InvalidInput("past the bound of one credit", field="month")
                    balance = settler.credit(psn_no, amount)  # refused past the balance bound, nothing moved
                except InvalidInput:
                    past_bound.append(psn_no)
                    continue
                self._cards.mark_credited(psn_no, req.month)
                body = {"psn_no": psn_no, "amount": amount, "reason": f"monthly credit {req.month}", "balance": balance}
                futures.append(ledger.append(CREDIT, population.region_of(index), credit_key(psn_no, req.month), body))
                credited += 1
        for future in futures:
            ledger.wait(future)
        return {
            "month": req.month,
            "credited": credited,
            "already_credited": already,
            "not_eligible": len(population) - credited - already,
            **({"past_bound": past_bound} if past_bound else {}),
        }

    def _due(self, month: int, regions: list[int]) -> list[int]:
        """The rows of insured retirees of ``regions`` who paid ``month`` (the record's run, or the months
        recorded here), in row order."""
        population, registry = self._ledger.settler.population, self._registry
        attrs = population.attrs
        mask = (
            ((attrs["flags"] & FLAG_ACTIVE) != 0)
            & (attrs["psn_type"] == PSN_TYPE_INDEX["12"])
            & np.isin(attrs["region"], regions)
        )
        rows = set(np.flatnonzero(mask & (attrs["run_start"] <= month) & (attrs["paid_through"] >= month)).tolist())
        for psn_no, months in registry.contributions.items():  # recorded here: the months themselves count
            index = population.index_of(psn_no)
            if mask[index] and month in months:
                rows.add(index)
            elif month not in months:
                rows.discard(index)
        between = {c["psn_no"] for c in registry.transfers.values() if not c["accepted"] and not c.get("void")}
        return sorted(i for i in rows if population.psn_nos[i] not in between)


__all__ = ["MAX_BASE_FEN", "Contributions"]
