"""GET /schema's "answers" against real answers: an integrator checks a parser with it, so it must say every key.

A served centre answers real requests (a sale and its cancel, a visit with fees settled, a stay with a
mid-stay settlement, a reversal, a statement, the person, the accumulators, the code tables); each answer
is checked against the schema fetched over HTTP by a small validator written here (``jsonschema`` is not a
dependency), which also demands that an object's keys be the schema's properties exactly (no key missing,
none extra), and against the pydantic models directly. A last test shows the validator refuses an answer
with a key missing, a key extra or a value of the wrong type, so the checks cannot pass by accident.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import urllib.request
import zipfile
from typing import Any

import pytest
from pydantic import TypeAdapter

from centre_rig import CODES, HOSPITAL, PHARMACY, POLICY, ServedCentre, certificate_of, default_registry, first_person
from medsettle.centre.answer_schemas import OUTPUTS, AnswerEnvelope

EMPLOYEE = first_person("130100", "310")
RESIDENT = first_person("130100", "390")
NO_CAP = [
    item.med_list_codg
    for item in POLICY.region("130100").catalogues[0].items
    if item.chrgitm_lv == "01" and item.pric_uplmt_amt is None
]
DAY = "2026-03-02 09:58:00"
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


class Checked:
    """What a validation looked at: the paths of the objects whose keys it compared."""

    def __init__(self) -> None:
        self.objects: list[str] = []


def problems(value: Any, schema: dict, defs: dict, path: str, seen: Checked) -> list[str]:
    """Why ``value`` does not meet ``schema`` (empty when it does): types, $ref, anyOf, const/enum, items,
    and for an object its keys, which must include every required key and be among the properties."""
    if "$ref" in schema:
        return problems(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs, path, seen)
    if "anyOf" in schema:
        tries = [problems(value, branch, defs, path, Checked()) for branch in schema["anyOf"]]
        if any(not t for t in tries):
            problems(value, schema["anyOf"][[bool(t) for t in tries].index(False)], defs, path, seen)
            return []
        return [f"{path}: no branch of anyOf fits: {tries}"]
    if "const" in schema and value != schema["const"]:
        return [f"{path}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} not in {schema['enum']}"]
    kind = schema.get("type")
    if kind is not None and (
        not isinstance(value, JSON_TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool))
    ):
        return [f"{path}: {value!r} is not a JSON {kind}"]
    out: list[str] = []
    if isinstance(value, list):
        for i, item in enumerate(value):
            out += problems(item, schema.get("items", {}), defs, f"{path}[{i}]", seen)
    if isinstance(value, dict):
        props, required = schema.get("properties"), set(schema.get("required", ()))
        if props is not None:
            seen.objects.append(path)
            missing, extra = required - value.keys(), value.keys() - props.keys()
            out += [f"{path}: missing {sorted(missing)}"] if missing else []
            out += [f"{path}: not in the schema {sorted(extra)}"] if extra else []
            for key in value.keys() & props.keys():
                out += problems(value[key], props[key], defs, f"{path}.{key}", seen)
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, item in value.items():
                out += problems(item, schema["additionalProperties"], defs, f"{path}.{key}", seen)
    return out


def exact_keys(value: Any, schema: dict, defs: dict, path: str = "output") -> None:
    """Where the schema requires every property it has, the answer's keys are exactly its properties."""
    if "$ref" in schema:
        exact_keys(value, defs[schema["$ref"].rsplit("/", 1)[1]], defs, path)
    elif isinstance(value, dict) and "properties" in schema:
        props = schema["properties"]
        if set(schema.get("required", ())) == props.keys():
            assert set(value) == set(props), (path, sorted(set(value) ^ set(props)))
        for key in value.keys() & props.keys():
            exact_keys(value[key], props[key], defs, f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            exact_keys(item, schema["items"], defs, f"{path}[{i}]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ServedCentre(tmp_path_factory.mktemp("answer-schemas") / "centre") as served:
        yield served


@pytest.fixture(scope="module")
def schema(server: ServedCentre) -> dict:
    with urllib.request.urlopen(server.url + "schema", timeout=30) as response:
        return json.loads(response.read())["answers"]


def sale(psn: str, lines: list[tuple[int, str, str]]) -> dict:
    data = {"psn_no": psn, **certificate_of(psn), "med_type": "41"}
    return {
        "data": {**data, "acct_used_flag": "1"},
        "feedetail": [
            {"feedetl_sn": str(i + 1), "med_list_codg": CODES[k], "pric": p, "cnt": c, "fee_ocur_time": DAY}
            for i, (k, p, c) in enumerate(lines)
        ],
    }


def fee(mdtrt_id: str, psn: str, sn: str, pric: str, med_type: str, when: str) -> dict:
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn,
        "med_type": med_type,
        "fee_ocur_time": when,
        "med_list_codg": NO_CAP[0],
        "pric": pric,
        "cnt": "1",
    }


def another_employee() -> str:
    """An employee insured in 130100 other than EMPLOYEE (a stay of their own)."""
    population = default_registry().population
    return next(
        p
        for i, p in enumerate(population.psn_nos)
        if p != EMPLOYEE and population.describe(i)["insutype"] == "310" and p.startswith("130100")
    )


@pytest.fixture(scope="module")
def answers(server: ServedCentre) -> list[tuple[str, dict]]:
    """(infno, answer) of real calls, each a success."""
    got: list[tuple[str, dict]] = []
    signs = {PHARMACY: server.sign_in(PHARMACY), HOSPITAL: server.sign_in(HOSPITAL)}

    def call(infno: str, body: dict, code: str = PHARMACY) -> tuple[dict, str]:
        answer, msgid = server.call(infno, body, sign_no=signs[code], fixmedins_code=code)
        assert answer["infcode"] == 0, (infno, answer)
        got.append((infno, answer))
        return answer, msgid

    employee_id = default_registry().identities[EMPLOYEE].certno
    call("1101", {"data": {"mdtrt_cert_type": "02", "certno": employee_id}})
    call("1101", {"data": {**certificate_of(EMPLOYEE)}})
    call("2101", sale(EMPLOYEE, [(0, "12.50", "2"), (1, "8.00", "1")]))
    sold, _ = call("2102", sale(EMPLOYEE, [(0, "12.50", "2"), (1, "8.00", "1")]))
    call("2103", {"data": {"setl_id": sold["output"]["setlinfo"]["setl_id"], "psn_no": EMPLOYEE}})
    _, lost = call("2102", sale(EMPLOYEE, [(0, "3.00", "1")]))
    call("2601", {"data": {"psn_no": EMPLOYEE, "omsgid": lost, "oinfno": "2102"}})
    call("5206", {"data": {"psn_no": EMPLOYEE, "cum_ym": "202603", **certificate_of(EMPLOYEE)}})

    certno = default_registry().identities[RESIDENT].certno
    register = {"psn_no": RESIDENT, "begntime": "2026-03-02 09:30:00", **certificate_of(RESIDENT, "02")}
    visit = call("2201", {"data": register}, HOSPITAL)[0]
    mdtrt_id = visit["output"]["data"]["mdtrt_id"]
    info = {"mdtrt_id": mdtrt_id, "psn_no": RESIDENT, "med_type": "14"}
    call("2203", {"mdtrtinfo": info, "diseinfo": []}, HOSPITAL)
    call("2204", {"feedetail": [fee(mdtrt_id, RESIDENT, "1", "900.00", "14", DAY)]}, HOSPITAL)
    settle = {"data": {"psn_no": RESIDENT, "mdtrt_id": mdtrt_id, "mdtrt_cert_type": "02", "mdtrt_cert_no": certno}}
    call("2206", settle, HOSPITAL)
    settled, _ = call("2207", settle, HOSPITAL)
    setl_id = settled["output"]["setlinfo"]["setl_id"]
    call("2208", {"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": RESIDENT}}, HOSPITAL)

    psn = another_employee()
    cert = {**certificate_of(psn)}
    admit = {"psn_no": psn, "med_type": "21", "begntime": "2026-03-01 08:00:00", **cert}
    stay = call("2401", {"mdtrtinfo": admit, "diseinfo": []}, HOSPITAL)[0]["output"]["data"]["mdtrt_id"]
    call("2301", {"feedetail": [fee(stay, psn, "1", "20000.00", "21", "2026-03-03 10:00:00")]}, HOSPITAL)
    data = {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "1", **cert}
    call("2303", {"data": data}, HOSPITAL)
    mid, _ = call("2304", {"data": data}, HOSPITAL)
    call("2305", {"data": {"setl_id": mid["output"]["setlinfo"]["setl_id"], "mdtrt_id": stay, "psn_no": psn}}, HOSPITAL)
    call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "endtime": "2026-03-05 10:00:00"}}, HOSPITAL)

    today = sold["output"]["setlinfo"]["setl_time"][:10]
    period = {"stmt_begndate": today, "stmt_enddate": today}
    totals = {"medfee_sumamt": "0", "fund_pay_sumamt": "0", "acct_pay": "0", "fixmedins_setl_cnt": 0}
    call("3201", {"data": {"insutype": "310", "clr_type": "41", "setl_optins": "130100", **period, **totals}})
    call("3202", {"data": period, "detail": [{"setl_id": sold["output"]["setlinfo"]["setl_id"]}]})
    detail = "\t".join([sold["output"]["setlinfo"]["setl_id"], "x", EMPLOYEE, "33.00", "0", "0", "0"]) + "\n"
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("detail.txt", detail)
    upload = {"in": base64.b64encode(packed.getvalue()).decode(), "filename": "detail.txt.zip"}
    uploaded, _ = call("9101", {"fsUploadIn": {**upload, "fixmedins_code": PHARMACY}})
    call("3202", {"data": {**period, "file_qury_no": uploaded["output"]["file_qury_no"]}})
    page, _ = call("1312", {"data": {"page_size": 3, "date": "2026-03-02"}})
    call("1312", {"data": {"ver": page["output"]["ver"], "date": "2026-03-02"}})
    rules, _ = call("9901", {"data": {"date": "2025-06-01", "admdvs": "330300"}})
    call("9901", {"data": {"date": "2025-06-01", "admdvs": "330300", "ver": rules["output"]["ver"]}})
    call("1901", {"data": {"page_num": 2, "page_size": 3}})
    call("1301", {"data": {"ver": ""}})
    signed, _ = server.call("9001", {"signIn": {"opter_no": "001", "mac": "x", "ip": "127.0.0.1"}})
    got.append(("9001", signed))
    sign_no = signed["output"]["signinoutb"]["sign_no"]
    call_out, _ = server.call("9002", {"signOut": {"sign_no": sign_no, "opter_no": "001"}}, sign_no=sign_no)
    got.append(("9002", call_out))
    assert signed["infcode"] == call_out["infcode"] == 0, (signed, call_out)
    return got


