"""`medsettle serve --workers N` (docs/architecture.md): N centre processes behind one address on one PostgreSQL
journal, each the one writer of its share of the insured regions.

A request arrives at whichever worker the kernel hands the connection to; one about another worker's region
is handed to that worker. So whatever worker a request lands on: a sale of either region's person settles
once and its resend gets the same answer; a sign-in's resend the same sign_no; a 2601 and an admin credit
reach the person's worker; 3201 agrees per insured region; and all of it holds after a restart (every
worker replays the journal). A worker that dies stops the centre, saying so. The workers' own hand-off
listener takes nothing from anyone without their token.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest

from centre_rig import CODES, ServedCentre, certificate_of, envelope, persons_insured
from medsettle.timeutil import SHANGHAI

PHARMACY = "P13010000001"  # a pharmacy of region 130100: worker 1's; it sells to 330300's insured too
OTHER_PHARMACY = "P33030000001"  # of region 330300: worker 2's
REGIONS = ("130100", "330300")


def to_fen(amount: object) -> int:
    """An answer's amount (a JSON number read as float, 2 places) in fen, exactly."""
    whole, _, cents = f"{amount}".lstrip("-").partition(".")
    fen = int(whole) * 100 + int((cents + "00")[:2])
    return -fen if f"{amount}".startswith("-") else fen


def call(server: ServedCentre, infno: str, input_: dict, sign_no: str, insuplc: str) -> dict:
    """One request of the 130100 pharmacy about a person (or statement) of insured region ``insuplc``."""
    return server.post(envelope(infno, input_, sign_no=sign_no, msgid=server.next_msgid(), insuplc=insuplc))


def workers_centre(tmp_path: Path, url: str, engine: str | None = None) -> ServedCentre:
    return ServedCentre(tmp_path / "data", engine=engine, args=["--workers", "2", "--db", url, "--stats-every", "0"])


def sale(server: ServedCentre, sign_no: str, psn: str, msgid: str, price: str = "12.50") -> tuple[dict, dict]:
    data = {"psn_no": psn, **certificate_of(psn, "02"), "med_type": "41", "acct_used_flag": "1"}
    line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": price, "cnt": "2"}
    body = envelope("2102", {"data": data, "feedetail": [line]}, sign_no=sign_no, msgid=msgid, insuplc=psn[:6])
    return server.post(body), body


def sign_in_until_both_hand_off(server: ServedCentre, msgid: str, code: str) -> str:
    """9001 of institution ``code`` resent over new connections until it has landed on the worker that does
    not own the institution's region, and been handed to the one that does (the kernel deals connections
    out, so a few tries suffice); every answer carries the same sign_no."""
    sign_nos = set()
    for _ in range(60):
        body = envelope("9001", {"signIn": {"opter_no": "001"}}, sign_no="", msgid=msgid, fixmedins_code=code)
        answer = server.post({**body, "mdtrtarea_admvs": code[1:7], "insuplc_admdvs": code[1:7]})
        assert answer["infcode"] == 0, answer["err_msg"]
        sign_nos.add(answer["output"]["signinoutb"]["sign_no"])
        if f"handing requests about region {code[1:7]}" in "".join(server.output):
            break
    assert len(sign_nos) == 1, sign_nos
    return sign_nos.pop()


