"""The platform's message envelope and the inputs of the transactions the centre answers (docs/messages.md).

Pydantic models at the edge; their JSON Schema is what a running centre (``medsettle serve``) serves at
``GET /schema`` for integrators. Amounts arrive as JSON numbers or numeric strings and are read exactly
(never as float).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..engine.bills import FeeLine
from ..errors import InvalidInput
from ..jsontext import dumps_bytes
from .file_messages import FILE_INPUTS
from .numbers import PageNumber, PageSize, StatementCount, StatementTotal


def without_nulls(value: Any) -> Any:
    """``value`` with every object key whose value is JSON null left out, at every depth.

    docs/messages.md 'What adapters send': real adapters write an unset property as null (Newtonsoft's
    default); to the platform, and so to the centre, that is the key left out. Done once where a request
    enters (``Centre.submit``, the admin API), before the models read it and before its hash is taken, so
    a request without nulls hashes exactly as before and the same request with and without nulls is "the
    same". A null in a list is a value, not a key: it stays (and is refused where an object is expected)."""
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


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
        """What makes two requests "the same" (docs/messages.md): msgid plus the canonical JSON of these."""
        return self.digest

    @functools.cached_property
    def digest(self) -> str:
        # Compact, keys sorted, non-ASCII kept: the same text simplejson gave earlier versions (a test
        # checks), so hashes journaled by them still match.
        try:
            canonical = dumps_bytes(
                [self.infno, self.fixmedins_code, self.mdtrtarea_admvs, self.insuplc_admdvs, self.input], sort_keys=True
            )
        except TypeError as exc:  # half a UTF-16 pair, or an object no JSON text has: not a request
            raise InvalidInput(f"the request cannot be written as JSON text ({exc})", field="input") from None
        return hashlib.sha256(canonical).hexdigest()


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
    # medsettle extensions (docs/failures.md): the cash a store-and-forward counter collected, and the voucher
    # of a deferred settlement (自费转医保), which the window of the treatment region's policy applies to.
    saf_cash_amt: Decimal | None = Field(None, ge=0, decimal_places=2)
    deferred_voucher_no: str | None = Field(None, min_length=1, max_length=64)


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


class RegisterData(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    insutype: str = ""
    begntime: str = Field(min_length=10)
    mdtrt_cert_type: str = ""
    mdtrt_cert_no: str = ""
    ipt_otp_no: str = ""


class Register(BaseModel):
    """2201 input."""

    data: RegisterData


class RegisterCancelData(BaseModel):
    model_config = ConfigDict(extra="allow")
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)
    ipt_otp_no: str = ""


class RegisterCancel(BaseModel):
    """2202 input."""

    data: RegisterCancelData


class VisitInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)
    med_type: Literal["11", "13", "14"]
    begntime: str = ""


class Visit(BaseModel):
    """2203 input: the visit's med type and diagnoses."""

    mdtrtinfo: VisitInfo
    diseinfo: list[dict[str, Any]] = []


class UploadedFee(FeeLine):
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)
    med_type: str = ""
    fee_ocur_time: str = ""
    medins_list_codg: str = ""


class FeeUpload(BaseModel):
    """2204 input."""

    feedetail: list[UploadedFee] = Field(min_length=1, max_length=1000)


class FeeCancelData(BaseModel):
    model_config = ConfigDict(extra="allow")
    feedetl_sn: str = Field(min_length=1)
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)


class FeeCancel(BaseModel):
    """2205 input."""

    data: FeeCancelData


