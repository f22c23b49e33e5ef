"""Requests as real HIS adapters send them (docs/messages.md 'What adapters send'), against a served centre.

Newtonsoft writes every unset property as null; some adapters put the transaction code at the end of the
URL, send text/plain or no Content-Type, sort or indent their keys, write infver "1", msgids of 27
characters, ISO times with a "T", and amounts and flags as numeric strings. Each is taken as the platform
takes it. And whatever is wrong with a request, the answer is the platform's envelope with HTTP status 200
(many adapters read the body only on 200), never a plain-text error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from centre_rig import (
    CODES,
    EMPLOYEE,
    HOSPITAL,
    PHARMACY,
    ServedCentre,
    certificate_of,
    certno,
    default_registry,
    first_person,
)
from medsettle import credentials
from medsettle.centre.app import PLATFORM_PATH, make_app
from medsettle.centre.gateway import open_gateway
from medsettle.centre.institutions import default_institutions
from medsettle.centre.messages import Envelope, without_nulls
from medsettle.centre.service import Centre
from medsettle.credentials import InstitutionCredential
from medsettle.engine import Population, Settler
from medsettle.ledger import SQLiteJournal
from medsettle.ledger.gate import AGENCY_ROW
from medsettle.policy import load_default_policy
from medsettle.terminal.client import CentreClient, CentreUnreachable
from medsettle.timeutil import SHANGHAI

ENVELOPE_KEYS = {"infcode", "inf_refmsgid", "err_msg", "output"}


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One served centre for the module (each test uses msgids and persons of its own)."""
    with ServedCentre(tmp_path_factory.mktemp("his") / "centre") as served:
        yield served


def send(
    centre: ServedCentre,
    path: str = "/",
    body: Any = None,
    *,
    raw: bytes | None = None,
    method: str = "POST",
    **headers: str,
) -> tuple[int, str, Any]:
    """One HTTP request as an adapter makes it (http.client: no header is added that the test did not ask
    for, Content-Type included, but the gateway's x-tif-* signature an adapter sends on every request):
    (status, content type, the decoded JSON answer or the raw bytes)."""
    url = urlsplit(centre.url)
    data = raw if raw is not None else (None if body is None else json.dumps(body, ensure_ascii=False).encode())
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        admin = path.strip("/") == "admin"  # the agency's token and JSON there, an institution's signature elsewhere
        signed = centre.credentials().admin_headers() if admin else centre.signed_headers(body, raw)
        conn.request(
            method, path, body=data, headers={**signed, **{k.replace("_", "-"): v for k, v in headers.items()}}
        )
        resp = conn.getresponse()
        text, ctype = resp.read(), resp.headers.get_content_type()
        return resp.status, ctype, json.loads(text) if ctype == "application/json" else text
    finally:
        conn.close()


def envelope(infno: str | None, input_: Any, *, sign_no: str = "", code: str = PHARMACY, **keys: Any) -> dict:
    """A request with the usual envelope keys (``keys`` add or override; infno None leaves it out)."""
    body = {
        "infno": infno,
        "msgid": ServedCentre.next_msgid(code),
        "mdtrtarea_admvs": "130100",
        "insuplc_admdvs": "130100",
        "recer_sys_code": "MEDSETTLE",
        "dev_no": "D1",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "001",
        "opter_name": "clerk",
        "inf_time": "2026-03-02 10:00:00",
        "fixmedins_code": code,
        "fixmedins_name": "x",
        "sign_no": sign_no,
        "input": input_,
        **keys,
    }
    return body if infno is not None else {k: v for k, v in body.items() if k != "infno"}


def post(centre: ServedCentre, body: Any, path: str = "/", **headers: str) -> dict:
    """POST one request; the answer, checked to be the platform's envelope with HTTP 200."""
    status, ctype, answer = send(centre, path, body, **{"Content-Type": "application/json", **headers})
    assert status == 200 and ctype == "application/json" and set(answer) >= ENVELOPE_KEYS, (status, answer)
    return answer


def sign_in(centre: ServedCentre, code: str = PHARMACY) -> str:
    answer = post(centre, envelope("9001", {"signIn": {"opter_no": "001"}}, code=code))
    assert answer["infcode"] == 0, answer
    return answer["output"]["signinoutb"]["sign_no"]


