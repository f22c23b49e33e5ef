"""Read-only transactions: 5206 year-to-date accumulators (of the person a certificate names, as 1101 is:
centre/certificates.py, so a guessed psn_no reads nothing)."""

from __future__ import annotations

from ..errors import InvalidInput
from ..money import fen_to_decimal
from .certificates import Certificates
from .core import Ledger
from .institutions import Institution
from .messages import Accumulators, Envelope

# cum_type_code of 5206 answers: medsettle's own codes (the platform's differ by region).
GROUP_CODES = ("D", "P")  # deductible met, pooled fund paid: followed by the benefit group's name


class Queries:
    def __init__(self, ledger: Ledger, certificates: Certificates) -> None:
        self._ledger = ledger
        self._certificates = certificates

    def handlers(self) -> dict:
        return {"5206": self._accumulators}

    def _accumulators(self, env: Envelope, institution: Institution, payload: Accumulators) -> dict:
        data = payload.data
        person = self._ledger.settler.population.index_of(data.psn_no, "input.data.psn_no")
        self._certificates.check(data, data.psn_no, institution=institution.fixmedins_code)
        year = int(data.cum_ym[:4])
        with self._ledger.lock:
            st = self._ledger.settler.engine.get_state(person)
        if st.acc_year and year < st.acc_year:
            raise InvalidInput(f"only the current accumulator year ({st.acc_year}) is kept", field="input.data.cum_ym")
        current = st.acc_year == year
        region = self._ledger.settler.policy.regions[int(self._ledger.settler.population.attrs[person]["region"])]
        cum = []
        for g, group in enumerate(region.groups):
            cum.append(
                {
                    "year": str(year),
                    "cum_type_code": f"D-{group.name}",
                    "cum": fen_to_decimal(st.ded_met[g] if current else 0),
                }
            )
            cum.append(
                {
                    "year": str(year),
                    "cum_type_code": f"P-{group.name}",
                    "cum": fen_to_decimal(st.pooled_paid[g] if current else 0),
                }
            )
        for code, value in (("T2-BASE", st.t2_base), ("T2-PAID", st.t2_paid), ("MAF-PAID", st.maf_paid)):
            cum.append({"year": str(year), "cum_type_code": code, "cum": fen_to_decimal(value if current else 0)})
        cum.append({"year": str(year), "cum_type_code": "ADM-COUNT", "cum": st.adm_count if current else 0})
        return {"cuminfo": cum}
