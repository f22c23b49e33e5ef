"""The counter against a real centre process on 127.0.0.1: online sales, the centre down before the
request, its answer lost after the request, the terminal's own crash points, deferred vouchers inside and
outside the window, and after each scenario: reconciliation clean and no fen lost or paid twice."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from centre_rig import PHARMACY, ServedCentre
from medsettle.errors import InvalidInput
from medsettle.terminal import CentreClient, CentreUnreachable, CounterError, Identity
from medsettle.terminal.crash import EXIT_CODE, POINTS
from terminal_rig import (
    ITEM_ARGS,
    ITEMS,
    LossyProxy,
    balance_of,
    by_certno,
    centre_records,
    days_ago,
    make_counter,
    own_institution,
    patient,
    patient_certno,
    terminal,
)

pytestmark = pytest.mark.timeout(180)
MEDFEE = Decimal("55.00")  # 12.50 × 2 + 30.00


def money(receipt, *names) -> Decimal:
    return sum(Decimal(getattr(receipt, n)) for n in names)


@pytest.fixture()
def code():
    """This test's own copy of the online pharmacy."""
    return own_institution(PHARMACY)


@pytest.mark.parametrize("engine", ["core", "reference"])
def test_online_sale_cancel_and_clean_reconciliation(centres, tmp_path, engine, code):
    server = centres(engine)
    counter = make_counter(server.url, tmp_path / "t.db", code)
    counter.sign_in()
    before = balance_of(server, counter.journal.get_meta("sign_no"), code)
    receipt = counter.sell(by_certno(), ITEMS)
    assert receipt.kind == "sale" and Decimal(receipt.medfee) == MEDFEE
    assert money(receipt, "fund", "account", "cash") == MEDFEE
    assert before - Decimal(receipt.account) == Decimal(receipt.balance)
    assert "fund" in receipt.text() and receipt.setl_id
    second = counter.sell(by_certno(), ITEMS[:1], acct_used=False)
    assert Decimal(second.account) == 0
    cancelled = counter.cancel(second.sale)
    assert Decimal(cancelled.medfee) == -Decimal(second.medfee)
    result = counter.reconcile(detail=True)
    assert result["clean"], result
    assert {r["stmt_rslt"] for r in result["groups"]} == {"0"}
    counter.sign_out()