def test_two_workers_answer_either_regions_requests_once_wherever_they_land(postgres_server, engine, tmp_path):
    url = postgres_server.new_database()
    with workers_centre(tmp_path, url, engine) as server:
        assert "2 workers: worker 1: 130100; worker 2: 330300" in "".join(server.output)
        sign_no = sign_in_until_both_hand_off(server, f"{PHARMACY}SIGNIN0000001", PHARMACY)
        sign_in_until_both_hand_off(server, f"{OTHER_PHARMACY}SIGNIN0000001", OTHER_PHARMACY)
        handed = "".join(server.output)
        assert all(f"handing requests about region {r}" in handed for r in REGIONS), "each worker handed off"
        strangers_are_refused_by_the_hand_off_listener(server, sign_no)
        sold, bodies = [], []
        for region in REGIONS:
            for k, psn in enumerate(persons_insured(region, "310")[:3]):
                answer, body = sale(server, sign_no, psn, f"{PHARMACY}W{region}{k:04d}")
                assert answer["infcode"] == 0, answer
                info = answer["output"]["setlinfo"]
                assert info["setl_id"].startswith(f"S{region}"), info  # numbered by the person's worker
                sold.append(info)
                bodies.append(body)
                for _ in range(3):  # resent: the same answer, wherever it lands
                    assert server.post(body)["output"] == answer["output"]
        assert len({s["setl_id"] for s in sold}) == len(sold)
        reused = {
            **bodies[-1],
            "input": {**bodies[-1]["input"], "feedetail": [{**bodies[-1]["input"]["feedetail"][0], "cnt": "3"}]},
        }
        refused = server.post(reused)
        assert refused["infcode"] == -1 and "already used for another request" in refused["err_msg"], refused

        # 2601 of a 330300 person's sale, sent to the 130100 pharmacy's address: reversed at its worker
        reversed_one = sold.pop()
        data = {"psn_no": reversed_one["psn_no"], "omsgid": bodies[-1]["msgid"], "oinfno": "2102"}
        rvs = call(server, "2601", {"data": data}, sign_no, "330300")
        assert rvs["output"]["data"]["rvs_rslt"] == "reversed", rvs
        sold.append(reversed_one)
        mirror = {
            **reversed_one,
            **{k: f"-{reversed_one[k]}" for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")},
        }

        # the agency's credit of a 330300 person: made by its worker, seen in 1101 wherever it is asked
        psn = persons_insured("330300", "310")[5]
        credited = server.admin({"action": "credit", "psn_no": psn, "amount": "100.00", "key": "2026-11"})
        assert credited["ok"], credited
        for _ in range(3):
            info = call(server, "1101", {"data": certificate_of(psn, "02")}, sign_no, psn[:6])
            assert info["infcode"] == 0, info
            assert to_fen(info["output"]["insuinfo"][0]["balc"]) == to_fen(credited["balc"]), info

        def agrees() -> None:
            for region in REGIONS:
                rows = sold + ([mirror] if region == "330300" else [])
                stmt = statement_of_rows(server, sign_no, region, rows)
                assert stmt["stmt_rslt"] == "0", stmt

        agrees()
        period = {"stmt_begndate": "2026-01-01", "stmt_enddate": "2026-12-31"}
        detail, _ = server.call("3202", {"data": period, "detail": []}, sign_no=sign_no)
        assert detail["infcode"] == -1 and "setl_optins" in detail["err_msg"], detail

    with workers_centre(tmp_path, url, engine) as server:  # restarted: every worker replays the journal
        for body, first in zip(bodies, sold, strict=True):
            again = server.post(body)
            assert again["output"]["setlinfo"]["setl_id"] == first["setl_id"], again
        sign_no = server.sign_in(PHARMACY)
        for region in REGIONS:
            stmt = statement_of_rows(server, sign_no, region, sold + ([mirror] if region == "330300" else []))
            assert stmt["stmt_rslt"] == "0", stmt


def strangers_are_refused_by_the_hand_off_listener(server: ServedCentre, sign_no: str) -> None:
    """A worker's hand-off listener skips the gateway, so it must take nothing from anyone else: a connection
    whose first frame is not the workers' token (or that speaks HTTP) is closed unanswered, and the sale it
    carried is not made."""
    import re
    import socket

    from medsettle.centre.workers import ENVELOPE, HELLO, frame
    from medsettle.jsontext import dumps_bytes

    found = re.search(r"handing requests about region \d+ to its worker \(127\.0\.0\.1:(\d+)\)",
                      "".join(server.output))  # fmt: skip
    assert found, "".join(server.output)
    port = int(found.group(1))
    psn = persons_insured("330300", "310")[7]
    balance = call(server, "1101", {"data": certificate_of(psn, "02")}, sign_no, psn[:6])
    data = {"psn_no": psn, **certificate_of(psn, "02"), "med_type": "41", "acct_used_flag": "1"}
    line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "12.50", "cnt": "2"}
    body = envelope("2102", {"data": data, "feedetail": [line]}, sign_no=sign_no, msgid=f"{PHARMACY}ROGUE0001",
                    insuplc=psn[:6])  # fmt: skip
    attempts = [
        frame(HELLO, 0, b"0" * 32) + frame(ENVELOPE, 1, dumps_bytes(body)),  # a guessed token
        frame(ENVELOPE, 1, dumps_bytes(body)),  # no token at all
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",  # HTTP, as the channel once was
    ]
    for attempt in attempts:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(attempt)
            assert sock.recv(65536) == b"", "the hand-off listener answered a stranger"  # closed on us
    again = call(server, "1101", {"data": certificate_of(psn, "02")}, sign_no, psn[:6])
    assert again["output"]["insuinfo"][0]["balc"] == balance["output"]["insuinfo"][0]["balc"], again


