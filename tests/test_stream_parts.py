"""The parts of ``medsettle settle`` (engine/billsfile.py, streamkeys.py, stream.py) refuse misuse with an error
that says what to do, rather than failing later on a None."""

from __future__ import annotations

import io

import pytest

from medsettle.engine import Population, Settler
from medsettle.engine.billsfile import BillsFile
from medsettle.engine.stream import BillStream
from medsettle.engine.streamkeys import NoAdmissionKeys, StreamAdmissionKeys
from medsettle.policy import load_default_policy


def test_standard_input_must_be_given():
    with pytest.raises(TypeError, match="stdin"):
        BillsFile("-")
    with BillsFile("-", stdin=io.BytesIO(b'{"a": 1}\n\n')) as bills:
        assert list(bills.lines()) == [(1, b'{"a": 1}\n')]


def test_a_stream_keys_admissions_without_binding_them():
    keys = StreamAdmissionKeys()
    assert [keys.key("A"), keys.key("B"), keys.key("A")] == [0, 1, 0]
    keys.keep_only({1})
    assert keys.key("A") == 2 and len(keys) == 2  # a forgotten mdtrt_id takes a new key, never an old one
    with pytest.raises(TypeError, match="no known key"):
        keys.bind("C", 7)
    assert NoAdmissionKeys().key("ADM-1") == len("ADM-1")  # the first pass's keys: any int, none kept


def test_settling_comes_after_checking(engine):
    policy = load_default_policy()
    settler = Settler(policy, Population.generate(policy, 3, seed=1), engine=engine)
    stream = BillStream(settler)
    with pytest.raises(RuntimeError, match="after check"):
        stream.settle(io.BytesIO())
