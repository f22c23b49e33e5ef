"""The JSON Schema of the centre's answers, published by ``GET /schema`` under "answers".

An integrator checks a parser against it: every key the centre answers, its JSON type, null where it may
be null, and ``required`` = every key it always sends (a key sent only sometimes, such as 2601's setl_id,
is optional). The models describe the wire; the handlers build plain dicts and never go through them, so
tests/test_answer_schemas.py validates real answers against this schema to keep the two in step.

Amounts are JSON numbers in yuan (``float`` here only names the JSON type: nothing is computed with it).
The models are strict and forbid extra keys, so the schema says ``additionalProperties: false``.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

Amount = float  # ok-float: names the JSON type "number" of a yuan amount; the centre computes in fen


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class AnswerEnvelope(_Answer):
    """Every answer, refusals included (docs/messages.md "The envelope"); a refusal's output is {}."""

    infcode: Literal[0, -1]
    inf_refmsgid: str
    refmsg_time: str
    respond_time: str
    enctype: str | None
    signtype: str | None
    err_msg: str | None
    warn_msg: str | None
    output: dict[str, Any]


class Empty(_Answer):
    """The output {} of a transaction that answers nothing but its success (2203, 2402, ...)."""


# 9001 / 9002
class SignInRow(_Answer):
    sign_time: str
    sign_no: str


class InstitutionTerms(_Answer):
    failure_policy: str
    tier: str
    floor_per_bill: Amount
    floor_per_person_day: Amount
    floor_outstanding: Amount


class SignInAnswer(_Answer):
    signinoutb: SignInRow
    insinfo: InstitutionTerms


class SignOutRow(_Answer):
    sign_time: str


class SignOutAnswer(_Answer):
    signoutoutb: SignOutRow


# 1101
class BaseInfo(_Answer):
    psn_no: str
    psn_cert_type: str
    certno: str
    psn_name: str
    gend: str
    naty: str
    brdy: str
    age: int
    exp_content: str | None


class InsuInfo(_Answer):
    balc: Amount
    insutype: str
    psn_type: str
    psn_insu_stas: str
    psn_insu_date: str | None
    paus_insu_date: str | None
    cvlserv_flag: str
    insuplc_admdvs: str
    emp_name: str


class IdetInfo(_Answer):
    psn_idet_type: str
    idet_name: str
    psn_type_lv: str | None
    memo: str | None
    begntime: str | None
    endtime: str | None


class CardInfo(_Answer):
    card_no: str
    status: str


class PersonAnswer(_Answer):
    baseinfo: BaseInfo
    insuinfo: list[InsuInfo]
    idetinfo: list[IdetInfo]
    cardinfo: list[CardInfo]


# 2201 / 2401
class VisitData(_Answer):
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str
    exp_content: str | None


class VisitAnswer(_Answer):
    data: VisitData


class AdmissionData(_Answer):
    mdtrt_id: str
    psn_no: str
    ipt_otp_no: str


class AdmissionAnswer(_Answer):
    data: AdmissionData


# 2204 / 2301
class FeeResultRow(_Answer):
    feedetl_sn: str
    det_item_fee_sumamt: Amount
    cnt: float  # ok-float: a count may have decimals (0.5 of a pack)
    pric: Amount
    pric_uplmt_amt: Amount | None
    selfpay_prop: float  # ok-float: a ratio
    fulamt_ownpay_amt: Amount
    overlmt_amt: Amount
    preselfpay_amt: Amount
    inscp_scp_amt: Amount
    chrgitm_lv: str
    med_chrgitm_type: str
    bas_medn_flag: str
    hi_nego_drug_flag: str
    chld_medc_flag: str
    list_sp_item_flag: str
    lmt_used_flag: str
    drt_reim_flag: str
    memo: str | None
    exp_content: str | None


class FeeUploadAnswer(_Answer):
    result: list[FeeResultRow]


# The settlement answers: 2101-2103, 2206-2208, 2303-2305
class SetlInfo(_Answer):
    setl_id: str
    mdtrt_id: str
    psn_no: str
    psn_name: str
    psn_cert_type: str
    certno: str
    gend: str
    naty: str
    brdy: str
    age: int
    insutype: str
    psn_type: str
    cvlserv_flag: str
    setl_time: str
    mdtrt_cert_type: str | None
    med_type: str
    medfee_sumamt: Amount
    fulamt_ownpay_amt: Amount
    overlmt_selfpay: Amount
    preselfpay_amt: Amount
    inscp_scp_amt: Amount
    act_pay_dedc: Amount
    hifp_pay: Amount
    pool_prop_selfpay: Amount
    cvlserv_pay: Amount
    hifes_pay: Amount
    hifmi_pay: Amount
    hifob_pay: Amount
    maf_pay: Amount
    oth_pay: Amount
    fund_pay_sumamt: Amount
    psn_part_amt: Amount
    acct_pay: Amount
    psn_cash_pay: Amount
    hosp_part_amt: Amount
    balc: Amount
    acct_mulaid_pay: Amount
    medins_setl_id: str
    clr_optins: str
    clr_way: str
    clr_type: str


class SetlDetailRow(_Answer):
    fund_pay_type: str
    fund_pay_type_name: str
    inscp_scp_amt: Amount
    crt_payb_lmt_amt: Amount
    fund_payamt: Amount
    setl_proc_info: str | None


