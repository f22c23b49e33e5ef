"""No request body stops the centre (issue 15, docs/messages.md 'Bodies the centre refuses'): JSON nested
past 64 levels, text that is not UTF-8 (a lone surrogate's bytes), an infno that is a list or an object, a
body that is not an object, absurd numbers (1e30, NaN, Infinity, -0, 1e999999999) are each answered in the
platform's envelope (infcode -1, err_msg naming the problem; the admin API: ok false and the error), never a
5xx or INTERNAL_ERROR, and journal nothing. Over HTTP against a served centre, on POST / and POST /admin,
then a hypothesis test of malformed bodies of every kind.

The rig's ``post`` decodes the answer whatever the status; a 5xx of aiohttp's is not JSON (the decode fails
the test), and the one status other than 200 that answers in the envelope, 503, says CENTRE_BUSY, which
:func:`refused` rules out.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
import types
import typing
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from centre_rig import CODES, PHARMACY, ServedCentre, certificate_of, envelope, first_person
from medsettle.centre.admin import ADMIN_REQUESTS
from medsettle.centre.messages import INPUTS, Envelope
from medsettle.jsontext import _depth, loads_request


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCentre]:
    """One served centre for the module (each test checks the journal does not move), signed in."""
    with ServedCentre(tmp_path_factory.mktemp("bodies") / "centre") as centre:
        centre.sign_no = centre.sign_in()  # type: ignore[attr-defined]
        yield centre


def refused(answer: Any, *words: str) -> dict:
    """The platform's envelope refusing a request (not a bug's INTERNAL_ERROR, not the busy 503)."""
    assert isinstance(answer, dict) and answer.get("infcode") == -1, answer
    assert isinstance(answer.get("err_msg"), str) and answer["output"] == {}, answer
    assert not answer["err_msg"].startswith(("INTERNAL_ERROR", "CENTRE_BUSY")), answer
    for word in words:
        assert word in answer["err_msg"], (word, answer)
    return answer


def admin_refused(answer: Any, *words: str) -> dict:
    assert isinstance(answer, dict) and answer.get("ok") is False and isinstance(answer.get("error"), str), answer
    assert not answer["error"].startswith("INTERNAL_ERROR"), answer
    for word in words:
        assert word in answer["error"], (word, answer)
    return answer


def post(server: ServedCentre, raw: bytes, path: str = "") -> Any:
    """POST raw bytes, signed as the pharmacy (the rig need not read a body it is not meant to)."""
    if path == "admin":
        return server.post(None, raw=raw, path="admin")
    return server.post(None, raw=raw, path=path, sign_as=PHARMACY)


def a_1101(server: ServedCentre, **envelope_keys: Any) -> dict:
    psn = first_person()
    body = envelope(
        "1101",
        {"data": certificate_of(psn, "02")},
        sign_no=server.sign_no,  # type: ignore[attr-defined]
        msgid=server.next_msgid(),
    )
    return {**body, **envelope_keys}


def balance_of(server: ServedCentre, psn: str) -> str:
    answer, _ = server.call("1101", {"data": certificate_of(psn, "02")}, sign_no=server.sign_no)  # type: ignore[attr-defined]
    assert answer["infcode"] == 0, answer
    return answer["output"]["insuinfo"][0]["balc"]


# -- each attack ----------------------------------------------------------------------------------


def test_nesting_past_64_levels_is_refused_naming_the_bound_on_both_endpoints(server):
    before = server.journal_count()
    deep_array = b"[" * 1000 + b"]" * 1000
    deep_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    inside = json.dumps(a_1101(server, extra="HOLE")).encode().replace(b'"HOLE"', deep_array)
    just_past = b"[" * 65 + b"]" * 65
    for raw in (deep_array, deep_object, inside, just_past, b"[" * 200_000):
        refused(post(server, raw), "nested too deeply", "64 levels")
        admin_refused(post(server, raw, "admin"), "nested too deeply", "64 levels")
    # 64 levels are read: the request is answered for what it is, not for its depth.
    at_the_bound = json.dumps(a_1101(server, extra="HOLE")).encode().replace(b'"HOLE"', b"[" * 63 + b"]" * 63)
    answer = post(server, at_the_bound)
    assert answer["infcode"] == 0, answer
    assert server.journal_count() == before


def test_text_that_is_not_utf8_is_refused_on_both_endpoints(server):
    before = server.journal_count()
    template = json.dumps(a_1101(server, msgid="MSGID")).encode()
    lone_surrogate = template.replace(b'"MSGID"', b'"M\xed\xa0\x80"')  # U+D800 written as UTF-8 bytes
    refused(post(server, lone_surrogate), "not UTF-8 text", "surrogate")
    refused(post(server, template.replace(b'"MSGID"', b'"M\xff"')), "not UTF-8 text")
    refused(post(server, template.replace(b'"MSGID"', b'"M\\ud800"')), "surrogate")  # the escape
    credit = b'{"action":"credit","psn_no":"P\xed\xa0\x80","amount":"1.00","key":"2026-01"}'
    admin_refused(post(server, credit, "admin"), "not UTF-8 text", "surrogate")
    assert server.journal_count() == before


def test_an_infno_that_is_a_list_or_an_object_is_named(server):
    before = server.journal_count()
    for infno in (["1101"], {"code": "1101"}, 1101, True):
        body = json.dumps(a_1101(server, infno=infno)).encode()
        refused(post(server, body), "field infno")
        refused(post(server, body, "1101"), "field infno")  # and with the URL's code
    assert server.journal_count() == before


def test_a_body_that_is_not_an_object_is_refused_on_both_endpoints(server):
    before = server.journal_count()
    for raw in (b'"1101"', b"[1, 2]", b"[]", b"12", b"-0", b"1e999999999", b"true", b"null", b"", b"   "):
        answer = post(server, raw)
        refused(answer)
        # "expected a JSON object" (or, signed, the gateway's: it names no fixmedins_code), "not JSON", the number
        assert any(word in answer["err_msg"] for word in ("field request", "fixmedins_code", "not JSON", "number"))
        admin_refused(post(server, raw, "admin"))
    assert server.journal_count() == before


ABSURD = ["1e30", "1E+30", "NaN", "Infinity", "-Infinity", "-0", "1e999999999", "-1e999999999", "1e-999999999"]


def test_absurd_admin_credits_are_refused_naming_the_amount_and_change_nothing(server):
    psn = first_person()
    before, balance = server.journal_count(), balance_of(server, psn)
    for text in [*ABSURD, "92233720368546451.17", "100000.01", "-5.00", "0.001", "9" * 99, "9" * 101]:
        for amount in (text, f'"{text}"'):  # as a JSON number and as text (the admin API takes text)
            raw = f'{{"action":"credit","psn_no":"{psn}","amount":{amount},"key":"2026-01"}}'.encode()
            answer = admin_refused(post(server, raw, "admin"))
            assert "amount" in answer["error"] or "number" in answer["error"], answer
    answer = admin_refused(
        server.admin({"action": "credit", "psn_no": psn, "amount": "92233720368546451.17", "key": "2026-01"})
    )
    assert "field amount" in answer["error"] and "at most 100000.00" in answer["error"], answer
    assert server.journal_count() == before and balance_of(server, psn) == balance


def test_absurd_amounts_in_the_envelope_are_refused_naming_the_field(server):
    psn = first_person()
    before, balance = server.journal_count(), balance_of(server, psn)
    sale = {
        "data": {"psn_no": psn, "med_type": "41", **certificate_of(psn, "02"), "medfee_sumamt": "AMOUNT"},
        "feedetail": [{"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "PRIC", "cnt": "1"}],
    }
    for text in [*ABSURD, "1e39", "92233720368546451.17"]:
        for where in ("AMOUNT", "PRIC"):
            for literal in (text, f'"{text}"'):
                body = envelope("2102", sale, sign_no=server.sign_no, msgid=server.next_msgid())
                raw = json.dumps(body).replace(f'"{where}"', literal).replace('"AMOUNT"', '"1.00"')
                raw = raw.replace('"PRIC"', '"1.00"')
                answer = refused(post(server, raw.encode()))
                named = "medfee_sumamt" if where == "AMOUNT" or text == "-0" else "pric"  # -0 is a price of 0
                assert named in answer["err_msg"] or "the body" in answer["err_msg"], answer
    statement = {
        "data": {
            "insutype": "310",
            "clr_type": "41",
            "setl_optins": "130100",
            "stmt_begndate": "2026-03-01",
            "stmt_enddate": "2026-03-31",
            "medfee_sumamt": "1e30",
            "fund_pay_sumamt": "0",
            "acct_pay": "0",
            "fixmedins_setl_cnt": 0,
        }
    }
    refused(server.call("3201", statement, sign_no=server.sign_no)[0], "field input.data.medfee_sumamt")
    download = {"data": {"admdvs": "130100", "page_num": 10**30}}
    refused(server.call("1312", download, sign_no=server.sign_no)[0], "field input.data.page_num")
    assert server.journal_count() == before and balance_of(server, psn) == balance


# -- the fuzz -------------------------------------------------------------------------------------


def _optional_removed(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _kind(annotation: Any) -> str:
    a = _optional_removed(annotation)
    origin = typing.get_origin(a)
    if isinstance(a, type) and issubclass(a, BaseModel):
        return "object"
    if origin in (list, dict) or origin is Literal:
        return {list: "array", dict: "dict"}.get(origin, "literal")  # type: ignore[arg-type]
    if isinstance(a, types.UnionType) or origin is typing.Union:
        return "scalar"  # str | int
    return {str: "str", int: "int", Decimal: "number", bool: "flag", dt.date: "date"}.get(a, "any")


def model_fields(model: type[BaseModel], prefix: tuple = ()) -> list[tuple[tuple, str]]:
    """Every field of ``model`` by its path in a request (a list's items as index 0), with its kind."""
    out = []
    for name, field in model.model_fields.items():
        path, kind = (*prefix, field.alias or name), _kind(field.annotation)
        if kind == "any":  # takes any JSON value: nothing is the wrong type there
            continue
        out.append((path, kind))
        inner = _optional_removed(field.annotation)
        if kind == "object":
            out.extend(model_fields(inner, path))
        elif kind == "array":
            item = typing.get_args(inner)[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                out.extend(model_fields(item, (*path, 0)))
    return out


# Values of a JSON type the field does not take (pydantic's lax mode takes "1" for an int, 1 for a Decimal).
WRONG: dict[str, list[Any]] = {
    "str": [12, 1.5, True, [], ["x"], {}, {"a": "b"}],
    "int": ["x", "1.5", 1.5, True, [], [1], {}, {"a": 1}],
    "number": ["abc", True, False, [], [1], {}, {"a": 1}, ""],
    "flag": ["x", 7, 2, [], {}, 0.5],
    "literal": [12345, 1.5, [], {}, True, "zz"],
    "date": ["x", 20260301, True, [], {}, "2026-13-45"],
    "array": ["x", 1, True, {}, {"a": 1}],
    "object": ["x", 1, True, [], [1, 2]],
    "dict": ["x", 1, True, []],
    "scalar": [[], [1], {}, {"a": 1}, 1.5],
}


def samples() -> dict[str, dict]:
    """A plausible input of every transaction the centre takes (most would be answered as they are)."""
    psn = first_person()
    cert = certificate_of(psn, "02")
    line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "1.00", "cnt": "1"}
    sale = {"data": {"psn_no": psn, "med_type": "41", **cert}, "feedetail": [line]}
    cancel = {"data": {"setl_id": "S1", "psn_no": psn}}
    upload = {"feedetail": [{**line, "mdtrt_id": "M1", "psn_no": psn}]}
    fee_cancel = {"data": {"feedetl_sn": "1", "mdtrt_id": "M1", "psn_no": psn}}
    settle = {"data": {"psn_no": psn, "mdtrt_id": "M1", "med_type": "11", **cert}}
    stay_settle = {"data": {**settle["data"], "med_type": "21", "mid_setl_flag": "0"}}
    stay = {"data": {"mdtrt_id": "M1", "psn_no": psn}}
    period = {"stmt_begndate": "2026-03-01", "stmt_enddate": "2026-03-31"}
    totals = {"medfee_sumamt": "0.00", "fund_pay_sumamt": "0.00", "acct_pay": "0.00", "fixmedins_setl_cnt": 0}
    catalogue = {"data": {"ver": ""}}
    out = {
        "9001": {"signIn": {"opter_no": "001"}},
        "9002": {"signOut": {"sign_no": "x", "opter_no": "001"}},
        "2101": sale,
        "2102": sale,
        "2103": cancel,
        "2208": cancel,
        "2305": cancel,
        "2201": {"data": {"psn_no": psn, "begntime": "2026-03-02 10:00:00", **cert}},
        "2202": stay,
        "2203": {"mdtrtinfo": {"mdtrt_id": "M1", "psn_no": psn, "med_type": "11"}, "diseinfo": []},
        "2204": upload,
        "2301": upload,
        "2205": fee_cancel,
        "2302": fee_cancel,
        "2206": settle,
        "2207": settle,
        "2303": stay_settle,
        "2304": stay_settle,
        "5206": {"data": {"psn_no": psn, "cum_ym": "202603"}},
        "2601": {"data": {"psn_no": psn, "omsgid": "X1", "oinfno": "2102"}},
        "3201": {"data": {"insutype": "310", "clr_type": "41", "setl_optins": "130100", **period, **totals}},
        "3202": {"data": period, "detail": []},
        "2401": {"mdtrtinfo": {"psn_no": psn, "begntime": "2026-03-02 10:00:00", "med_type": "21", **cert}},
        "2402": {"dscginfo": {"mdtrt_id": "M1", "psn_no": psn, "endtime": "2026-03-05 10:00:00"}},
        "2404": stay,
        "2405": stay,
        "1312": {"data": {"admdvs": "130100"}},
        "9901": {"data": {"admdvs": "130100"}},
        "1101": {"data": cert},
        "9101": {"fsUploadIn": {"in": "aGVsbG8=", "filename": "a.txt"}},
        "9102": {"fsDownloadIn": {"file_qury_no": "F1"}},
        "1901": {"data": {"type": "gend"}},
        **{code: catalogue for code in ("1301", "1302", "1305", "1306", "1318", "1319")},
    }
    assert set(out) == set(INPUTS), set(out) ^ set(INPUTS)
    return out


ADMIN_SAMPLES: dict[str, dict] = {
    "credit": {"psn_no": "P", "amount": "1.00", "key": "2026-01"},
    "contribute": {"psn_no": "P", "month": "2026-01", "base": "8000.00"},
}

# Field paths by infno ("" for the envelope's own keys, "admin:<action>" for the admin API's).
TARGETS = [
    *((infno, ("input", *path), kind) for infno, model in INPUTS.items() for path, kind in model_fields(model)),
    *(("", path, kind) for path, kind in model_fields(Envelope) if path != ("input",)),
    *(
        (f"admin:{action}", path, kind)
        for action, model in ADMIN_REQUESTS.items()
        for path, kind in model_fields(model)
    ),
]
AMOUNT_FIELDS = [t for t in TARGETS if t[2] == "number"]  # every Decimal of the inputs: amounts, prices, counts
# Out of every amount's bounds: past 10^11 fen (10^15 for a statement's totals), below 0 but for a
# statement's (a net total may be negative), more decimals than the field has, or absurd.
PAST_EVERY_BOUND = st.one_of(
    st.integers(10**14, 10**39),
    st.integers(-(10**39), -(10**14)),
    st.sampled_from(["1e30", "1e39", "1E+39", "1e999999999", "-1e999999999", "92233720368546451.17", "1e-999999"]),
)
NEGATIVE = st.one_of(st.integers(-(10**13), -1), st.decimals(-(10**9), Decimal("-0.01"), places=2).map(str))


def _put(doc: Any, path: tuple, value: Any) -> None:
    """Set ``path`` in a request, making the objects and lists on the way if missing."""
    for key, after in zip(path[:-1], path[1:], strict=True):
        if isinstance(key, int):
            while len(doc) <= key:
                doc.append({})
        elif not isinstance(doc.get(key), dict | list):
            doc[key] = [] if isinstance(after, int) else {}
        doc = doc[key]
    if isinstance(path[-1], int):
        while len(doc) <= path[-1]:
            doc.append({})
    doc[path[-1]] = value


@st.composite
def malformed(draw: st.DrawFn, server: ServedCentre, inputs: dict[str, dict]) -> tuple[str, bytes]:
    """(endpoint, body): random bytes, a valid request cut short, nesting past the bound, a field of the wrong
    JSON type in any transaction's model (or the envelope's, or the admin API's), an amount out of bounds."""
    how = draw(st.sampled_from(["bytes", "truncated", "nested", "wrong type", "amount"]))
    infno = draw(st.sampled_from(sorted(inputs)))
    request = envelope(infno, copy.deepcopy(inputs[infno]), sign_no=server.sign_no, msgid=server.next_msgid())
    psn = first_person()
    admin_action = draw(st.sampled_from(sorted(ADMIN_REQUESTS)))
    admin_body = {
        "action": admin_action,
        **{k: (psn if v == "P" else v) for k, v in ADMIN_SAMPLES.get(admin_action, {}).items()},
    }
    to_admin = draw(st.booleans())
    if how == "bytes":
        return ("admin" if to_admin else "", draw(st.binary(max_size=400)))
    if how == "truncated":
        text = json.dumps(admin_body if to_admin else request).encode()
        return ("admin" if to_admin else "", text[: draw(st.integers(0, 10**6)) % len(text)])
    if how == "nested":
        depth = draw(st.integers(65, 5000))
        opening, closing = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        nest = opening * depth + b"1" + closing * depth
        text = json.dumps({**(admin_body if to_admin else request), "zz": "HOLE"}).encode()
        return ("admin" if to_admin else "", text.replace(b'"HOLE"', nest))
    if how == "wrong type":
        targets = [t for t in TARGETS if t[0] in (infno, "", f"admin:{admin_action}")]
        where, path, kind = draw(st.sampled_from(targets))
        value = draw(st.sampled_from(WRONG[kind]))
        if where.startswith("admin:"):
            _put(admin_body, path, value)
            return ("admin", json.dumps(admin_body).encode())
        _put(request, path, value)
        return ("", json.dumps(request).encode())
    where, path, _ = draw(st.sampled_from(AMOUNT_FIELDS))
    request = envelope(where, copy.deepcopy(inputs[where]), sign_no=server.sign_no, msgid=server.next_msgid())
    statement = where in ("3201", "3202")
    value = draw(PAST_EVERY_BOUND if statement else st.one_of(PAST_EVERY_BOUND, NEGATIVE))
    _put(request, path, "AMOUNT")
    literal = str(value) if draw(st.booleans()) or isinstance(value, int) else json.dumps(str(value))
    return ("", json.dumps(request).encode().replace(b'"AMOUNT"', literal.encode()))


def test_malformed_bodies_are_answered_in_the_envelope_and_journal_nothing(server):
    inputs = samples()
    start = server.journal_count()

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def each(data: st.DataObject) -> None:
        path, raw = data.draw(malformed(server, inputs))
        sent.append(path)
        answer = post(server, raw, path)
        if path == "admin":
            admin_refused(answer)
        else:
            refused(answer)
        assert server.journal_count() == start

    sent: list[str] = []
    each()
    assert len(sent) >= 400 and "admin" in sent, len(sent)  # the examples ran, to both endpoints
    logged = "".join(server.output)
    assert "request failed" not in logged and "Traceback" not in logged, logged[-3000:]  # no bug was reached


def test_every_transaction_and_field_is_fuzzed():
    """The targets cover every input model (a transaction added later is fuzzed without editing this)."""
    assert {t[0] for t in TARGETS} >= {*INPUTS, ""}
    assert len(TARGETS) > 250 and len(AMOUNT_FIELDS) >= 20


def _nesting(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_nesting, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_nesting, value), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\\\ab\u00e9\u4e2d', max_size=8)
json_documents = st.recursive(
    st.none() | st.integers() | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(json_documents, st.booleans())
def test_the_depth_counted_on_the_text_is_the_documents(document, ascii_only):
    """jsontext counts nesting on the text (brackets outside strings, escapes paired up): it is exact."""
    assert _depth(json.dumps(document, ensure_ascii=ascii_only)) == _nesting(document)


def test_the_depth_of_a_body_of_escaped_quotes_is_counted_in_linear_time():
    body = b"[" * 70 + b'"' + b'\\"' * 500_000  # an open string of escaped quotes: no quadratic rescan
    started = time.perf_counter()  # ok-float: a time
    with pytest.raises(Exception, match="not JSON|nested"):
        loads_request(body)
    assert time.perf_counter() - started < 2
