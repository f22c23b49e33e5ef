"""What counters cache for provisional settlement (docs/messages.md 'Rules for the counter').

1312 pages through the catalogue of a treatment region in force on a day (the platform's catalogue
query); 9901 is medsettle's extension that answers the pooled-fund rule set in force (the models'
own JSON: amounts in yuan and ratios as fractions, exact strings, so it loads again with
medsettle.policy.policy_from_dict). Both say which version they answer, so a counter can keep what it has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from ..errors import InvalidInput
from ..policy.models import Policy, Region
from ..seams import Clock
from .institutions import Institution
from .messages import Download, DownloadData, Envelope

Version = TypeVar("Version")  # a catalogue or a rule set: what a region has one of in force on each day


class Downloads:
    def __init__(self, policy: Policy, clock: Clock) -> None:
        self._policy = policy
        self._clock = clock  # "today" when the counter does not name a day

    def handlers(self) -> dict:
        return {"1312": self._download_catalogue, "9901": self._download_rules}

    def _download_catalogue(self, env: Envelope, institution: Institution, payload: Download) -> dict:
        d = payload.data
        region, catalogue = self._in_force(d, institution, "catalogue", Region.catalogue_on)
        if d.ver == catalogue.version:
            return {"ver": catalogue.version, "unchanged": True, "items": []}
        start = (d.page_num - 1) * d.page_size
        items = catalogue.items[start : start + d.page_size]
        return {
            "ver": catalogue.version,
            "effective_from": catalogue.effective_from.isoformat(),
            "unchanged": False,
            "total": len(catalogue.items),
            "page_num": d.page_num,
            "page_size": d.page_size,
            "items": [item.model_dump(mode="json") for item in items],
        }

    def _download_rules(self, env: Envelope, institution: Institution, payload: Download) -> dict:
        d = payload.data
        region, rules = self._in_force(d, institution, "rule set", Region.ruleset_on)
        if d.ver == rules.version:
            return {"ver": rules.version, "unchanged": True}
        return {
            "ver": rules.version,
            "unchanged": False,
            "admdvs": region.admdvs,
            "groups": [g.model_dump(mode="json") for g in region.groups],
            "ruleset": rules.model_dump(mode="json"),
        }

    def _in_force(
        self,
        d: DownloadData,
        institution: Institution,
        what: str,
        version_on: Callable[[Region, dt.date], Version | None],
    ) -> tuple[Region, Version]:
        """(region, its catalogue or rule set in force on the asked day: today by default); ``what`` names
        which for the error, ``version_on`` finds it (Region.catalogue_on or Region.ruleset_on)."""
        admdvs = d.admdvs or institution.admdvs
        try:
            region = self._policy.region(admdvs)
        except KeyError:
            raise InvalidInput(f"region {admdvs} is not in the policy", field="input.data.admdvs") from None
        day = d.date or self._clock.now().date()
        found = version_on(region, day)
        if found is None:
            raise InvalidInput(f"no {what} of {admdvs} is in force on {day}", field="input.data.date")
        return region, found
