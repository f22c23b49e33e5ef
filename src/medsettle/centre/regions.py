"""The insured regions this centre process owns (docs/architecture.md).

Several processes may share one PostgreSQL journal, each owning other regions: each is the one writer of
its regions' persons, refuses the others' and numbers its ids apart. The refusal is a
:class:`ForeignRegion`, which names the region: the workers of ``serve --workers`` hand such a request to
the worker owning it instead of answering it (medsettle.centre.workers).
"""

from __future__ import annotations

import functools
import typing
from typing import Any

from pydantic import BaseModel

from ..engine.persons import Population
from ..errors import InvalidInput, UnknownPerson
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
        self.every = frozenset(every)
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

    def foreign_named(self, request: Any, model: type[BaseModel] | None) -> str | None:
        """The region of another process that :meth:`check_message` would refuse ``request`` for, read off the
        request as it came (a dict of JSON), before any model of it is made; None when that is not plain.
        ``model``: the input model of the request's ``infno`` (None: not a transaction offered).

        Plain means: every value :meth:`check_message` may read (the envelope's insured region, the reconciled
        region, the psn_no of ``data``, ``mdtrtinfo``, ``dscginfo`` and of each fee line) is absent or is
        exactly a region of the policy or the number of a person of the population; they all come to one
        region this process does not own; and at least one of them is a field ``model`` has (so the whole
        check reads it, whichever it reads first). Such a request is one the whole check refuses for that same
        region, unless the request is refused earlier for another reason, which the owner then gives too.
        A worker of ``serve --workers`` hands it on at once, instead of first parsing and validating it only
        to find it is not its own (the owner does all of that anyway)."""
        if model is None or not isinstance(request, dict):
            return None
        input_ = request.get("input")
        parts = input_ if isinstance(input_, dict) else {}
        data = parts.get("data")
        declared = _declared(model)
        found: set[str] = set()
        read = False  # whether the whole check reads one of the values found
        for value, where in (
            (request.get("insuplc_admdvs"), "insuplc_admdvs"),
            (data.get("setl_optins") if isinstance(data, dict) else None, "data.setl_optins"),
        ):
            if value:
                if not isinstance(value, str) or value not in self.every:
                    return None
                found.add(value)
                read = read or where in declared
        lines = parts.get("feedetail")
        people = [(parts.get(part), f"{part}.psn_no") for part in ("data", "mdtrtinfo", "dscginfo")]
        people += [(line, "feedetail.psn_no") for line in lines] if isinstance(lines, list) else []
        for part, where in people:
            psn_no = part.get("psn_no") if isinstance(part, dict) else None
            if psn_no:
                if not isinstance(psn_no, str):
                    return None
                try:
                    found.add(self._population.region_of(self._population.index_of(psn_no)))
                except UnknownPerson:
                    return None
                read = read or where in declared
        if len(found) != 1 or not read:
            return None
        [region] = found
        return None if region in self.owned else region

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


@functools.cache
def _declared(model: type[BaseModel]) -> frozenset[str]:
    """Where :meth:`OwnedRegions.check_message` finds a region or a person in a request of input ``model``, as
    fields the models declare: ``insuplc_admdvs`` (the envelope's, always), ``data.setl_optins``,
    ``data.psn_no``, ``mdtrtinfo.psn_no``, ``dscginfo.psn_no``, ``feedetail.psn_no``."""
    found = {"insuplc_admdvs"}
    for part, info in model.model_fields.items():
        for sub in _models_in(info.annotation):
            found |= {f"{part}.{name}" for name in ("psn_no", "setl_optins") if name in sub.model_fields}
    return frozenset(found)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``Model``, ``Model | None``, ``list[Model]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
