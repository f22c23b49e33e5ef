"""Who may call the centre (issue 15, docs/security.md): institutions sign every request as at the platform's
gateway, the agency presents its token on /admin, and nothing else gets in. Each attack is performed over
HTTP against a real `medsettle serve` and must be refused with infcode -1 (or ok false), naming what is
wrong, with nothing journaled."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from centre_rig import HOSPITAL, PHARMACY, ServedCentre, envelope, first_person, shared_centre
from medsettle import credentials
from medsettle.credentials import NONCE, PAASID, SIGNATURE, TIMESTAMP, signature

SIGN_IN = {"signIn": {"opter_no": "001", "mac": "00:11", "ip": "127.0.0.1"}}


def sign_in_body(code: str = PHARMACY) -> dict:
    return envelope("9001", SIGN_IN, sign_no="", msgid=ServedCentre.next_msgid(code), fixmedins_code=code)


def headers_of(server: ServedCentre, code: str = PHARMACY, **override: str) -> dict[str, str]:
    """A request's headers signed by ``code``, with some replaced (a header set to "" is left out)."""
    signed = {"Content-Type": "application/json", **server.credentials().institution(code).headers()}
    signed.update(override)
    return {k: v for k, v in signed.items() if v}


def refused(answer: dict, code: str, field: str) -> None:
    assert answer["infcode"] == -1, answer
    assert answer["err_msg"].startswith(f"{code}: field {field}:"), answer


@pytest.fixture(scope="module")
def served_centre(tmp_path_factory):
    """One served centre for the tests that neither restart nor reconfigure it (a start is seconds): their
    attacks are refused at the gateway, whatever the ledger, and each counts journal entries only across its
    own requests. The nonce, credential and institutions tests start their own."""
    with shared_centre(tmp_path_factory.mktemp("auth") / "centre") as centre:
        yield centre


def test_requests_without_a_valid_signature_are_refused_naming_the_header_and_change_nothing(served_centre):
    server = served_centre
    creds = server.credentials()
    pharmacy, hospital = creds.institution(PHARMACY), creds.institution(HOSPITAL)
    now = str(int(time.time()))
    # far enough past the 300 s window that the seconds the test takes cannot bring them back into it
    stale, early = str(int(time.time()) - 400), str(int(time.time()) + 400)
    attempts = {
        PAASID: [headers_of(server, **{PAASID: ""}), headers_of(server, **{PAASID: "nobody"})],
        TIMESTAMP: [
            headers_of(server, **{TIMESTAMP: ""}),
            headers_of(server, **{TIMESTAMP: "yesterday"}),
            # a timestamp off by more than 300 s, even with a signature that matches it
            headers_of(server, **{TIMESTAMP: stale, SIGNATURE: signature(stale, pharmacy.passtoken, "n-stale")}),
            headers_of(server, **{TIMESTAMP: early, SIGNATURE: signature(early, pharmacy.passtoken, "n-early")}),
        ],
        NONCE: [headers_of(server, **{NONCE: ""}), headers_of(server, **{NONCE: "x" * 65})],
        SIGNATURE: [
            headers_of(server, **{SIGNATURE: ""}),
            headers_of(server, **{SIGNATURE: "0" * 64}),
            headers_of(server, **{SIGNATURE: "z" * 64}),
            headers_of(server, **{SIGNATURE: "é" * 64}),  # not ASCII (sent as Latin-1 bytes)
            # signed with another institution's passtoken under the pharmacy's paasid
            headers_of(server, **{TIMESTAMP: now, NONCE: "n1", SIGNATURE: signature(now, hospital.passtoken, "n1")}),
        ],
        # the hospital's own valid signature on a request naming the pharmacy
        "fixmedins_code": [headers_of(server, HOSPITAL)],
    }
    before = server.journal_count()
    for field, variants in attempts.items():
        for headers in variants:
            if field == TIMESTAMP and headers.get(TIMESTAMP) in (stale, early):
                headers[NONCE] = "n-stale" if headers[TIMESTAMP] == stale else "n-early"
            answer = server.post(sign_in_body(), headers=headers)
            refused(answer, "UNAUTHENTICATED", field)
    assert server.journal_count() == before  # no sign-in, no stored answer
    assert server.post(sign_in_body(), headers=headers_of(server))["infcode"] == 0  # the right one gets in


def test_a_nonce_is_taken_once_within_the_window_even_after_a_restart(tmp_path):
    with ServedCentre(tmp_path) as server:
        once = headers_of(server)
        assert server.post(sign_in_body(), headers=once)["infcode"] == 0
        before = server.journal_count()
        refused(server.post(sign_in_body(), headers=once), "UNAUTHENTICATED", NONCE)  # replayed as it was
        assert server.journal_count() == before
        paasid_before = server.credentials().institution(PHARMACY).paasid
    with ServedCentre(tmp_path) as server:  # the nonces are in the journal's database, not in the process
        refused(server.post(sign_in_body(), headers=once), "UNAUTHENTICATED", NONCE)
        assert server.credentials().institution(PHARMACY).paasid == paasid_before  # the same credentials
        assert server.post(sign_in_body(), headers=headers_of(server))["infcode"] == 0