def with_nulls(value: Any, keys: tuple[str, ...]) -> Any:
    """``value`` (an object) with ``keys`` added as null."""
    return {**value, **dict.fromkeys(keys)}


def active_card() -> Any:
    """A card in force of someone insured in 130100 (the pharmacy's region)."""
    registry = default_registry()
    population = registry.population
    return next(
        c
        for c in registry.cards.values()
        if c.status == "active" and population.describe(population.index_of(c.psn_no))["insuplc_admdvs"] == "130100"
    )


def employees(n: int, skip: int = 0) -> list[str]:
    """psn_nos of employees insured in 130100 who hold a card (each test takes its own)."""
    population = default_registry().population
    found = []
    for i in range(len(population)):
        d = population.describe(i)
        if d["insuplc_admdvs"] == "130100" and d["insutype"] == "310" and d["psn_no"] in default_registry().cards_of:
            found.append(str(d["psn_no"]))
    return found[skip : skip + n]


def sale(psn: str, *lines: tuple[int, str, str], **data: Any) -> dict:
    return {
        "data": {"psn_no": psn, **certificate_of(psn, "02"), "med_type": "41", **data},
        "feedetail": [
            {
                "feedetl_sn": str(i + 1),
                "med_list_codg": CODES[k],
                "pric": p,
                "cnt": c,
                "fee_ocur_time": "2026-03-02 09:58:00",
            }
            for i, (k, p, c) in enumerate(lines or ((0, "12.50", "2"),))
        ],
    }


def without_times(output: dict) -> dict:
    """A settlement's output without what differs between two pre-settlements of one bill: when it was, and
    the ids made of the request's msgid."""
    apart = ("setl_time", "mdtrt_id", "medins_setl_id")
    return {**output, "setlinfo": {k: v for k, v in output["setlinfo"].items() if k not in apart}}


# -- nulls are absent keys ---------------------------------------------------------------------------------


def test_a_1101_with_null_keys_answers_as_without_them(centre):
    sign_no = sign_in(centre)
    card = active_card()
    data = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}
    plain = post(centre, envelope("1101", {"data": data}, sign_no=sign_no))
    assert plain["infcode"] == 0, plain
    nulls = with_nulls(data, ("certno", "psn_cert_type", "psn_name"))
    request = with_nulls(envelope("1101", {"data": nulls}, sign_no=sign_no), ("dev_no", "infver", "serv_sign"))
    answer = post(centre, request)
    assert answer["infcode"] == 0, answer
    assert answer["output"] == plain["output"]


def test_fee_lines_and_settlement_data_with_null_optional_keys(centre):
    sign_no = sign_in(centre)
    (psn,) = employees(1)
    plain = sale(psn, (0, "12.50", "2"), (1, "3.00", "1"))
    nulls = {
        "data": with_nulls(plain["data"], ("medfee_sumamt", "card_sn", "saf_cash_amt", "deferred_voucher_no")),
        "feedetail": [
            with_nulls(line, ("det_item_fee_sumamt", "hosp_appr_flag", "medins_list_codg", "memo"))
            for line in plain["feedetail"]
        ],
    }
    first = post(centre, envelope("2101", plain, sign_no=sign_no))
    second = post(centre, envelope("2101", nulls, sign_no=sign_no))
    assert first["infcode"] == 0 and second["infcode"] == 0, (first, second)
    assert without_times(second["output"]) == without_times(first["output"])
    # A null fee_ocur_time is an absent one: the sale is dated by inf_time, as without the key.
    undated = {**plain, "feedetail": [{**line, "fee_ocur_time": None} for line in plain["feedetail"]]}
    answer = post(centre, envelope("2101", undated, sign_no=sign_no, inf_time="2026-03-02 09:58:00"))
    assert answer["infcode"] == 0 and without_times(answer["output"]) == without_times(first["output"]), answer


