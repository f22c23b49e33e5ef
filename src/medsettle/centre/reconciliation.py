"""3201/3202 reconciliation (对账, docs/messages.md).

3201 compares an institution's totals for a period with the centre's, per scheme (insutype), clearing
type (11 for med types 11/13/14, 21 for 21, 41 for 41) and insured region (setl_optins), grouping
settlements by the date of their setl_time (a cancel mirror on its cancel's date, counting -1 and with
negative amounts). 3202 lists, per setl_id, whether both sides have it, so one-sided records can be
found and reversed.
"""

from __future__ import annotations

import datetime as dt
import re

from ..engine.results import Settlement
from ..errors import InvalidInput
from ..money import fen_to_decimal
from .core import Ledger
from .file_messages import StatementDetailByFile
from .files import Files, fileinfo, unzip_text, zip_text
from .institutions import Institution
from .messages import Envelope, Statement
from .settlements import Settlements

CLR_TYPE = {"11": "11", "13": "11", "14": "11", "21": "21", "41": "41"}


class Reconciliation:
    """Reads the settler's records and which institution each belongs to; changes nothing."""

    def __init__(self, ledger: Ledger, settlements: Settlements, owned: set[str]) -> None:
        self._ledger = ledger
        self._settlements = settlements
        self._owned = owned
        self._files = Files(ledger)

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

    def _statement_detail(self, env: Envelope, institution: Institution, payload: StatementDetailByFile) -> dict:
        """The platform's 3202: the detail in a 9101 file (``data.file_qury_no``), the answer's detail a file
        to fetch with 9102 (``fileinfo``). medsettle's extension: the detail inline (``detail``), answered
        inline. Either way, per setl_id: both sides have it, the centre only, or the institution only."""
        d = payload.data
        records = self._institution_records(institution, d.stmt_begndate, d.stmt_enddate)
        # the platform's 3202 names the insured region (setl_optins); medsettle's extension may leave it out
        ours = {r.setl_id: r for r in records if not d.setl_optins or self._insured_region(r) == d.setl_optins}
        if not d.file_qury_no:
            if payload.detail is None:
                raise InvalidInput(
                    "3202 names the detail's file (uploaded with 9101) or lists the detail inline",
                    field="input.data.file_qury_no",
                )
            theirs = {line.setl_id for line in payload.detail}
            rows = [{"setl_id": s, "stmt_rslt": "both" if s in theirs else "centre_only"} for s in sorted(ours)]
            rows += [{"setl_id": s, "stmt_rslt": "institution_only"} for s in sorted(theirs - ours.keys())]
            return {"detail": rows, "one_sided": sum(1 for r in rows if r["stmt_rslt"] != "both")}
        uploaded = self._files.read(d.file_qury_no, institution, "input.data.file_qury_no")
        lines = detail_lines(unzip_text(uploaded.content, "input.data.file_qury_no"), "input.data.file_qury_no")
        out = []
        for setl_id in sorted(ours.keys() | lines.keys()):
            record = ours.get(setl_id)
            fields = _centre_fields(record) if record is not None else lines[setl_id]
            side = "institution_only" if record is None else "both" if setl_id in lines else "centre_only"
            out.append("\t".join([*fields, side]))
        name = f"{institution.fixmedins_code}_3202_{d.stmt_begndate:%Y%m%d}_{d.stmt_enddate:%Y%m%d}"
        text = "".join(line + "\n" for line in out)
        stored = self._files.publish(institution.fixmedins_code, name + ".txt.zip", zip_text(name + ".txt", text))
        return {
            "fileinfo": fileinfo(stored),
            "one_sided": sum(1 for line in out if not line.endswith("\tboth")),
        }

    def _insured_region(self, record: Settlement) -> str:
        return self._ledger.settler.population.region_of(record.person)


DETAIL_FIELDS = ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt", "acct_pay", "refd_setl_flag")
_AMOUNT = re.compile(r"^-?\d{1,14}(\.\d{1,2})?$")


def detail_lines(text: str, field: str) -> dict[str, list[str]]:
    """An institution's 3202 detail file (docs/files.md): setl_id -> its seven fields, in DETAIL_FIELDS' order.

    One settlement a line, tab-separated; an optional first line of the field names is skipped; empty lines
    are ignored; ``\r\n`` line ends are taken. InvalidInput naming ``field`` and the line otherwise."""
    lines: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or (n == 1 and line.split("\t")[0] == "setl_id"):
            continue
        fields = line.split("\t")
        if len(fields) != len(DETAIL_FIELDS):
            raise InvalidInput(
                f"line {n}: {len(fields)} tab-separated fields, a line has {len(DETAIL_FIELDS)}", field=field
            )
        if not fields[0]:
            raise InvalidInput(f"line {n}: setl_id is empty", field=field)
        for name, value in zip(DETAIL_FIELDS[3:6], fields[3:6], strict=True):
            if not _AMOUNT.match(value):
                raise InvalidInput(
                    f"line {n}: {name} {value!r} is not an amount in yuan (2 places at most)", field=field
                )
        if fields[0] in lines:
            raise InvalidInput(f"line {n}: setl_id {fields[0]} is listed twice", field=field)
        lines[fields[0]] = fields
    return lines


def _centre_fields(record: Settlement) -> list[str]:
    """A centre record's seven detail fields (a cancel mirror: refd_setl_flag 1, negative amounts)."""
    amounts = [str(fen_to_decimal(record.amount(name))) for name in DETAIL_FIELDS[3:6]]
    return [record.setl_id, record.mdtrt_id, record.psn_no, *amounts, "1" if record.mirror_of else "0"]