def statement_of_rows(server: ServedCentre, sign_no: str, region: str, rows: list[dict]) -> dict:
    """3201 of one insured region with the institution's totals of ``rows`` (settlements and mirrors)."""
    today = dt.datetime.now(SHANGHAI).date().isoformat()
    mine = [s for s in rows if s["psn_no"].startswith(region)]
    fen = {k: sum(to_fen(s[k]) for s in mine) for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")}
    totals = {k: f"{'-' if v < 0 else ''}{abs(v) // 100}.{abs(v) % 100:02d}" for k, v in fen.items()}
    count = sum(-1 if str(s["medfee_sumamt"]).startswith("-") else 1 for s in mine)
    data = {"insutype": "310", "clr_type": "41", "setl_optins": region, "stmt_begndate": today, "stmt_enddate": today}
    answer = call(server, "3201", {"data": {**data, "fixmedins_setl_cnt": count, **totals}}, sign_no, region)
    assert answer["infcode"] == 0, answer
    return answer["output"]["stmtinfo"]


def test_a_worker_that_dies_stops_the_centre_saying_so(postgres_server, tmp_path):
    server = workers_centre(tmp_path, postgres_server.new_database()).start()
    try:
        assert server.proc is not None
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        assert len(children) == 2, children
        os.kill(int(children[1]), signal.SIGKILL)
        server.proc.wait(timeout=60)
        time.sleep(0.5)  # the reader thread takes the last lines
        output = "".join(server.output)
        assert server.proc.returncode == 1, output
        assert "Error: worker 2 (regions 330300) exited with code -9; every worker was stopped" in output, output
        assert not Path(f"/proc/{children[0]}").exists(), "the other worker was stopped too"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--workers", "2"], "--workers 2: the workers share one PostgreSQL journal"),
        (["--workers", "2", "--db", "centre.db"], "give --db postgresql://"),
        (["--workers", "0"], "--workers"),
    ],
)
def test_workers_need_a_postgresql_journal(args, words, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "medsettle", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists()


def test_more_workers_than_regions_is_refused(postgres_server, tmp_path):
    import subprocess
    import sys

    url = postgres_server.new_database()
    result = subprocess.run(
        [sys.executable, "-m", "medsettle", "serve", "--port", "0", "--workers", "3", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "Error: --workers 3: only 2 insured regions to share out (130100, 330300)" in result.stderr


def test_the_workers_stop_when_their_parent_is_killed(postgres_server, tmp_path):
    """A parent killed with SIGKILL cannot stop its workers: Linux sends them SIGTERM (PR_SET_PDEATHSIG)."""
    server = workers_centre(tmp_path, postgres_server.new_database()).start()
    try:
        assert server.proc is not None
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        server.kill()
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{child}").exists() for child in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(Path(f"/proc/{child}").exists() for child in children), "a worker outlived its parent"
    finally:
        server.stop()