def test_two_processes_on_one_postgresql_share_credentials_and_nonces(tmp_path, postgres_server):
    url = postgres_server.new_database()
    first = ServedCentre(tmp_path / "a", args=["--db", url, "--regions", "130100"]).start()
    try:
        second = ServedCentre(tmp_path / "b", args=["--db", url, "--regions", "330300"]).start()
        try:
            assert first.credentials() == second.credentials()  # made once, by whichever started first
            once = headers_of(first)
            assert first.post(sign_in_body(), headers=once)["infcode"] == 0
            refused(second.post(sign_in_body(), headers=once), "UNAUTHENTICATED", NONCE)
        finally:
            second.stop()
    finally:
        first.stop()


def admin_post(server: ServedCentre, body: dict, headers: dict[str, str]) -> dict:
    request = urllib.request.Request(server.url + "admin", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_admin_api_takes_only_the_agencys_token_json_and_this_machine(served_centre):
    server = served_centre
    psn_no = first_person()
    credit = {"action": "credit", "psn_no": psn_no, "amount": "1000.00", "key": "2026-11"}
    good = server.credentials().admin_headers()
    balance = server.admin({"action": "card_record", "psn_no": psn_no})
    attacks = {
        "Authorization": [
            {"Content-Type": "application/json"},
            {**good, "Authorization": "Bearer wrong-token"},
            {**good, "Authorization": "Basic " + good["Authorization"].split()[1]},
            {**good, "Authorization": "Bearer é"},
        ],
        # a cross-site form from a browser: text/plain (no preflight), a foreign Origin, a rebound Host
        "Content-Type": [{**good, "Content-Type": "text/plain"}],
        "Origin": [
            {**good, "Origin": "http://evil.example"},
            {**good, "Origin": "null"},
            {**good, "Origin": "http://[::1"},
        ],
        "Host": [{**good, "Host": "evil.example:8901"}],
    }
    before = server.journal_count()
    for field, variants in attacks.items():
        for headers in variants:
            answer = admin_post(server, credit, headers)
            assert not answer["ok"] and answer["error"].startswith(f"UNAUTHENTICATED: field {field}:"), answer
    assert server.journal_count() == before
    assert server.admin({"action": "card_record", "psn_no": psn_no}) == balance  # nothing moved
    same_origin = {**good, "Origin": server.url.rstrip("/")}
    assert admin_post(server, {"action": "card_record", "psn_no": psn_no}, same_origin)["ok"]


def test_credentials_live_in_the_journal_database_and_the_clients_copy_is_private(tmp_path):
    with ServedCentre(tmp_path) as server:
        first = server.credentials()
        mode = stat.S_IMODE(os.stat(server.credentials_file).st_mode)
        assert mode == 0o600, oct(mode)
        assert f"credentials: {server.credentials_file}" in "".join(server.output)
        assert set(first.institutions) >= {PHARMACY, HOSPITAL} and len(first.agency_token) >= 32
    server.credentials_file.unlink()  # the copy is lost: the centre writes it again, the same
    with ServedCentre(tmp_path) as server:
        assert server.credentials() == first


def institutions_toml(path: Path) -> Path:
    path.write_text(
        """agency_token = "agency-token-of-the-test-0123456789"

[[institution]]
fixmedins_code = "P13010000009"
fixmedins_name = "测试药房"
admdvs = "130100"
tier = "pharmacy"
failure_policy = "store_and_forward"
floor_per_bill = 20000
paasid = "test-pharmacy"
passtoken = "the-pharmacy-passtoken-0123"

[[institution]]
fixmedins_code = "H13010000009"
fixmedins_name = "测试医院"
admdvs = "130100"
tier = "2"
""",
        encoding="utf-8",
    )
    return path


def test_an_institutions_file_names_the_centres_institutions_and_their_credentials(tmp_path):
    toml = institutions_toml(tmp_path / "institutions.toml")
    with ServedCentre(tmp_path / "data", args=["--institutions", str(toml)]) as server:
        creds = server.credentials()
        assert set(creds.institutions) == {"P13010000009", "H13010000009"}
        assert creds.institution("P13010000009").paasid == "test-pharmacy"
        assert creds.institution("P13010000009").passtoken == "the-pharmacy-passtoken-0123"
        assert creds.agency_token == "agency-token-of-the-test-0123456789"
        answer = server.post(sign_in_body("P13010000009"))
        assert answer["infcode"] == 0, answer
        assert answer["output"]["insinfo"]["failure_policy"] == "store_and_forward"
        refused(server.post(sign_in_body(PHARMACY), sign_as="P13010000009"), "UNAUTHENTICATED", "fixmedins_code")
        assert server.post(sign_in_body("H13010000009"))["infcode"] == 0  # credentials made for it


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[[institution]]\nfixmedins_code = 'P1'\n", "fixmedins_code"),
        (
            "agency_token = 'short'\n[[institution]]\n" + "fixmedins_code='P13010000009'\nfixmedins_name='x'\n"
            "admdvs='130100'\ntier='pharmacy'\n",
            "agency_token",
        ),  # fmt: skip
        (
            "[[institution]]\nfixmedins_code='P13010000009'\nfixmedins_name='x'\nadmdvs='999999'\ntier='pharmacy'\n",
            "999999",
        ),  # fmt: skip
        ("nonsense = [", "--institutions"),
    ],
    # Explicit ids: pytest 9.2 stops naming a test by a parameter longer than 100 characters, so
    # two pytest versions would otherwise give this case two names.
    ids=["short-code", "short-agency-token", "unknown-region", "not-toml"],
)
def test_a_bad_institutions_file_is_one_error_line_and_no_journal(tmp_path, text, words):
    toml = tmp_path / "institutions.toml"
    toml.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "serve", "--port", "0", "--data-dir", str(tmp_path / "data"),
         "--institutions", str(toml)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "centre.db").exists()