class OutpatientSettleData(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    mdtrt_id: str = Field(min_length=1)
    mdtrt_cert_type: str = ""
    mdtrt_cert_no: str = ""
    med_type: str = ""
    medfee_sumamt: Decimal | None = Field(None, ge=0, decimal_places=2)
    psn_setlway: str = "01"
    chrg_bchno: str = ""
    insutype: str = ""
    acct_used_flag: str | int = "1"
    deferred_voucher_no: str | None = Field(None, min_length=1, max_length=64)  # medsettle extension (§4)
    saf_cash_amt: Decimal | None = Field(None, ge=0, decimal_places=2)  # a store-and-forward forward (§4)


class OutpatientSettle(BaseModel):
    """2206 (pre-settle) and 2207 (settle) input."""

    data: OutpatientSettleData


class AccumulatorsData(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    cum_ym: str = Field(pattern=r"^\d{6}$")


class Accumulators(BaseModel):
    """5206 input: a person's year-to-date accumulators for the year of ``cum_ym``."""

    data: AccumulatorsData


class ReversalData(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    omsgid: str = Field(min_length=1)
    oinfno: Literal["2201", "2204", "2207", "2102", "2304", "2401", "2301"]


class Reversal(BaseModel):
    """2601 input: reverse a message whose answer was lost."""

    data: ReversalData


class StatementData(BaseModel):
    model_config = ConfigDict(extra="allow")
    insutype: Literal["310", "390"]
    clr_type: Literal["11", "21", "41"]
    setl_optins: str = Field(pattern=r"^\d{6}$")
    stmt_begndate: dt.date
    stmt_enddate: dt.date
    medfee_sumamt: StatementTotal
    fund_pay_sumamt: StatementTotal
    acct_pay: StatementTotal
    fixmedins_setl_cnt: StatementCount


class Statement(BaseModel):
    """3201 input: the institution's totals for one period, scheme, clearing type and insured region."""

    data: StatementData


class DetailPeriod(BaseModel):
    model_config = ConfigDict(extra="allow")
    stmt_begndate: dt.date
    stmt_enddate: dt.date


class DetailLine(BaseModel):
    model_config = ConfigDict(extra="allow")
    setl_id: str = Field(min_length=1)


class StatementDetail(BaseModel):
    """3202 input: the period and every setl_id (settlements and cancel mirrors) the institution holds."""

    data: DetailPeriod
    detail: list[DetailLine] = Field(max_length=100_000)


class AdmissionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    psn_no: str = Field(min_length=1)
    insutype: str = ""
    mdtrt_cert_type: str = ""
    mdtrt_cert_no: str = ""
    med_type: Literal["21"] = "21"
    begntime: str = Field(min_length=10)
    ipt_no: str = ""


class Admission(BaseModel):
    """2401 input."""

    mdtrtinfo: AdmissionInfo
    diseinfo: list[dict[str, Any]] = []


class DischargeInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)
    endtime: str = Field(min_length=10)


class Discharge(BaseModel):
    """2402 input."""

    dscginfo: DischargeInfo
    diseinfo: list[dict[str, Any]] = []


class StayData(BaseModel):
    model_config = ConfigDict(extra="allow")
    mdtrt_id: str = Field(min_length=1)
    psn_no: str = Field(min_length=1)


class StayCancel(BaseModel):
    """2404 (admission cancel) and 2405 (discharge cancel) input."""

    data: StayData


class InpatientSettleData(OutpatientSettleData):
    mid_setl_flag: Literal["0", "1", 0, 1] = "0"


class InpatientSettle(BaseModel):
    """2303 (pre-settle) and 2304 (settle; mid_setl_flag 1 for a mid-stay settlement) input."""

    data: InpatientSettleData


class DownloadData(BaseModel):
    model_config = ConfigDict(extra="allow")
    admdvs: str = Field(default="", pattern=r"^(\d{6})?$")  # the region; default: the institution's
    ver: str = ""  # a version the counter holds: the answer says whether it is still the one in force
    date: dt.date | None = None  # the day whose version is wanted; default: today (Asia/Shanghai)
    page_num: PageNumber = 1
    page_size: PageSize = 1000


class Download(BaseModel):
    """1312 (catalogue) and 9901 (medsettle extension: pooled-fund rules) input."""

    data: DownloadData = DownloadData()


class PersonQueryData(BaseModel):
    model_config = ConfigDict(extra="allow")
    mdtrt_cert_type: Literal["01", "02", "03"]
    mdtrt_cert_no: str = ""
    card_sn: str = ""
    certno: str = ""
    psn_cert_type: str = ""
    psn_name: str = ""


class PersonQuery(BaseModel):
    """1101 input: who is this, by QR e-voucher (01), ID card (02) or social security card (03)."""

    data: PersonQueryData


INPUTS: dict[str, type[BaseModel]] = {
    "9001": SignIn,
    "9002": SignOut,
    "2101": PharmacySale,
    "2102": PharmacySale,
    "2103": Cancel,
    "2201": Register,
    "2202": RegisterCancel,
    "2203": Visit,
    "2204": FeeUpload,
    "2205": FeeCancel,
    "2206": OutpatientSettle,
    "2207": OutpatientSettle,
    "2208": Cancel,
    "5206": Accumulators,
    "2601": Reversal,
    "3201": Statement,
    "3202": StatementDetail,
    "2401": Admission,
    "2402": Discharge,
    "2404": StayCancel,
    "2405": StayCancel,
    "2301": FeeUpload,
    "2302": FeeCancel,
    "2303": InpatientSettle,
    "2304": InpatientSettle,
    "2305": Cancel,
    "1312": Download,
    "9901": Download,
    "1101": PersonQuery,
    **FILE_INPUTS,  # 9101/9102, the file-based 3202, 1301-1319 and 1901 (file_messages.py)
}


def json_schemas() -> dict[str, Any]:
    """JSON Schema of the envelope, each transaction's input by infno, the admin API's requests, and the answers."""
    from .admin import ADMIN_REQUESTS  # noqa: PLC0415 (the admin models are not platform messages)
    from .answer_schemas import answer_schemas  # noqa: PLC0415 (the answers' models are not requests)

    return {
        "envelope": Envelope.model_json_schema(),
        "inputs": {infno: model.model_json_schema() for infno, model in INPUTS.items()},
        "admin": {action: model.model_json_schema() for action, model in ADMIN_REQUESTS.items()},
        "answers": answer_schemas(),
    }