def test_the_same_request_with_and_without_nulls_is_the_same_request(centre):
    sign_no = sign_in(centre)
    (psn,) = employees(1, skip=1)
    plain = sale(psn, medfee_sumamt="25.00")
    request = envelope("2102", plain, sign_no=sign_no)
    settled = post(centre, request)
    assert settled["infcode"] == 0, settled
    nulls = {"data": with_nulls(plain["data"], ("card_sn", "saf_cash_amt")), "feedetail": plain["feedetail"]}
    resent = with_nulls({**request, "input": nulls, "inf_time": "2026-03-02 10:00:05"}, ("dev_no", "serv_code"))
    again = post(centre, resent)
    assert again["infcode"] == 0 and again["output"] == settled["output"], again  # the stored answer
    # The amount spelled as a number is another request: a retry resends the same bytes.
    text = json.dumps(request).replace('"medfee_sumamt": "25.00"', '"medfee_sumamt": 25.00')
    assert '"medfee_sumamt": 25.00' in text
    status, _, other = send(centre, "/", raw=text.encode())
    assert status == 200 and other["infcode"] == -1 and "field msgid" in other["err_msg"], other


def test_the_request_hash_drops_nulls_and_is_unchanged_without_them():
    body = envelope("2102", sale(first_person(), medfee_sumamt="25.00"), sign_no="S")
    nulls = {**body, "dev_no": None, "input": {**body["input"], "data": {**body["input"]["data"], "card_sn": None}}}
    hashed = Envelope.model_validate(body).request_hash()
    assert Envelope.model_validate(without_nulls(nulls)).request_hash() == hashed
    assert without_nulls(body) == body
    assert without_nulls({"a": [None, {"b": None, "c": 1}], "d": None}) == {"a": [None, {"c": 1}]}  # list items stay


def test_the_admin_api_takes_nulls_and_names_a_bad_action(centre):
    enrol = {
        **EMPLOYEE,
        "certno": certno("130100", "19910401", "321"),
        "uncovered_years": None,
        "assistance": None,
        "psn_name": "吴定",
    }
    status, ctype, answer = send(centre, "/admin", enrol, **{"Content-Type": "application/json"})
    assert status == 200 and answer["ok"] is True and answer["psn_no"], answer
    resident = {k: v for k, v in enrol.items() if not k.startswith("emp_")}
    resident.update(
        certno=certno("130100", "19920501", "322"), psn_type="1501", insutype="390", emp_no=None, emp_name=None
    )
    assert send(centre, "/admin", resident)[2]["ok"] is True
    for body, named in [
        ({"action": []}, "INVALID_INPUT: field action: expected the action's name as a string, not an array"),
        ({"action": {"x": 1}}, "field action"),
        ({"action": 3}, "field action"),
        ({"action": None, "psn_no": "1"}, "field action"),
        ({"action": "card", "card_no": None, "card_action": "lost"}, "field card_no"),
        ([1], "field request"),
    ]:
        status, ctype, answer = send(centre, "/admin", body)
        assert status == 200 and ctype == "application/json" and answer["ok"] is False, (body, status, answer)
        assert named in answer["error"], (body, answer)
    for method, raw, named in [
        ("GET", None, "field method"),
        ("POST", b"{", "not JSON"),
        ("POST", b"\xff", "not JSON"),
    ]:
        status, ctype, answer = send(centre, "/admin", raw=raw, method=method)
        assert status == 200 and ctype == "application/json" and named in answer["error"], (method, raw, answer)


# -- the transaction code in the URL ---------------------------------------------------------------------------


def test_the_transaction_code_may_end_the_url(centre):
    signed = post(centre, envelope(None, {"signIn": {"opter_no": "001"}}), path="/9001")
    assert signed["infcode"] == 0, signed
    sign_no = signed["output"]["signinoutb"]["sign_no"]
    card = active_card()
    query = {"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": card.card_no, "card_sn": card.card_sn}}
    plain = post(centre, envelope("1101", query, sign_no=sign_no))
    for infno, path in [
        (None, "/1101"),
        (None, f"{PLATFORM_PATH}/1101"),
        ("1101", "/1101"),
        ("1101", f"{PLATFORM_PATH}/1101/"),
        (None, "//1101"),
    ]:
        answer = post(centre, envelope(infno, query, sign_no=sign_no), path=path)
        assert answer["infcode"] == 0 and answer["output"] == plain["output"], (infno, path, answer)
    nulled = post(centre, {**envelope("1101", query, sign_no=sign_no), "infno": None}, path="/1101")
    assert nulled["infcode"] == 0, nulled  # a null infno is an absent one: the URL's
    other = post(centre, envelope("2101", query, sign_no=sign_no), path=f"{PLATFORM_PATH}/1101")
    assert other["infcode"] == -1 and other["err_msg"].startswith("INVALID_INPUT: field infno: "), other
    assert "/1101" in other["err_msg"] and "2101" in other["err_msg"]
    unknown = post(centre, envelope(None, query, sign_no=sign_no), path="/9999")
    assert unknown["infcode"] == -1 and "field infno" in unknown["err_msg"], unknown