def test_insecure_lets_anyone_in_and_says_so_in_every_answer(tmp_path):
    with ServedCentre(tmp_path, args=["--insecure"]) as server:
        assert any("WARNING" in line and "--insecure" in line for line in server.output)
        answer = server.post(sign_in_body(), headers={"Content-Type": "application/json"})
        assert answer["infcode"] == 0 and "--insecure" in answer["warn_msg"], answer
        refusal = server.post({"infno": "9001"}, headers={})
        assert refusal["infcode"] == -1 and "--insecure" in refusal["warn_msg"], refusal
        admin = admin_post(server, {"action": "card_record", "psn_no": first_person()}, {})
        assert admin["ok"] and "--insecure" in admin["warn_msg"], admin
        assert server.credentials_file.exists()  # written all the same, so clients work unchanged


def test_clients_find_the_credentials_by_option_then_environment_then_default(tmp_path, monkeypatch):
    monkeypatch.delenv(credentials.ENV_VAR, raising=False)
    monkeypatch.setenv("MEDSETTLE_DATA_DIR", str(tmp_path / "data"))
    assert credentials.find() == tmp_path / "data" / "credentials.toml"
    monkeypatch.setenv(credentials.ENV_VAR, str(tmp_path / "env.toml"))
    assert credentials.find() == tmp_path / "env.toml"
    assert credentials.find(tmp_path / "option.toml") == tmp_path / "option.toml"
    with pytest.raises(credentials.CredentialsError, match="no credentials file at .*option.toml"):
        credentials.load(tmp_path / "option.toml")


def test_a_counter_without_credentials_says_so_in_one_line_and_creates_nothing(served_centre, tmp_path):
    journal = tmp_path / "counter.db"
    result = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "terminal", "-i", PHARMACY, "--centre", served_centre.url,
         "--journal", str(journal), "--credentials", str(tmp_path / "none.toml"), "signin"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr.startswith("Error: no credentials file at"), result.stderr
    assert result.stderr.count("\n") == 1 and not journal.exists()


def test_medsettle_sign_prints_headers_curl_sends(served_centre):
    server = served_centre
    env = server.client_env()
    signed = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "sign", "-i", PHARMACY],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout  # fmt: skip
    lines = [json.loads(line.split(" = ", 1)[1]) for line in signed.splitlines()]
    headers = dict(line.split(": ", 1) for line in lines)
    assert set(headers) == {"Content-Type", PAASID, TIMESTAMP, NONCE, SIGNATURE}
    assert server.post(sign_in_body(), headers=headers)["infcode"] == 0
    agency = subprocess.run(
        [sys.executable, "-m", "medsettle.cli", "sign", "--agency", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=env, check=True,
    ).stdout  # fmt: skip
    assert admin_post(server, {"action": "card_record", "psn_no": first_person()}, json.loads(agency))["ok"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_batch_of_nonces_is_claimed_each_once_on_either_database(backend, tmp_path, request):
    """The gateway claims the nonces of many requests at once (PostgreSQL in one statement): a nonce
    seen before, or twice in one batch, is taken once; one whose window has passed is forgotten."""
    from medsettle.ledger.gate import PostgresGateStore, SQLiteGateStore

    if backend == "sqlite":
        store = SQLiteGateStore(tmp_path / "centre.db")
    else:
        store = PostgresGateStore(request.getfixturevalue("postgres_server").new_database())
    try:
        assert store.claim_nonces([("A", "n1", 100)], 10) == [True]
        batch = [("A", "n1", 100), ("A", "n2", 100), ("A", "n2", 100), ("B", "n1", 100)]
        assert store.claim_nonces(batch, 10) == [False, True, False, True]
        many = [("C", f"m{i}", 100) for i in range(300)]  # over one statement's chunk
        assert store.claim_nonces(many, 10) == [True] * 300
        assert store.claim_nonces(many[:2], 10) == [False, False]
        assert store.claim_nonces([("A", "n1", 200)], 150) == [True]  # its window over: forgotten, taken anew
    finally:
        store.close()