class SettledLine(_Answer):
    """The per-line split of the bill (the answer's feedetail)."""

    feedetl_sn: str
    det_item_fee_sumamt: Amount
    fulamt_ownpay_amt: Amount
    overlmt_amt: Amount
    preselfpay_amt: Amount
    inscp_scp_amt: Amount


class SettlementAnswer(_Answer):
    setlinfo: SetlInfo
    setldetail: list[SetlDetailRow]
    feedetail: list[SettledLine]


# 2601
class ReversalData(TypedDict):
    """setl_id and reversed_setl_id when a settlement was reversed, mdtrt_id when a registration was: keys
    sent only then (absent, never null), hence a TypedDict with NotRequired keys rather than a model."""

    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")  # type: ignore[misc]

    omsgid: str
    oinfno: str
    rvs_rslt: str
    setl_id: NotRequired[str]
    reversed_setl_id: NotRequired[str]
    mdtrt_id: NotRequired[str]


class ReversalAnswer(_Answer):
    data: ReversalData


# 3201 / 3202
class StatementInfo(_Answer):
    setl_optins: str
    stmt_rslt: str
    stmt_rslt_dscr: str
    medfee_sumamt: Amount
    fund_pay_sumamt: Amount
    acct_pay: Amount
    fixmedins_setl_cnt: int


class StatementAnswer(_Answer):
    stmtinfo: StatementInfo


class StatementDetailRow(_Answer):
    setl_id: str
    stmt_rslt: str


class StatementDetailAnswer(_Answer):
    """The detail sent inline: the answer's rows."""

    detail: list[StatementDetailRow]
    one_sided: int


class FileInfo(_Answer):
    file_qury_no: str
    filename: str
    dld_endtime: str


class StatementFileAnswer(_Answer):
    """The detail sent as a 9101 file: the answer's detail is a file to fetch with 9102."""

    fileinfo: FileInfo
    one_sided: int


# 5206
class CumRow(_Answer):
    year: str
    cum_type_code: str
    cum: Amount


class CumulativeAnswer(_Answer):
    cuminfo: list[CumRow]


# 9101 and the catalogue downloads 1301-1319
class CatalogueFileAnswer(_Answer):
    file_qury_no: str
    filename: str
    dld_endtime: str
    ver: str
    data_cnt: int


# 1312
class CatalogueItem(_Answer):
    med_list_codg: str
    name: str
    chrgitm_lv: str
    selfpay_prop: str
    selfpay_prop_by_psn_type: dict[str, str]
    pric_uplmt_amt: str | None
    lmt_used_flag: bool
    med_chrgitm_type: str
    bas_medn_flag: bool
    hi_nego_drug_flag: bool
    chld_medc_flag: bool
    list_sp_item_flag: bool
    drt_reim_flag: bool


class CataloguePage(_Answer):
    ver: str
    effective_from: str
    unchanged: Literal[False]
    total: int
    page_num: int
    page_size: int
    items: list[CatalogueItem]


class CatalogueUnchanged(_Answer):
    """The institution already holds the version in force (its ``ver``): nothing to page."""

    ver: str
    unchanged: Literal[True]
    items: list[CatalogueItem]


# 9901
class RuleGroup(_Answer):
    name: str
    deductible_basis: str


class RulesAnswer(_Answer):
    """The ruleset is the policy document's own (docs/policy.md): its keys are the policy's, not the wire's."""

    ver: str
    unchanged: Literal[False]
    admdvs: str
    groups: list[RuleGroup]
    ruleset: dict[str, Any]


class RulesUnchanged(_Answer):
    """The institution already holds the rule set in force (its ``ver``)."""

    ver: str
    unchanged: Literal[True]


# 1901
class CodeRow(_Answer):
    type: str
    value: str
    label: str
    parent_value: str
    sort: int
    vali_flag: str


class CodeTablePage(_Answer):
    rows: list[CodeRow] = Field(alias="list")  # the platform's key; `list` would shadow the builtin
    total: int
    page_num: int
    page_size: int


_SETTLEMENTS = ("2101", "2102", "2103", "2206", "2207", "2208", "2303", "2304", "2305")
_CATALOGUE_FILES = ("1301", "1302", "1305", "1306", "1318", "1319")

# infno -> the model of its answer's output (a success; a refusal's output is {}).
OUTPUTS: dict[str, Any] = {
    "9001": SignInAnswer,
    "9002": SignOutAnswer,
    "1101": PersonAnswer,
    "2201": VisitAnswer,
    "2203": Empty,
    "2204": FeeUploadAnswer,
    "2301": FeeUploadAnswer,
    "2401": AdmissionAnswer,
    "2402": Empty,
    **dict.fromkeys(_SETTLEMENTS, SettlementAnswer),
    "2601": ReversalAnswer,
    "3201": StatementAnswer,
    "3202": StatementDetailAnswer | StatementFileAnswer,
    "5206": CumulativeAnswer,
    "9101": FileInfo,
    "1312": CataloguePage | CatalogueUnchanged,
    "9901": RulesAnswer | RulesUnchanged,
    "1901": CodeTablePage,
    **dict.fromkeys(_CATALOGUE_FILES, CatalogueFileAnswer),
}


def answer_schemas() -> dict[str, Any]:
    """{"envelope": ..., "outputs": {"<infno>": ...}}: the JSON Schema of the answer envelope and of each output."""
    from pydantic import TypeAdapter  # noqa: PLC0415 (keeps the import next to its one use)

    return {
        "envelope": AnswerEnvelope.model_json_schema(),
        "outputs": {infno: TypeAdapter(model).json_schema() for infno, model in OUTPUTS.items()},
    }
