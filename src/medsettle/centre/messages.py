"""The platform's message envelope and the inputs of the transactions the centre answers (DOMAIN.md §3).

Pydantic models at the edge; their JSON Schema is what ``medsettle centre schema`` publishes for
integrators. Amounts arrive as JSON numbers or numeric strings and are read exactly (never as float).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import simplejson
from pydantic import BaseModel, ConfigDict, Field

from ..engine.bills import FeeLine


class Envelope(BaseModel):
    """Every request: the envelope keys and ``input``. Extra keys real adapters send are accepted."""

    model_config = ConfigDict(extra="allow")

    infno: str = Field(pattern=r"^\d{4}$")
    msgid: str = Field(min_length=1, max_length=40)
    mdtrtarea_admvs: str = ""
    insuplc_admdvs: str = ""
    recer_sys_code: str = ""
    dev_no: str = ""
    infver: str = ""
    opter_type: str = ""
    opter: str = ""
    opter_name: str = ""
    inf_time: str = ""
    fixmedins_code: str = Field(min_length=1)
    fixmedins_name: str = ""
    sign_no: str = ""
    input: dict[str, Any]

    def request_hash(self) -> str:
        """What makes two requests "the same" (DOMAIN.md §3): msgid plus the canonical JSON of these."""
        canonical = simplejson.dumps([self.infno, self.fixmedins_code, self.mdtrtarea_admvs, self.insuplc_admdvs,
                                      self.input], use_decimal=True, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class SignInData(BaseModel):
    model_config = ConfigDict(extra="allow")
    opter_no: str = Field(min_length=1)
    mac: str = ""
    ip: str = ""


class SignIn(BaseModel):
    """9001 input."""
    signIn: SignInData


class SignOutData(BaseModel):
    model_config = ConfigDict(extra="allow")
    sign_no: str = Field(min_length=1)
    opter_no: str = ""


class SignOut(BaseModel):
    """9002 input."""
    signOut: SignOutData


class PharmacyData(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    mdtrt_cert_type: str = ""
    mdtrt_cert_no: str = ""
    med_type: str = "41"
    medfee_sumamt: Decimal | None = Field(None, ge=0, decimal_places=2)
    psn_setlway: str = "01"
    insutype: str = ""
    acct_used_flag: str | int = "1"
    chrg_bchno: str = ""


class PharmacyFee(FeeLine):
    fee_ocur_time: str = ""
    medins_list_codg: str = ""


class PharmacySale(BaseModel):
    """2101 (pre-settle) and 2102 (settle) input: ``data`` and the fee details inline."""
    data: PharmacyData
    feedetail: list[PharmacyFee] = Field(min_length=1, max_length=1000)


class CancelData(BaseModel):
    model_config = ConfigDict(extra="allow")
    setl_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)
    mdtrt_id: str = ""


class Cancel(BaseModel):
    """2103 (and 2208, 2305) input."""
    data: CancelData


INPUTS: dict[str, type[BaseModel]] = {
    "9001": SignIn, "9002": SignOut, "2101": PharmacySale, "2102": PharmacySale, "2103": Cancel,
}


def json_schemas() -> dict[str, Any]:
    """JSON Schema of the envelope and of every transaction's input, by infno."""
    return {"envelope": Envelope.model_json_schema(),
            "inputs": {infno: model.model_json_schema() for infno, model in INPUTS.items()}}
