"""3201/3202 reconciliation (对账, docs/messages.md).

3201 compares an institution's totals for a period with the centre's, per scheme (insutype), clearing
type (11 for med types 11/13/14, 21 for 21, 41 for 41) and insured region (setl_optins), grouping
settlements by the date of their setl_time (a cancel mirror on its cancel's date, counting -1 and with
negative amounts). 3202 lists, per setl_id, whether both sides have it, so one-sided records can be
found and reversed.
"""

from __future__ import annotations

import datetime as dt

from ..engine.results import Settlement
from ..errors import InvalidInput
from ..money import fen_to_decimal
from .core import Ledger
from .institutions import Institution
from .messages import Envelope, Statement, StatementDetail
from .settlements import Settlements

CLR_TYPE = {"11": "11", "13": "11", "14": "11", "21": "21", "41": "41"}


class Reconciliation:
    """Reads the settler's records and which institution each belongs to; changes nothing."""

    def __init__(self, ledger: Ledger, settlements: Settlements, owned: set[str]) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._owned = owned

    def handlers(self) -> dict:
        return {"3201": self._statement, "3202": self._statement_detail}

    def _institution_records(self, institution: Institution, begin: dt.date, end: dt.date) -> list[Settlement]:
        """This institution's settlements and mirrors with a setl_time date in [begin, end]."""
        institution_of = self._settlements.institution_of
        with self._ledger.lock:
            return [
                r
                for setl_id, r in self._ledger.settler.records.items()
                if institution_of(setl_id) == institution.fixmedins_code
                and begin <= r.setl_time.date() <= end
                and self._insured_region(r) in self._owned
            ]

    def _statement(self, env: Envelope, institution: Institution, payload: Statement) -> dict:
        d = payload.data
        if d.setl_optins not in self._owned:
            raise InvalidInput(
                f"insured region {d.setl_optins} is reconciled by the centre process that owns it",
                field="input.data.setl_optins",
            )
        records = [
            r
            for r in self._institution_records(institution, d.stmt_begndate, d.stmt_enddate)
            if r.insutype == d.insutype
            and CLR_TYPE[r.med_type] == d.clr_type
            and self._insured_region(r) == d.setl_optins
        ]
        totals = {
            name: sum(r.amount(name) for r in records) for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")
        }
        count = sum(-1 if r.mirror_of else 1 for r in records)
        theirs = {"medfee_sumamt": d.medfee_sumamt, "fund_pay_sumamt": d.fund_pay_sumamt, "acct_pay": d.acct_pay}
        equal = count == d.fixmedins_setl_cnt and all(fen_to_decimal(totals[k]) == theirs[k] for k in totals)
        return {
            "stmtinfo": {
                "setl_optins": d.setl_optins,
                "stmt_rslt": "0" if equal else "1",
                "stmt_rslt_dscr": "totals agree" if equal else "totals differ: compare the detail with 3202",
                **{k: fen_to_decimal(v) for k, v in totals.items()},
                "fixmedins_setl_cnt": count,
            }
        }

    def _statement_detail(self, env: Envelope, institution: Institution, payload: StatementDetail) -> dict:
        d = payload.data
        ours = {r.setl_id for r in self._institution_records(institution, d.stmt_begndate, d.stmt_enddate)}
        theirs = {line.setl_id for line in payload.detail}
        rows = [{"setl_id": s, "stmt_rslt": "both" if s in theirs else "centre_only"} for s in sorted(ours)]
        rows += [{"setl_id": s, "stmt_rslt": "institution_only"} for s in sorted(theirs - ours)]
        return {"detail": rows, "one_sided": sum(1 for r in rows if r["stmt_rslt"] != "both")}

    def _insured_region(self, record: Settlement) -> str:
        return self._ledger.settler.population.region_of(record.person)