# -- every refusal is the envelope, HTTP 200 -----------------------------------------------------------------


def test_every_refusal_is_the_platforms_envelope_with_status_200(centre):
    sign_no = sign_in(centre)
    good = json.dumps(envelope("1101", {"data": {"mdtrt_cert_type": "02"}}, sign_no=sign_no)).encode()
    before = centre.journal_count()
    cases: list[tuple[str, str, bytes | None, str]] = [
        ("GET", "/", None, "field method: GET /: send the request with POST"),
        ("GET", PLATFORM_PATH, None, "field method"),
        ("GET", "/1101", None, "field method"),
        ("PUT", "/", good, "field method"),
        ("DELETE", f"{PLATFORM_PATH}/1101", good, "field method"),
        ("POST", "/nope", good, "field url: POST /nope: "),
        ("POST", "/fsi/api/other", good, "field url"),
        ("POST", f"{PLATFORM_PATH}/abcd", good, "field url"),
        ("POST", f"{PLATFORM_PATH}/1101/2101", good, "field url"),
        ("POST", "/1101/x", good, "field url"),
        ("POST", "/schema", good, "field url"),
        ("GET", "/favicon.ico", None, "field url"),
        ("POST", "/", b"x" * (1024 * 1024 + 10), "over 1048576 bytes"),
        ("POST", "/1101", b"x" * (1024 * 1024 + 10), "over"),
        ("POST", "/", b"{not json", "not JSON"),
        ("POST", "/", b"", "not JSON"),
        ("POST", "/", b"\xff\xfe{", "not JSON"),
        ("POST", "/", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("POST", "/", b'{"infno":"2102","msgid":"\\ud800"}', "surrogate"),
        ("POST", "/", b"[]", "field request: expected a JSON object"),
        ("POST", "/", b'[{"infno": "1101"}]', "field request"),
        ("POST", "/", b'"1101"', "field request"),
        ("POST", "/", b"1101", "field request"),
        ("POST", "/", b"null", "field request"),
        ("POST", "/1101", b"null", "field request"),
        (
            "POST",
            "/",
            b'{"infno": "1101", "msgid": "M", "fixmedins_code": "P13010000001", "input": null}',
            "field input",
        ),
    ]
    for method, path, raw, named in cases:
        for headers in ({"Content-Type": "application/json"}, {}):
            status, ctype, answer = send(centre, path, raw=raw, method=method, **headers)
            assert status == 200 and ctype == "application/json", (method, path, status, answer)
            assert set(answer) >= ENVELOPE_KEYS and answer["infcode"] == -1 and answer["output"] == {}, answer
            assert answer["err_msg"].startswith("INVALID_INPUT: ") and named in answer["err_msg"], (path, answer)
    assert centre.journal_count() == before
    status, ctype, schema = send(centre, "/schema", method="GET")
    assert status == 200 and ctype == "application/json" and "envelope" in schema and "inputs" in schema


def test_text_plain_or_no_content_type_is_json(centre):
    for headers in ({"Content-Type": "text/plain"}, {"Content-Type": "text/plain; charset=utf-8"}, {}):
        status, ctype, answer = send(centre, "/", envelope("9001", {"signIn": {"opter_no": "001"}}), **headers)
        assert status == 200 and answer["infcode"] == 0 and answer["output"]["signinoutb"]["sign_no"], answer


def test_an_internal_error_is_answered_in_the_envelope_with_status_200(tmp_path):
    """A bug in the centre (here: submit raising) is INTERNAL_ERROR in the envelope, HTTP 200, and logged."""
    policy = load_default_policy()
    journal = SQLiteJournal(tmp_path / "centre.db")
    real = Centre(
        Settler(policy, Population.generate(policy, 50, seed=0), engine="core"), journal, default_institutions(policy)
    )

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    real.submit = broken
    gateway, secrets = open_gateway(journal.gate, real.institutions)
    institutions = {c: InstitutionCredential(c, s.paasid, s.passtoken) for c, s in secrets.items() if c != AGENCY_ROW}
    credentials.write(tmp_path / credentials.FILE_NAME, credentials.Credentials(institutions, "-"))
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(real, gateway=gateway))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        served = ServedCentre(tmp_path)
        served.url = f"http://127.0.0.1:{port}/"
        for path in ("/", f"{PLATFORM_PATH}/9001"):
            status, ctype, answer = send(served, path, envelope("9001", {"signIn": {"opter_no": "001"}}))
            assert status == 200 and ctype == "application/json", (status, answer)
            assert answer["infcode"] == -1 and answer["err_msg"] == "INTERNAL_ERROR: a bug", answer
        # The counter takes it as it took an HTTP 500: not a refusal, a message to send again.
        with pytest.raises(CentreUnreachable, match="INTERNAL_ERROR: a bug"):
            CentreClient(served.url, credential=institutions[PHARMACY]).post(
                json.dumps(envelope("9001", {"signIn": {"opter_no": "001"}})).encode()
            )
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        journal.close()