SENT = {"1101", "2201", "2204", "2207", "2102", "2304", "2601", "3201", "5206"}  # at least these


def test_the_schema_publishes_every_answered_transaction(schema):
    assert set(schema) == {"envelope", "outputs"}
    assert set(schema["outputs"]) == set(OUTPUTS)
    for infno in ("9001", "9002", "1101", "2201", "2204", "2301", "2401", "2402", "2601", "3201", "3202", "5206"):
        assert infno in schema["outputs"], infno
    for infno in ("2101", "2102", "2103", "2206", "2207", "2208", "2303", "2304", "2305", "9101", "1312", "9901"):
        assert infno in schema["outputs"], infno
    settlement = schema["outputs"]["2207"]
    assert settlement["required"] == ["setlinfo", "setldetail", "feedetail"]
    assert len(settlement["$defs"]["SetlInfo"]["required"]) == 41
    assert schema["envelope"]["required"] == [
        "infcode",
        "inf_refmsgid",
        "refmsg_time",
        "respond_time",
        "enctype",
        "signtype",
        "err_msg",
        "warn_msg",
        "output",
    ]


def test_every_real_answer_meets_the_published_schema_key_for_key(schema, answers):
    assert {infno for infno, _ in answers} >= SENT
    for infno, answer in answers:
        envelope = schema["envelope"]
        seen = Checked()
        assert problems(answer, envelope, envelope.get("$defs", {}), "answer", seen) == [], (infno, answer)
        assert set(answer) == set(envelope["properties"]), infno
        output = schema["outputs"][infno]
        seen = Checked()
        assert problems(answer["output"], output, output.get("$defs", {}), "output", seen) == [], (infno, answer)
        assert seen.objects, infno  # the validator compared keys (an output of no object would prove nothing)
        exact_keys(answer["output"], output, output.get("$defs", {}))
        AnswerEnvelope.model_validate(answer)
        TypeAdapter(OUTPUTS[infno]).validate_python(answer["output"])


