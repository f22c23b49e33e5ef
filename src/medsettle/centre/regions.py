"""The insured regions this centre process owns (docs/architecture.md).

Several processes may share one PostgreSQL journal, each owning other regions: each is the one writer of
its regions' persons, refuses the others' and numbers its ids apart. The refusal is a
:class:`ForeignRegion`, which names the region: the workers of ``serve --workers`` hand such a request to
the worker owning it instead of answering it (medsettle.centre.workers).
"""

from __future__ import annotations

from pydantic import BaseModel

from ..engine.persons import Population
from ..errors import InvalidInput
from .messages import Envelope


class ForeignRegion(InvalidInput):
    """A request about a person or an insured region another centre process owns (``region``)."""

    def __init__(self, message: str, *, region: str, field: str) -> None:
        super().__init__(message, field=field)
        self.region = region


class OwnedRegions:
    def __init__(self, population: Population, every: list[str], regions: list[str] | None) -> None:
        unknown = sorted(set(regions or []) - set(every))
        if unknown:
            raise InvalidInput(f"regions {unknown} are not in the policy ({', '.join(every)})", field="regions")
        self._population = population
        self.owned = set(regions or every)
        self.partial = self.owned != set(every)
        self.id_prefix = min(self.owned) if self.partial else ""  # setl_id, mdtrt_id and sign_no apart

    def owns_person(self, psn_no: str, field: str = "psn_no") -> None:
        """Refuse a person insured in a region this process does not own (another process writes them)."""
        population = self._population
        region = population.region_of(population.index_of(psn_no, field))
        if region not in self.owned:
            raise ForeignRegion(
                f"person {psn_no} is insured in {region}, which this centre process does not own "
                f"(it owns {', '.join(sorted(self.owned))}): send it to that region's process",
                region=region,
                field=field,
            )

    def check_message(self, env: Envelope, payload: BaseModel) -> bool:
        """Refuse a message about a person or insured region another process owns; whether it names any."""
        if env.insuplc_admdvs and env.insuplc_admdvs not in self.owned:
            raise ForeignRegion(
                f"insured region {env.insuplc_admdvs} is not owned by this centre process "
                f"(it owns {', '.join(sorted(self.owned))})",
                region=env.insuplc_admdvs,
                field="insuplc_admdvs",
            )
        setl_optins = getattr(getattr(payload, "data", None), "setl_optins", None)  # 3201, 3202
        if setl_optins and setl_optins not in self.owned:
            raise ForeignRegion(
                f"insured region {setl_optins} is reconciled by the centre process that owns it",
                region=setl_optins,
                field="input.data.setl_optins",
            )
        named = bool(env.insuplc_admdvs or setl_optins)
        for part in ("data", "mdtrtinfo", "dscginfo"):
            psn_no = getattr(getattr(payload, part, None), "psn_no", None)
            if psn_no:
                self.owns_person(psn_no, f"input.{part}.psn_no")
                named = True
        for j, line in enumerate(getattr(payload, "feedetail", None) or []):
            if getattr(line, "psn_no", None):
                self.owns_person(line.psn_no, f"input.feedetail[{j}].psn_no")
                named = True
        return named

    def check_institution(self, institution_admdvs: str) -> None:
        """Refuse (as foreign) a request naming no person or insured region when this process does not own the
        institution's own region: the workers of one centre answer such requests (sign-ins, files) at one
        place, so a resend gets the stored answer wherever it arrives."""
        if institution_admdvs not in self.owned:
            raise ForeignRegion(
                f"the institution's region {institution_admdvs} is not owned by this centre process",
                region=institution_admdvs,
                field="fixmedins_code",
            )