# -- the adapters' input habits --------------------------------------------------------------------------------


def test_infver_msgid_lengths_and_the_sign_no_of_a_9001(centre):
    for infver in ("V1.0", "1", "1.0.0", ""):
        assert post(centre, envelope("9001", {"signIn": {"opter_no": "001"}}, infver=infver))["infcode"] == 0
    for sign_no in ("", "20260101000000000010000001", "stale"):  # a 9001 reads no sign_no
        signed = post(centre, envelope("9001", {"signIn": {"opter_no": "001"}}, sign_no=sign_no))
        assert signed["infcode"] == 0, (sign_no, signed)
    sign_no = signed["output"]["signinoutb"]["sign_no"]
    (psn,) = employees(1, skip=2)
    for msgid in (f"{PHARMACY}202603021000001", f"{PHARMACY}2026030210000012345", "M1"):  # 27, 31 and 2 characters
        answer = post(centre, envelope("2101", sale(psn), sign_no=sign_no, msgid=msgid, infver="1.0.0"))
        assert answer["infcode"] == 0, (msgid, answer)


def test_iso_times_with_a_t_are_read_as_times_with_a_space(centre):
    sign_no = sign_in(centre)
    (psn,) = employees(1, skip=3)
    spaced = post(centre, envelope("2101", sale(psn), sign_no=sign_no))
    iso = sale(psn)
    iso["feedetail"][0]["fee_ocur_time"] = "2026-03-02T09:58:00"
    answer = post(centre, envelope("2101", iso, sign_no=sign_no))
    assert answer["infcode"] == 0 and without_times(answer["output"]) == without_times(spaced["output"]), answer
    del iso["feedetail"][0]["fee_ocur_time"]  # dated by inf_time
    answer = post(centre, envelope("2101", iso, sign_no=sign_no, inf_time="2026-03-02T09:58:00"))
    assert answer["infcode"] == 0 and without_times(answer["output"]) == without_times(spaced["output"]), answer


