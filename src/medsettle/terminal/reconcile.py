"""End of day: reconciliation with the centre (3201 per scheme, clearing type and insured region; 3202 where
the totals differ), from every settlement and mirror the counter holds: sales, visits, stays, vouchers,
forwards, and abandoned settles the centre applied and then reversed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

from ..seams import Clock
from ..timeutil import local_date
from .messaging import Messenger
from .states import SaleState
from .stays import Stays
from .store import CounterStore

# add(setlinfo, insured region, mirror, kind): one settlement or mirror of the day's statement
AddRow = Callable[[dict, str, bool, str], None]

CLEARING_TYPE = {"pharmacy": "41", "outpatient": "11", "inpatient": "21"}


class Reconciliation:
    """The counter's side of the day's statement."""

    def __init__(self, journal: CounterStore, messenger: Messenger, stays: Stays, *, clock: Clock) -> None:
        self._journal, self._messenger, self._stays, self._clock = journal, messenger, stays, clock

    def reconcile(self, day: dt.date | None = None, *, detail: bool = False) -> dict:
        """3201 per scheme, clearing type and insured region for ``day``; 3202 where the totals differ
        (or always, with ``detail``), listing the one-sided settlements."""
        day = day or self._clock.now().date()
        records = self.settlements_on(day)
        groups: dict[tuple, list[dict]] = {}
        for r in records:
            groups.setdefault((r["insutype"], r["clr_type"], r["insuplc_admdvs"]), []).append(r)
        results, one_sided = [], []
        for (insutype, clr_type, region), rows in sorted(groups.items()):

            def total(name: str, rows: list[dict] = rows) -> str:
                return f"{sum(Decimal(str(r[name])) for r in rows):.2f}"

            out = self._messenger.query(
                "3201",
                {
                    "data": {
                        "insutype": insutype,
                        "clr_type": clr_type,
                        "setl_optins": region,
                        "stmt_begndate": day.isoformat(),
                        "stmt_enddate": day.isoformat(),
                        "medfee_sumamt": total("medfee_sumamt"),
                        "fund_pay_sumamt": total("fund_pay_sumamt"),
                        "acct_pay": total("acct_pay"),
                        "fixmedins_setl_cnt": sum(-1 if r["mirror"] else 1 for r in rows),
                    }
                },
            )
            results.append(
                {
                    "insutype": insutype,
                    "clr_type": clr_type,
                    "setl_optins": region,
                    "stmt_rslt": out["stmtinfo"]["stmt_rslt"],
                }
            )
        if detail or not groups or any(r["stmt_rslt"] != "0" for r in results):
            listed = self._messenger.query(
                "3202",
                {
                    "data": {"stmt_begndate": day.isoformat(), "stmt_enddate": day.isoformat()},
                    "detail": [{"setl_id": r["setl_id"]} for r in records],
                },
            )
            one_sided = [row for row in listed["detail"] if row["stmt_rslt"] != "both"]
        return {
            "day": day.isoformat(),
            "groups": results,
            "one_sided": one_sided,
            "clean": not one_sided and all(r["stmt_rslt"] == "0" for r in results),
        }

    def settlements_on(self, day: dt.date) -> list[dict]:
        """Every settlement and mirror this counter holds with a setl_time on ``day``."""
        rows: list[dict] = []

        def add(setlinfo: dict, region: str, mirror: bool, kind: str = "pharmacy") -> None:
            if local_date(setlinfo["setl_time"]) == day:
                rows.append({**setlinfo, "insuplc_admdvs": region, "mirror": mirror, "clr_type": CLEARING_TYPE[kind]})

        for _sale, _state, data in self._journal.sales():
            if data.get("kind") != "inpatient":
                continue
            for setlinfo in self._stays.stay_settlements(data):
                add(setlinfo, data["insuplc_admdvs"], False, "inpatient")
            for setlinfo in self._stays.stay_mirrors(data):
                add(setlinfo, data["insuplc_admdvs"], True, "inpatient")
        for _sale, state, data in self._journal.sales(
            SaleState.DONE, SaleState.SETTLED, SaleState.CANCELLED, SaleState.CANCELLING
        ):
            if data.get("voucher") or data.get("forward_of"):
                continue  # a voucher's re-settlement or a forward: counted with its voucher or entry below
            add(data["setlinfo"], data["insuplc_admdvs"], False, data.get("kind", "pharmacy"))
            if state is SaleState.CANCELLED:
                add(data["mirror"], data["insuplc_admdvs"], True, data.get("kind", "pharmacy"))
        for v in self._journal.vouchers("settled"):
            if v.get("kind") != "inpatient":  # a stay's voucher is settled by a step of the stay, counted above
                add(v["setlinfo"], v["insuplc_admdvs"], False, v.get("kind", "pharmacy"))
        for e in self._journal.saf_entries("forwarded"):
            add(e["setlinfo"], e["insuplc_admdvs"], False, e.get("kind", "pharmacy"))
        for _sale, _state, data in self._journal.sales():  # abandoned settles, whatever the sale did next
            self._add_reversed(data, add)
        return rows

    def _add_reversed(self, data: dict, add: AddRow) -> None:
        """A settle that arrived and was undone by its 2601: both sides hold both (amounts zero)."""
        reversal = self._journal.message(data["reversal"]) if data.get("reversal") else None
        result = ((reversal or {}).get("answer") or {}).get("output", {}).get("data", {})
        if result.get("reversed_setl_id"):
            zero = {
                "setl_time": data["bill_time"],
                "medfee_sumamt": 0,
                "fund_pay_sumamt": 0,
                "acct_pay": 0,
                "insutype": data["insutype"],
            }
            kind = data.get("kind", "pharmacy")
            add({**zero, "setl_id": result["reversed_setl_id"]}, data["insuplc_admdvs"], False, kind)
            add({**zero, "setl_id": result["setl_id"]}, data["insuplc_admdvs"], True, kind)
