"""Random malformed messages never change the centre's journal or state (docs/messages.md 'Bad input')."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre_rig import id_certificate
from medsettle.centre.institutions import default_institutions
from medsettle.centre.service import Centre
from medsettle.engine import Population, Settler
from medsettle.engine.columns import REFUSALS
from medsettle.ledger import SQLiteJournal
from medsettle.policy import load_default_policy

POLICY = load_default_policy()
PHARMACY = "P13010000001"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just("-1.00"),
    st.just("1e309"),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)

# The refusals of centre/certificates.py and the card checks: stored answers, as the rules' are.
CERTIFICATE_REFUSALS = ("CARD_UNKNOWN", "CARD_LOST", "CARD_CANCELLED", "QR_UNKNOWN", "CERT_REQUIRED", "CERT_MISMATCH")


@pytest.fixture(scope="module")
def signed_in_centre(tmp_path_factory):
    """An in-process Centre (core engine, 200 persons) on a SQLite journal, its pharmacy's sign_no kept on it."""
    journal = SQLiteJournal(tmp_path_factory.mktemp("fuzz") / "centre.db")
    population = Population.generate(POLICY, 200, seed=0)
    c = Centre(Settler(POLICY, population, engine="core"), journal, default_institutions(POLICY))
    answer = c.handle(
        {"infno": "9001", "msgid": "M-signin", "fixmedins_code": PHARMACY, "input": {"signIn": {"opter_no": "1"}}}
    )
    c.sign_no = answer["output"]["signinoutb"]["sign_no"]
    yield c
    journal.close()


def good_sale(c):
    psn = c.settler.population.psn_nos[1]
    code = POLICY.regions[0].catalogues[0].items[0].med_list_codg
    return {
        "data": {"psn_no": psn, **id_certificate(psn, 200), "med_type": "41"},
        "feedetail": [{"feedetl_sn": "1", "med_list_codg": code, "pric": "1.00", "cnt": "1"}],
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_messages_change_nothing(signed_in_centre, data):
    before_count = signed_in_centre.journal.count()
    before_state = signed_in_centre.settler.engine.state.copy()
    kind = data.draw(st.sampled_from(["garbage", "envelope", "input", "line"]))
    if kind == "garbage":
        request = data.draw(json_values)
    else:
        request = {
            "infno": "2102",
            "msgid": f"F{data.draw(st.integers(0, 10**9))}",
            "fixmedins_code": PHARMACY,
            "sign_no": signed_in_centre.sign_no,
            "input": good_sale(signed_in_centre),
        }
        if kind == "envelope":
            key = data.draw(st.sampled_from(["infno", "msgid", "fixmedins_code", "sign_no", "input"]))
            request[key] = data.draw(st.one_of(scalars, st.just("9999")))
        elif kind == "input":
            key = data.draw(st.sampled_from(["psn_no", "med_type", "medfee_sumamt", "acct_used_flag"]))
            request["input"]["data"][key] = data.draw(st.one_of(scalars, st.just("NOBODY"), st.just("11")))
        else:
            key = data.draw(st.sampled_from(["med_list_codg", "pric", "cnt", "det_item_fee_sumamt", "hosp_appr_flag"]))
            request["input"]["feedetail"][0][key] = data.draw(scalars)
    answer = signed_in_centre.handle(request)
    if answer["infcode"] == 0:
        # A mutation that happened to be valid (say, another acct_used_flag): a real settlement, journaled,
        # or the stored answer of an earlier identical request (a msgid drawn twice): nothing new.
        grew = signed_in_centre.journal.count() - before_count
        assert grew in (0, 1)
        assert grew == 1 or (signed_in_centre.settler.engine.state == before_state).all()
        return
    assert answer["err_msg"]
    # a rule's refusal is a stored answer, and so is a certificate's (another person's psn_no, say)
    refused = answer["err_msg"].split(":")[0] in (*REFUSALS.values(), *CERTIFICATE_REFUSALS)
    assert signed_in_centre.journal.count() == before_count + (1 if refused else 0)
    assert (signed_in_centre.settler.engine.state == before_state).all()