def test_an_outpatient_visit_and_a_stay_with_iso_times_nulls_and_string_flags(centre):
    sign_no = sign_in(centre, HOSPITAL)
    (psn,) = employees(1, skip=4)

    def call(infno: str, input_: Any, **keys: Any) -> dict:
        answer = post(centre, envelope(infno, input_, sign_no=sign_no, code=HOSPITAL, **keys))
        assert answer["infcode"] == 0, (infno, answer)
        return answer

    def fee(mdtrt_id: str, sn: str, when: str, med_type: str) -> dict:
        line = {"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": psn, "med_type": med_type, "fee_ocur_time": when}
        line.update(med_list_codg=CODES[0], pric="30.00", cnt="1", hosp_appr_flag="1")
        return with_nulls(line, ("det_item_fee_sumamt", "medins_list_codg", "memo", "bilg_dr_codg"))

    cert = {**certificate_of(psn, "02"), "card_sn": None}  # a Newtonsoft null: the same as no card_sn
    reg = call("2201", {"data": {"psn_no": psn, "insutype": "310", "begntime": "2026-03-02T09:30:00", **cert}})
    visit = reg["output"]["data"]["mdtrt_id"]
    call("2203", {"mdtrtinfo": {"mdtrt_id": visit, "psn_no": psn, "med_type": "11", "begntime": "2026-03-02T09:30:00"}})
    up = call("2204", {"feedetail": [fee(visit, "1", "2026-03-02T09:40:00", "11")]})
    assert up["output"]["result"][0]["det_item_fee_sumamt"] == 30.0
    settle = {"psn_no": psn, "mdtrt_id": visit, "med_type": "11", "medfee_sumamt": "30.00", "acct_used_flag": "0"}
    settle |= cert
    settled = call("2207", {"data": with_nulls(settle, ("chrg_bchno", "deferred_voucher_no", "insutype"))})
    assert settled["output"]["setlinfo"]["medfee_sumamt"] == 30.0 and settled["output"]["setlinfo"]["acct_pay"] == 0
    admit = call("2401", {"mdtrtinfo": {"psn_no": psn, "begntime": "2026-03-03T08:00:00", **cert}, "diseinfo": []})
    stay = admit["output"]["data"]["mdtrt_id"]
    call("2301", {"feedetail": [fee(stay, "1", "2026-03-03T10:00:00", "21")]})
    mid = {"psn_no": psn, "mdtrt_id": stay, "mid_setl_flag": "1", **cert}
    call("2304", {"data": mid}, inf_time="2026-03-04T10:00:00")
    call("2301", {"feedetail": [fee(stay, "2", "2026-03-04T11:00:00", "21")]})
    call("2402", {"dscginfo": {"mdtrt_id": stay, "psn_no": psn, "endtime": "2026-03-05T10:00:00"}})
    final = call("2304", {"data": {**mid, "mid_setl_flag": 0, "medfee_sumamt": 30}})
    assert final["output"]["setlinfo"]["medfee_sumamt"] == 30.0


def test_keys_in_any_order_and_any_indentation_are_the_same_request(centre):
    sign_no = sign_in(centre)
    (psn,) = employees(1, skip=5)
    request = envelope("2102", sale(psn, medfee_sumamt="25.00"), sign_no=sign_no)
    settled = post(centre, request)
    assert settled["infcode"] == 0, settled
    reordered = {k: request[k] for k in reversed(request)}
    for raw in (
        json.dumps(request, sort_keys=True, indent=4).encode(),
        json.dumps(reordered, indent="\t", separators=(" ,", " : ")).encode(),
        json.dumps(request, ensure_ascii=False).replace(", ", ",\r\n  ").encode(),
    ):
        status, _, again = send(centre, "/", raw=raw, **{"Content-Type": "text/plain"})
        assert status == 200 and again["infcode"] == 0 and again["output"] == settled["output"], again


def test_amounts_and_flags_as_numeric_strings_or_numbers(centre):
    sign_no = sign_in(centre)
    (psn,) = employees(1, skip=6)
    as_text = post(centre, envelope("2101", sale(psn, (0, "12.50", "2"), acct_used_flag="1"), sign_no=sign_no))
    text = json.dumps(envelope("2101", sale(psn, acct_used_flag="1", medfee_sumamt="25.00"), sign_no=sign_no))
    for key, value in [("medfee_sumamt", "25.00"), ("pric", "12.50"), ("cnt", "2"), ("acct_used_flag", "1")]:
        assert f'"{key}": "{value}"' in text
        text = text.replace(f'"{key}": "{value}"', f'"{key}": {value}')  # JSON numbers
    status, _, answer = send(centre, "/", raw=text.encode())
    assert status == 200 and answer["infcode"] == 0, answer
    assert without_times(answer["output"]) == without_times(as_text["output"]), answer
    catalogue = post(centre, envelope("1312", {"data": {"page_num": "1", "page_size": "2"}}, sign_no=sign_no))
    assert catalogue["infcode"] == 0, catalogue
    day = dt.datetime.now(SHANGHAI).date().isoformat()
    statement = {
        "insutype": "310",
        "clr_type": "41",
        "setl_optins": "130100",
        "stmt_begndate": day,
        "stmt_enddate": day,
        "medfee_sumamt": "0.00",
        "fund_pay_sumamt": "0",
        "acct_pay": 0,
        "fixmedins_setl_cnt": "0",
    }
    assert post(centre, envelope("3201", {"data": statement}, sign_no=sign_no))["infcode"] == 0