def test_centre_down_before_the_request_then_the_voucher_is_settled(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    counter = make_counter(server.url, tmp_path / "t.db")
    counter.sign_in()
    sign_no = counter.journal.get_meta("sign_no")
    before = balance_of(server, sign_no)
    server.stop()  # the centre is down before the sale's first message
    try:
        receipt = counter.sell(by_certno(), ITEMS)
        assert receipt.kind == "deferred" and Decimal(receipt.cash) == MEDFEE and receipt.voucher
        assert [v["voucher"] for v in counter.pending_vouchers()] == [receipt.voucher]
        server.start()
        counter.client.url = server.url
        counter.sign_in()  # a restarted centre keeps sign-ins, but the port changed with it
        refund = counter.settle_voucher(receipt.voucher)
        assert refund.kind == "refund" and refund.voucher == receipt.voucher
        assert Decimal(refund.refund) == Decimal(refund.fund) + Decimal(refund.account) > 0
        assert Decimal(refund.medfee) == MEDFEE
        assert counter.pending_vouchers() == []
        assert counter.settle_voucher(receipt.voucher) == refund  # settled at most once: same receipt again
        sign_no = counter.journal.get_meta("sign_no")
        assert balance_of(server, sign_no) == before - Decimal(refund.account)
        assert counter.reconcile(detail=True)["clean"]
    finally:
        server.stop()


def test_a_lost_answer_is_resent_unchanged_and_answered_once(centre, code, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "t.db", code, resend_for=5)
        counter.sign_in()
        proxy.drop = {"2102"}
        original_post = counter.client.post

        def post_then_heal(body):  # the first 2102's answer is lost; its resend gets the stored answer
            try:
                return original_post(body)
            finally:
                if proxy.dropped:
                    proxy.drop = set()

        counter.client.post = post_then_heal
        receipt = counter.sell(by_certno(), ITEMS)
        assert proxy.dropped == 1 and receipt.kind == "sale"
        records = centre_records(centre, counter.journal.get_meta("sign_no"), code)
        assert [r["setl_id"] for r in records] == [receipt.setl_id]  # one settlement, not two
        assert counter.reconcile(detail=True)["clean"]
    finally:
        proxy.close()


def test_answer_lost_and_patient_cannot_wait_reverses_then_settles_the_voucher(centre, code, tmp_path):
    proxy = LossyProxy(centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "t.db", code)
        counter.sign_in()
        sign_no = counter.journal.get_meta("sign_no")
        before = balance_of(centre, sign_no, code)
        proxy.drop = {"2102"}
        receipt = counter.sell(by_certno(), ITEMS)  # applied at the centre, never answered
        assert receipt.kind == "deferred" and proxy.dropped >= 1
        voucher = counter.journal.voucher(receipt.voucher)
        assert voucher["blocked_by"] is None  # the 2601 went through and undid the settlement
        assert balance_of(centre, sign_no, code) == before
        proxy.drop = set()
        refund = counter.settle_voucher(receipt.voucher)
        assert balance_of(centre, sign_no, code) == before - Decimal(refund.account)  # paid once
        result = counter.reconcile(detail=True)
        assert result["clean"], result
        assert len(centre_records(centre, sign_no, code)) == 3  # the lost one, its mirror, the voucher's
    finally:
        proxy.close()


def test_a_voucher_waits_for_its_reversal(centre, code, tmp_path):
    """The 2601 cannot be sent while the centre is away: the voucher is not settled before it is answered."""
    proxy = LossyProxy(centre.url)
    counter = make_counter(proxy.url, tmp_path / "t.db", code)
    counter.sign_in()
    proxy.drop = {"2102", "2601"}
    receipt = counter.sell(by_certno(), ITEMS)
    assert counter.journal.voucher(receipt.voucher)["blocked_by"]
    proxy.close()  # now the centre is unreachable altogether
    with pytest.raises(CentreUnreachable):
        counter.settle_voucher(receipt.voucher)
    counter.client.url = centre.url
    assert counter.resume()["answered"] >= 1
    assert counter.journal.voucher(receipt.voucher)["blocked_by"] is None
    assert counter.settle_voucher(receipt.voucher).kind == "refund"
    assert counter.reconcile(detail=True)["clean"]


def test_equipment_failure_then_resettlement_inside_and_outside_the_window(centre, code, tmp_path):
    counter = make_counter(centre.url, tmp_path / "t.db", code)
    counter.sign_in()
    inside = counter.sell(None, ITEMS)  # the reader broke: nobody identified
    assert inside.kind == "deferred" and inside.cash == "55.00"
    with pytest.raises(InvalidInput, match="identity"):
        counter.settle_voucher(inside.voucher)
    refund = counter.settle_voucher(inside.voucher, by_certno())
    assert refund.kind == "refund"
    # A bill 9 days old: past the default outpatient and pharmacy window of 7 days
    old_counter = make_counter(centre.url, tmp_path / "t.db", code, clock=days_ago(9))
    outside = old_counter.sell(None, ITEMS)
    with pytest.raises(CounterError, match="manual claim"):
        counter.settle_voucher(outside.voucher, by_certno())
    assert counter.journal.voucher(outside.voucher)["state"] == "manual_claim"
    assert "WINDOW_EXPIRED" in counter.journal.voucher(outside.voucher)["err_msg"]
    assert counter.reconcile(detail=True)["clean"]


SALE_POINTS = ["sale_recorded", "settle_written", "settle_sent", "settle_recorded"]
VOUCHER_POINTS = ["voucher_settle_written", "voucher_settle_sent"]


QUEUE_POINTS = ["saf_recorded", "forward_written", "forward_sent"]  # in test_terminal_saf.py


@pytest.mark.parametrize("point", SALE_POINTS + VOUCHER_POINTS + ["voucher_recorded", "reversal_written"])
def test_every_crash_point_of_the_terminal(centre, code, tmp_path, point):
    """The terminal process exits at ``point`` (MEDSETTLE_CRASH_AT) and a new process's resume finishes what
    was left. The set-up before the crash and the checks after the restart run in this process (signin, a
    voucher to resettle, vouchers and reconcile as processes are proven by the other CLI tests)."""
    journal = tmp_path / "t.db"
    setup = make_counter(centre.url, journal, code)
    setup.sign_in()
    voucher = setup.sell(None, ITEMS).voucher if point in VOUCHER_POINTS else None  # the reader broke
    setup.journal.close()  # the CLI is another process: a journal is held by one at a time
    sign_no = centre.sign_in(code)  # the test's own eyes on the centre
    before = balance_of(centre, sign_no, code)
    proxy = None
    if voucher:
        crashed = terminal(
            centre.url,
            journal,
            "resettle",
            voucher,
            "--certno",
            patient_certno(),
            crash_at=point,
            check=False,
            code=code,
        )
    elif point == "reversal_written":
        proxy = LossyProxy(centre.url)
        proxy.drop = {"2102"}
        crashed = terminal(
            proxy.url, journal, "sell", "--certno", patient_certno(), *ITEM_ARGS, crash_at=point, check=False, code=code
        )
    elif point == "voucher_recorded":
        crashed = terminal(centre.url, journal, "sell", *ITEM_ARGS, crash_at=point, check=False, code=code)
    else:
        crashed = terminal(
            centre.url,
            journal,
            "sell",
            "--certno",
            patient_certno(),
            *ITEM_ARGS,
            crash_at=point,
            check=False,
            code=code,
        )
    assert crashed.returncode == EXIT_CODE, crashed.stderr
    if proxy:
        proxy.close()
    terminal(centre.url, journal, "resume", code=code)  # the restarted terminal finishes what was left
    counter = make_counter(centre.url, journal, code)
    for v in counter.pending_vouchers():
        counter.settle_voucher(v["voucher"], by_certno())
    report = counter.reconcile(detail=True)
    assert report["clean"], report
    settled = [d["setlinfo"] for _s, state, d in counter.journal.sales("done")]
    settled += [v["setlinfo"] for v in counter.journal.vouchers("settled")]
    assert len(settled) == 1  # the sale was paid exactly once, online or by its voucher
    assert balance_of(centre, sign_no, code) == before - Decimal(str(settled[0]["acct_pay"]))
    assert Decimal(str(settled[0]["medfee_sumamt"])) == MEDFEE


def test_crash_points_are_all_tested():
    tested = set(SALE_POINTS + VOUCHER_POINTS + QUEUE_POINTS + ["voucher_recorded", "reversal_written"])
    assert tested == set(POINTS)


def test_terminal_commands_have_help():
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "terminal", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("signin", "sell", "cancel", "vouchers", "resettle", "reconcile", "signout", "resume", "shell"):
        assert command in result.stdout


def test_centre_killed_after_the_answer_keeps_the_settlement(tmp_path):
    server = ServedCentre(tmp_path / "centre").start()
    try:
        counter = make_counter(server.url, tmp_path / "t.db")
        counter.sign_in()
        receipt = counter.sell(by_certno(), ITEMS)
        server.kill()  # SIGKILL right after answering: no clean shutdown
        server.start()
        counter.client.url = server.url
        report = counter.reconcile(detail=True)
        assert report["clean"], report  # the answer left only after the journal entry was durable
        assert [r["setl_id"] for r in centre_records(server, counter.journal.get_meta("sign_no"))] == [receipt.setl_id]
    finally:
        server.stop()


def test_the_interactive_counter(centre, code, tmp_path):
    commands = (
        "\n".join(
            [
                "signin",
                f"sell --certno {patient_certno()} {ITEM_ARGS[0]}",
                "vouchers",
                "help",
                "bogus",
                "reconcile --detail",
                "signout",
                "quit",
            ]
        )
        + "\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "medsettle.cli",
            "terminal",
            "-i",
            code,
            "--centre",
            centre.url,
            "--journal",
            str(tmp_path / "t.db"),
        ],
        input=commands,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"sign_no"' in result.stdout and '"kind": "sale"' in result.stdout and '"clean": true' in result.stdout
    assert "unknown command 'bogus'" in result.stderr and "医保结算单" in result.stderr


def test_a_qr_e_voucher_identifies_the_patient_at_the_counter(centre, code, tmp_path):
    counter = make_counter(centre.url, tmp_path / "t.db", code)
    counter.sign_in()
    token = centre.admin({"action": "issue_qr", "psn_no": patient()})["mdtrt_cert_no"]
    receipt = counter.sell(Identity("01", token), ITEMS)
    assert receipt.kind == "sale" and receipt.psn_name
    assert counter.reconcile(detail=True)["clean"]


@pytest.mark.parametrize("behaviour", ["http_500", "too_slow", "refused"])
def test_every_kind_of_unreachable_centre_is_one_error(behaviour):
    """Connection refused, a timeout and a 5xx are all CentreUnreachable (docs/failures.md)."""
    import http.server
    import socket
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if behaviour == "too_slow":
                threading.Event().wait(1.0)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    if behaviour == "refused":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/"
        server = None
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        with pytest.raises(CentreUnreachable) as caught:
            CentreClient(url, timeout=0.3).post(b"{}")
        assert caught.value.surely_not_received == (behaviour == "refused")
    finally:
        if server:
            server.shutdown()
