"""medsettle.jsontext: exact Decimal amounts, and the same canonical text as the simplejson it replaced.

Request hashes journaled by earlier versions were sha256 of simplejson's canonical text; a resent
request after an upgrade must still be recognised as "the same request" (docs/messages.md).
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st

from medsettle.jsontext import dumps, dumps_bytes

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text()
    | st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12), max_value=10**12)
)
documents = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_canonical_text_is_simplejsons(document):
    expected = simplejson.dumps(document, use_decimal=True, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert dumps(document, sort_keys=True) == expected


def test_decimals_are_written_exactly():
    text = dumps({"pric": Decimal("12.50"), "cnt": Decimal("0.0001"), "big": Decimal("99999999.99")})
    assert text == '{"pric":12.50,"cnt":0.0001,"big":99999999.99}'
    assert json.loads(text, parse_float=Decimal)["pric"] == Decimal("12.50")


def test_non_numbers_are_refused():
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"a": Decimal("NaN")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps_bytes({"a": {1, 2}})
