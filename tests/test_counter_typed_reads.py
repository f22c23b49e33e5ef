"""The counter's typed reads and the small seams made explicit for the type checker (issue 13): a row a flow
needs that is not in the store is one named error, not a TypeError on None; what users see is unchanged."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from medsettle.cli._terminal_common import _errors, _Session
from medsettle.hardware.vpcd import Faults
from medsettle.terminal import CentreClient, Counter, CounterError, CounterStore, SaleState
from medsettle.terminal.store import MissingRow


def test_a_missing_row_is_one_named_error(tmp_path):
    store = CounterStore(tmp_path / "t.db")
    for read, key in ((store.require_sale, "SALE9"), (store.require_message, "M9"), (store.require_voucher, "V9")):
        with pytest.raises(MissingRow, match=f"{key} is not in the counter's journal") as caught:
            read(key)
        assert isinstance(caught.value, CounterError) and caught.value.code == "COUNTER_ERROR"
        assert str(tmp_path / "t.db") in str(caught.value)
    with store.transaction() as db:
        store.put_sale(db, "SALE1", SaleState.NEW, {"n": 1})
        store.write_message(db, "M1", "2102", b"{}", sale="SALE1")
        store.put_voucher(db, "V1", "SALE1", "pending", {"medfee": "1.00"})
    assert store.require_sale("SALE1") == (SaleState.NEW, {"n": 1})
    assert store.require_message("M1")["state"] == "written"
    assert store.require_voucher("V1")["medfee"] == "1.00"


def test_refusing_a_sale_the_store_lacks_names_it_and_writes_nothing(tmp_path):
    store = CounterStore(tmp_path / "t.db")
    with pytest.raises(MissingRow, match="SALE7"), store.transaction() as db:
        store.put_refused(db, "SALE7", "UNKNOWN_PERSON: no such person")
    assert store.sale("SALE7") is None


def test_meta_with_a_default_is_that_default_until_set(tmp_path):
    store = CounterStore(tmp_path / "t.db")
    assert store.get_meta("sign_no") is None
    assert store.get_meta("sign_no", "") == ""
    assert store.next_seq(store._db) == 1 and store.next_seq(store._db) == 2


def test_resume_of_an_empty_journal_says_the_same_counts_in_the_same_order(tmp_path):
    counter = Counter("P13010000001", CounterStore(tmp_path / "t.db"), CentreClient("http://127.0.0.1:9/"))
    resumed = counter.resume()
    assert list(resumed.items()) == [("answered", 0), ("still_unanswered", 0), ("vouchers_made", 0), ("receipts", 0)]


def test_clearing_faults_sets_every_fault_back_to_its_default():
    faults = Faults(mute=True, slow_s=0.5, remove_mid_apdu=True, garbage=True, truncated=True, wrong_atr=True)
    faults.clear()
    assert faults == Faults()


def test_a_refusal_for_want_of_a_sign_in_names_the_command_that_signs_in():
    @click.command()
    @_errors
    def refused() -> None:
        raise click.ClickException("REFUSED: the centre refused the request: no sign_no for this institution")

    session = _Session("P13010000001", "http://127.0.0.1:9/", None, None, 3.0, 5.0)
    result = CliRunner().invoke(refused, [], obj=session)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: REFUSED: the centre refused the request: no sign_no for this institution; "
        "sign in first: medsettle terminal -i P13010000001 signin"
    ]
