"""The insured regions this centre process owns (docs/architecture.md).

Several processes may share one PostgreSQL journal, each owning other regions: each is the one writer of
its regions' persons, refuses the others' and numbers its ids apart.
"""

from __future__ import annotations

from pydantic import BaseModel

from ..engine.persons import Population
from ..errors import InvalidInput
from .messages import Envelope


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
            raise InvalidInput(
                f"person {psn_no} is insured in {region}, which this centre process does not own "
                f"(it owns {', '.join(sorted(self.owned))}): send it to that region's process",
                field=field,
            )

    def check_message(self, env: Envelope, payload: BaseModel) -> None:
        """Refuse a message about a person or insured region another process owns."""
        if env.insuplc_admdvs and env.insuplc_admdvs not in self.owned:
            raise InvalidInput(
                f"insured region {env.insuplc_admdvs} is not owned by this centre process "
                f"(it owns {', '.join(sorted(self.owned))})",
                field="insuplc_admdvs",
            )
        for part in ("data", "mdtrtinfo", "dscginfo"):
            psn_no = getattr(getattr(payload, part, None), "psn_no", None)
            if psn_no:
                self.owns_person(psn_no, f"input.{part}.psn_no")
        for j, line in enumerate(getattr(payload, "feedetail", None) or []):
            if getattr(line, "psn_no", None):
                self.owns_person(line.psn_no, f"input.feedetail[{j}].psn_no")