def test_the_rows_were_there_to_check(answers):
    """The lists the schema describes row by row were not empty in the answers checked."""
    by_infno = dict(reversed(answers))  # the first answer of each transaction
    assert by_infno["2207"]["output"]["setldetail"] and by_infno["2207"]["output"]["feedetail"]
    assert by_infno["2304"]["output"]["setldetail"] and by_infno["2102"]["output"]["feedetail"]
    assert by_infno["2204"]["output"]["result"] and by_infno["5206"]["output"]["cuminfo"]
    assert by_infno["1101"]["output"]["insuinfo"] and by_infno["1101"]["output"]["cardinfo"]
    assert by_infno["1312"]["output"]["items"] and by_infno["1901"]["output"]["list"]
    assert {"setl_id", "reversed_setl_id"} <= set(by_infno["2601"]["output"]["data"])
    forms = [sorted(answer["output"]) for infno, answer in answers if infno in ("3202", "1312", "9901")]
    assert ["detail", "one_sided"] in forms and ["fileinfo", "one_sided"] in forms  # both of 3202's forms
    assert ["items", "unchanged", "ver"] in forms and ["unchanged", "ver"] in forms  # 1312's and 9901's unchanged


@pytest.mark.parametrize("change", ["drop a key", "add a key", "an amount as a string", "a null where none may be"])
def test_the_validator_refuses_an_answer_that_is_not_the_schemas(schema, answers, change):
    answer = copy.deepcopy(dict(answers)["2207"])
    info = answer["output"]["setlinfo"]
    if change == "drop a key":
        del info["clr_type"]
    elif change == "add a key":
        answer["output"]["setldetail"][0]["extra"] = 1
    elif change == "an amount as a string":
        info["medfee_sumamt"] = str(info["medfee_sumamt"])
    else:
        info["setl_id"] = None
    output = schema["outputs"]["2207"]
    assert problems(answer["output"], output, output["$defs"], "output", Checked())
    with pytest.raises(ValueError):
        TypeAdapter(OUTPUTS["2207"]).validate_python(answer["output"])
