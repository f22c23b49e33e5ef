"""Encounters (就诊): a registration (2201) and what is uploaded under its mdtrt_id until it is settled.

State changes here only through :meth:`Encounters.apply`, from a journal entry's body, so the same
code serves a live request (after its entry is queued) and a replay of the journal on start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REGISTER, REGISTER_CANCEL, VISIT, FEES, FEES_CANCEL = "register", "register_cancel", "visit", "fees", "fees_cancel"
DISCHARGE, DISCHARGE_CANCEL = "discharge", "discharge_cancel"
EVENT_KINDS = (REGISTER, REGISTER_CANCEL, VISIT, FEES, FEES_CANCEL, DISCHARGE, DISCHARGE_CANCEL)
ALL_LINES = "0000"  # 2205 with this feedetl_sn cancels every unsettled line


@dataclass
class Encounter:
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    begntime: str
    med_type: str = "11"  # 21 for an admission (2401)
    cancelled: bool = False
    endtime: str = ""  # discharge time (2402); empty while the patient is in hospital
    lines: dict[str, dict[str, Any]] = field(default_factory=dict)  # feedetl_sn -> the uploaded line
    settled: dict[str, str] = field(default_factory=dict)  # feedetl_sn -> setl_id
    cancelled_lines: set[str] = field(default_factory=set)  # feedetl_sns uploaded, then cancelled (2205, 2601)

    @property
    def inpatient(self) -> bool:
        return self.med_type == "21"

    def open_lines(self) -> list[dict[str, Any]]:
        """Uploaded, not yet settled, not cancelled lines, in upload order."""
        return [line for sn, line in self.lines.items() if sn not in self.settled]

    @property
    def closed(self) -> bool:
        """Discharged and every uploaded line settled: the stay is over."""
        return bool(self.endtime) and bool(self.lines) and not self.open_lines()


class Encounters:
    def __init__(self) -> None:
        self.by_id: dict[str, Encounter] = {}
        self.count = 0
        self._settled_lines: dict[str, tuple[str, list[str]]] = {}  # setl_id -> (mdtrt_id, feedetl_sns)

    def get(self, mdtrt_id: str) -> Encounter | None:
        return self.by_id.get(mdtrt_id)

    def of_upload(self, code: str | None, psn_no: str, sns: list[str]) -> Encounter | None:
        """The latest encounter of institution ``code`` (any, None) and ``psn_no`` that had every one of the
        feedetl_sns of an upload (open, settled or cancelled since): a feedetl_sn is unique within one
        encounter only, so the person and the institution narrow it down."""
        found = None
        for enc in self.by_id.values():
            ours = enc.psn_no == psn_no and (code is None or enc.fixmedins_code == code)
            if ours and all(sn in enc.lines or sn in enc.cancelled_lines for sn in sns):
                found = enc
        return found

    def in_hospital(self, psn_no: str) -> Encounter | None:
        """The person's admission that is neither cancelled nor finally settled after discharge, if any."""
        for enc in self.by_id.values():
            if enc.psn_no == psn_no and enc.inpatient and not enc.cancelled and not enc.closed:
                return enc
        return None

    def apply(self, kind: str, body: dict[str, Any]) -> None:
        if kind == REGISTER:
            self.by_id[body["mdtrt_id"]] = Encounter(
                body["mdtrt_id"], body["psn_no"], body["fixmedins_code"], body["begntime"], body.get("med_type", "11")
            )
            self.count += 1
        elif kind == REGISTER_CANCEL:
            self.by_id[body["mdtrt_id"]].cancelled = True
        elif kind == VISIT:
            self.by_id[body["mdtrt_id"]].med_type = body["med_type"]
        elif kind == DISCHARGE:
            self.by_id[body["mdtrt_id"]].endtime = body["endtime"]
        elif kind == DISCHARGE_CANCEL:
            self.by_id[body["mdtrt_id"]].endtime = ""
        elif kind == FEES:
            enc = self.by_id[body["mdtrt_id"]]
            for line in body["lines"]:
                enc.lines[line["feedetl_sn"]] = line
        elif kind == FEES_CANCEL:
            enc = self.by_id[body["mdtrt_id"]]
            for sn in body["feedetl_sns"]:
                if enc.lines.pop(sn, None) is not None:
                    enc.cancelled_lines.add(sn)

    def mark_settled(self, mdtrt_id: str, feedetl_sns: list[str], setl_id: str) -> None:
        enc = self.by_id[mdtrt_id]
        for sn in feedetl_sns:
            enc.settled[sn] = setl_id
        self._settled_lines[setl_id] = (mdtrt_id, list(feedetl_sns))

    def mark_cancelled(self, setl_id: str) -> None:
        """A cancelled settlement's lines are open again (the counter may settle or cancel them anew)."""
        mdtrt_id, sns = self._settled_lines.pop(setl_id, ("", []))
        enc = self.by_id.get(mdtrt_id)
        for sn in sns:
            if enc is not None:
                enc.settled.pop(sn, None)
