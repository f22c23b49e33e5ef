"""Issue 15, certificates that prove presence (docs/messages.md 'Certificates'): each attack performed over
HTTP against a served centre and refused with infcode -1, a clear err_msg and no state change (the balance,
the accumulators and the centre's records do not move; the journal gets at most the refusal's stored
answer); then the forward and the re-settlement of a sale when the patient may be gone, end to end with a
counter, carrying the certificate captured at the sale; and the counter taking CENTRE_UNAVAILABLE, CENTRE_BUSY
and an HTTP 5xx as the centre being away, never as a refusal."""

from __future__ import annotations

import http.server
import json
import threading
from decimal import Decimal

import pytest

from centre_rig import (
    CODES,
    HOSPITAL,
    PHARMACY,
    ServedCentre,
    admin_ok,
    card_of,
    certificate_of,
    default_registry,
    persons_insured,
    shared_centre,
)
from medsettle import credentials
from medsettle.terminal import CentreClient, Identity
from medsettle.terminal.client import CentreUnreachable
from medsettle.terminal.messaging import centre_answer
from medsettle.timeutil import now_shanghai
from terminal_rig import ITEMS, SAF_PHARMACY, LossyProxy, make_counter

pytestmark = pytest.mark.timeout(240)
DAY = "2026-03-02 09:58:00"
ZEROS = "000000000000000000"


def employee(n: int = 0) -> str:
    """The ``n``th employee of the default population: each test on a shared centre has its own."""
    return persons_insured("130100", "310")[n]


def resident(n: int = 0) -> str:
    return persons_insured("130100", "390")[n]


def sale(psn_no: str, cert: dict, when: str = DAY, **extra: str) -> dict:
    """A 2101/2102 pharmacy sale of one 100.00 line at ``when`` naming the person by ``cert``."""
    line = {"feedetl_sn": "1", "med_list_codg": CODES[0], "pric": "100.00", "cnt": "1", "fee_ocur_time": when}
    return {"data": {"psn_no": psn_no, "med_type": "41", "acct_used_flag": "1", **cert, **extra}, "feedetail": [line]}


class World:
    """A served centre on one journal backend, its signed-in pharmacy and hospital, and what a test checks."""

    def __init__(self, server: ServedCentre, db_url: str | None) -> None:
        self.server, self.db_url = server, db_url
        self.signs = {code: server.sign_in(code) for code in (PHARMACY, HOSPITAL, SAF_PHARMACY)}

    def call(self, infno: str, body: dict, code: str = PHARMACY) -> dict:
        answer, _ = self.server.call(infno, body, sign_no=self.signs[code], fixmedins_code=code)
        return answer

    def ok(self, infno: str, body: dict, code: str = PHARMACY) -> dict:
        answer = self.call(infno, body, code)
        assert answer["infcode"] == 0, (infno, answer["err_msg"])
        return answer["output"]

    def journal_count(self) -> int:
        return self.server.journal_count()  # SQLite or the --db PostgreSQL database

    def state_of(self, psn_no: str) -> tuple:
        """What a refused attack must leave as it was: the balance, the year's accumulators, the cards."""
        info = self.ok("1101", {"data": certificate_of(psn_no, "02")})
        cum = self.ok("5206", {"data": {"psn_no": psn_no, "cum_ym": "202603", **certificate_of(psn_no, "02")}})
        return info["insuinfo"][0]["balc"], json.dumps(cum, sort_keys=True), json.dumps(info["cardinfo"])

    def refused(self, infno: str, body: dict, code: str, *words: str, who: str, at: str | None = None) -> str:
        """``body`` is refused (infcode -1, err_msg starting with ``code`` and saying ``words``); nothing moved
        for person ``who`` and the journal got at most the refusal's stored answer. Returns the err_msg."""
        psn_no = who
        before, journal = self.state_of(psn_no), self.journal_count()
        answer = self.call(infno, body, at or (HOSPITAL if infno[:2] in ("22", "23", "24") else PHARMACY))
        assert answer["infcode"] == -1 and answer["err_msg"].startswith(f"{code}: "), (infno, answer)
        for word in words:
            assert word in answer["err_msg"], answer
        assert answer["output"] == {}, answer
        assert self.journal_count() - journal <= 1, "a refused request journaled more than its answer"
        assert self.state_of(psn_no) == before, "a refused request changed the person's state"
        return str(answer["err_msg"])


@pytest.fixture(scope="module")
def sqlite_centre(tmp_path_factory):
    """The module's SQLite centre, shared by the tests that neither restart it nor need it new: each test
    takes its own persons (employee(n), resident(n)) and counts journal entries across its own requests."""
    with shared_centre(tmp_path_factory.mktemp("certificates") / "centre") as server:
        yield server


@pytest.fixture
def served_centre(sqlite_centre, monkeypatch):
    """The shared SQLite centre, whose credentials the test's counters find (another centre started since)."""
    monkeypatch.setenv(credentials.ENV_VAR, str(sqlite_centre.credentials_file))
    return sqlite_centre


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledger_centre(request, tmp_path_factory):
    """A served centre on each journal backend, shared by the module's attacks (each its own persons)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_centre"), None
        return
    db_url = request.getfixturevalue("postgres_server").new_database()
    with shared_centre(tmp_path_factory.mktemp("certificates-pg") / "centre", args=["--db", db_url]) as server:
        yield server, db_url


@pytest.fixture
def world(ledger_centre):
    """The test's institutions signed in afresh on the shared centre of its journal backend."""
    return World(*ledger_centre)


def test_a_sale_by_psn_no_alone_debits_nothing(world):
    psn = employee(0)
    world.refused("2102", sale(psn, {}), "CERT_REQUIRED", "field input.data.mdtrt_cert_type", "certificate", who=psn)
    world.refused("2101", sale(psn, {}), "CERT_REQUIRED", who=psn)
    card = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_of(psn)}  # the number alone, as a guess would be
    world.refused("2102", sale(psn, card), "CERT_REQUIRED", "card_sn", who=psn)
    world.ok("2102", sale(psn, certificate_of(psn)))  # the card with the code read from its chip: settled


def test_a_lost_card_is_refused_whatever_certificate_stands_for_it(world):
    psn = employee(1)
    admin_ok(world.server.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    world.refused("2102", sale(psn, certificate_of(psn)), "CARD_LOST", card_of(psn), who=psn)
    world.refused(
        "2102", sale(psn, {"mdtrt_cert_type": "02", "mdtrt_cert_no": ZEROS}), "UNKNOWN_PERSON", ZEROS, who=psn
    )
    someone_else = certificate_of(resident(), "02")
    world.refused("2102", sale(psn, someone_else), "CERT_MISMATCH", f"not person {psn}'s", who=psn)
    world.refused("2102", sale(psn, certificate_of(resident())), "CARD_UNKNOWN", f"not person {psn}'s", who=psn)
    world.refused(
        "2102", sale(psn, {"mdtrt_cert_type": "01", "mdtrt_cert_no": "130100" + "0" * 34}), "QR_UNKNOWN", who=psn
    )
    # The person's own ID card is not lost with the social security card: it still proves presence.
    world.ok("2102", sale(psn, certificate_of(psn, "02")))


def test_a_card_read_with_its_chip_stands_for_its_number_alone_at_that_institution_only(world):
    """A real HIS reads the chip for 1101 and names the card by its number alone in the settlement that follows
    (the platform's 2102/2207/2304 carry no card_sn): taken from that institution, refused from another, and
    refused once the card is lost."""
    psn = employee(2)
    by_number = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_of(psn)}
    world.refused("2102", sale(psn, by_number), "CERT_REQUIRED", "card_sn", who=psn)  # nobody read it yet
    assert world.ok("1101", {"data": certificate_of(psn)})["baseinfo"]["psn_no"] == psn  # the chip, at the pharmacy
    world.ok("2102", sale(psn, by_number))
    # another institution: a guess
    world.refused("1101", {"data": by_number}, "CERT_REQUIRED", at=SAF_PHARMACY, who=psn)
    forward = sale(psn, by_number, saf_cash_amt="100.00")  # a forward carries the card_sn captured at the sale
    world.refused("2102", forward, "CERT_REQUIRED", "card_sn", who=psn)
    admin_ok(world.server.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    world.refused("2102", sale(psn, by_number), "CARD_LOST", who=psn)


def test_1101_by_a_guessed_card_number_tells_nothing(world):
    psn = employee(3)
    guessed = {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_of(psn)}
    world.refused("1101", {"data": guessed}, "CERT_REQUIRED", "card_sn", who=psn)
    wrong_sn = {**certificate_of(psn), "card_sn": certificate_of(resident())["card_sn"]}
    world.refused("1101", {"data": wrong_sn}, "CARD_UNKNOWN", who=psn)
    world.refused("1101", {"data": {"mdtrt_cert_type": "02", "certno": ZEROS}}, "UNKNOWN_PERSON", who=psn)
    world.refused("5206", {"data": {"psn_no": psn, "cum_ym": "202603"}}, "CERT_REQUIRED", who=psn)
    assert world.ok("1101", {"data": certificate_of(psn)})["baseinfo"]["psn_no"] == psn


def test_every_settlement_of_a_visit_and_a_stay_names_the_person(world):
    """2201 and 2401 open an encounter with a certificate; 2203/2204/2301/2402 continue it on its mdtrt_id (as
    on the platform, they carry none); 2206/2207 and 2303/2304 show one again, as the platform's do."""
    psn, other = resident(1), employee(4)
    register = {"psn_no": psn, "begntime": "2026-03-02 09:30:00"}
    world.refused("2201", {"data": register}, "CERT_REQUIRED", who=psn)
    world.refused("2201", {"data": {**register, **certificate_of(other)}}, "CARD_UNKNOWN", who=psn)
    visit = world.ok("2201", {"data": {**register, **certificate_of(psn)}}, HOSPITAL)["data"]["mdtrt_id"]
    world.ok("2203", {"mdtrtinfo": {"mdtrt_id": visit, "psn_no": psn, "med_type": "11"}, "diseinfo": []}, HOSPITAL)
    line = {"feedetl_sn": "1", "mdtrt_id": visit, "psn_no": psn, "med_type": "11", "fee_ocur_time": DAY}
    world.ok("2204", {"feedetail": [{**line, "med_list_codg": CODES[0], "pric": "80.00", "cnt": "1"}]}, HOSPITAL)
    settle = {"psn_no": psn, "mdtrt_id": visit}
    for infno in ("2206", "2207"):
        world.refused(infno, {"data": settle}, "CERT_REQUIRED", who=psn)
        world.refused(infno, {"data": {**settle, **certificate_of(other, "02")}}, "CERT_MISMATCH", who=psn)
    world.ok("2207", {"data": {**settle, **certificate_of(psn)}}, HOSPITAL)

    admit = {"psn_no": other, "med_type": "21", "begntime": "2026-03-01 08:00:00"}
    world.refused(
        "2401", {"mdtrtinfo": admit, "diseinfo": []}, "CERT_REQUIRED", "input.mdtrtinfo.mdtrt_cert_type", who=other
    )
    cert = certificate_of(other)
    stay = world.ok("2401", {"mdtrtinfo": {**admit, **cert}, "diseinfo": []}, HOSPITAL)["data"]["mdtrt_id"]
    fee = {"feedetl_sn": "1", "mdtrt_id": stay, "psn_no": other, "med_type": "21", "fee_ocur_time": DAY}
    world.ok("2301", {"feedetail": [{**fee, "med_list_codg": CODES[0], "pric": "900.00", "cnt": "1"}]}, HOSPITAL)
    mid = {"psn_no": other, "mdtrt_id": stay, "mid_setl_flag": "1"}
    for infno in ("2303", "2304"):
        world.refused(infno, {"data": mid}, "CERT_REQUIRED", who=other)
        world.refused(infno, {"data": {**mid, **certificate_of(psn)}}, "CARD_UNKNOWN", who=other)
    world.ok("2304", {"data": {**mid, **cert}}, HOSPITAL)


def test_a_forward_or_re_settlement_carries_the_certificate_captured_at_the_sale(world):
    psn = employee(5)
    token = admin_ok(world.server.admin({"action": "issue_qr", "psn_no": psn}))["mdtrt_cert_no"]
    qr = {"mdtrt_cert_type": "01", "mdtrt_cert_no": token}
    forward = {"saf_cash_amt": "100.00", "acct_used_flag": "0"}  # from the store-and-forward pharmacy
    world.refused(
        "2102", sale(psn, qr, **forward), "CERT_REQUIRED", "QR e-voucher is never kept", at=SAF_PHARMACY, who=psn
    )
    today = {"deferred_voucher_no": "VX1", "when": now_shanghai().strftime("%Y-%m-%d %H:%M:%S")}  # in the window
    world.refused("2102", sale(psn, qr, **today), "CERT_REQUIRED", "never kept", who=psn)
    admin_ok(world.server.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    world.refused("2102", sale(psn, certificate_of(psn), **forward), "CARD_LOST", at=SAF_PHARMACY, who=psn)
    forwarded = world.ok("2102", sale(psn, certificate_of(psn, "02"), **forward), SAF_PHARMACY)
    assert Decimal(str(forwarded["setlinfo"]["acct_pay"])) == 0


# -- end to end with a counter -----------------------------------------------------------------------------


def by_card(psn_no: str) -> Identity:
    """The identity a counter's reader gives for the person's card: its number and card_sn."""
    card = default_registry().cards[card_of(psn_no)]
    return Identity("03", card.card_no, card.card_sn, certno=default_registry().identities[psn_no].certno)


def sent_input(counter, msgid: str) -> dict:
    return json.loads(counter.journal.require_message(msgid)["request"])["input"]["data"]


@pytest.fixture(params=["sqlite", "postgresql"])
def saf_world(request, tmp_path):
    """A served centre and a store-and-forward pharmacy's counter signed in to it."""
    args: list[str] = []
    if request.param == "postgresql":
        args = ["--db", request.getfixturevalue("postgres_server").new_database()]
    server = ServedCentre(tmp_path / "centre", args=args).start()
    counter = make_counter(server.url, tmp_path / "t.db", SAF_PHARMACY)
    counter.sign_in()
    yield server, counter
    server.stop()


def test_a_forward_of_a_card_lost_since_the_sale_is_refused_and_borne_by_the_institution(saf_world):
    server, counter = saf_world
    psn = employee(6)

    def provisional_sale() -> None:
        server.stop()
        assert counter.sell(by_card(psn), ITEMS).kind == "provisional"
        server.start()
        counter.client.url = server.url
        counter.sign_in()

    assert counter.sell(by_card(psn), ITEMS).kind == "sale"  # the counter knows the card from now on
    provisional_sale()
    [forwarded] = counter.forward()  # the card still in force: settled, with the card_sn read at the sale
    assert forwarded["state"] == "forwarded", forwarded
    [entry] = counter.journal.saf_entries("forwarded")
    assert sent_input(counter, entry["msgid"])["card_sn"] == by_card(psn).card_sn
    provisional_sale()
    admin_ok(server.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    [flagged] = counter.forward()
    assert flagged["state"] == "flagged" and flagged["why"].startswith("CARD_LOST"), flagged
    [queued] = counter.journal.saf_entries("flagged")
    assert Decimal(flagged["institution_bears"]) == Decimal(queued["provisional_fund"])


def test_the_counter_keeps_no_qr_token_for_later(tmp_path, served_centre):
    """A 01 sale whose pre-settle got no answer: the voucher keeps the ID number the 1101 answered, and its
    re-settlement (the patient gone) is a 2102 with that 02."""
    psn = employee(7)
    proxy = LossyProxy(served_centre.url)
    try:
        counter = make_counter(proxy.url, tmp_path / "t.db", PHARMACY, resend_for=0.2)
        counter.sign_in()
        token = admin_ok(served_centre.admin({"action": "issue_qr", "psn_no": psn}))["mdtrt_cert_no"]
        proxy.drop = {"2101"}
        receipt = counter.sell(Identity("01", token), ITEMS)
        assert receipt.kind == "deferred", receipt
        voucher = counter.journal.voucher(receipt.voucher)
        assert voucher is not None and voucher["identity"]["mdtrt_cert_type"] == "02"
        assert voucher["identity"]["mdtrt_cert_no"] == default_registry().identities[psn].certno
        proxy.drop = set()
        refund = counter.settle_voucher(receipt.voucher)
        assert refund.kind == "refund"
        settled = counter.journal.voucher(receipt.voucher)
        assert settled is not None
        data = sent_input(counter, settled["msgid"])
        assert data["mdtrt_cert_type"] == "02" and data["deferred_voucher_no"] == receipt.voucher
    finally:
        proxy.close()


def test_a_voucher_of_a_card_lost_since_is_refused_until_another_certificate_is_shown(tmp_path, served_centre):
    psn = employee(8)
    counter = make_counter(served_centre.url, tmp_path / "t.db", PHARMACY, resend_for=0.2)
    counter.sign_in()
    url = counter.client.url
    counter.client.url = "http://127.0.0.1:9/"  # the centre is away for this sale: cash against a voucher
    receipt = counter.sell(by_card(psn), ITEMS)
    assert receipt.kind == "deferred"
    counter.client.url = url
    admin_ok(served_centre.admin({"action": "card", "card_no": card_of(psn), "card_action": "lost"}))
    with pytest.raises(Exception, match="CARD_LOST"):
        counter.settle_voucher(receipt.voucher)
    voucher = counter.journal.voucher(receipt.voucher)
    assert voucher is not None and voucher["state"] == "pending"  # nothing settled: the voucher waits
    refund = counter.settle_voucher(receipt.voucher, Identity("02", default_registry().identities[psn].certno))
    assert refund.kind == "refund"


# -- the centre away ---------------------------------------------------------------------------------------


def test_centre_unavailable_and_busy_answers_are_the_centre_away():
    for code in ("CENTRE_UNAVAILABLE", "CENTRE_BUSY"):
        with pytest.raises(CentreUnreachable, match=code):
            centre_answer({"infcode": -1, "err_msg": f"{code}: the journal failed", "output": {}})
    refusal = {"infcode": -1, "err_msg": "CARD_LOST: card 1 is reported lost", "output": {}}
    assert centre_answer(refusal) is refusal


@pytest.mark.parametrize("status", [500, 503])
def test_an_http_5xx_is_the_centre_away(status):
    body = json.dumps({"infcode": -1, "err_msg": "CENTRE_BUSY: too many connections", "output": {}}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CentreUnreachable):
            CentreClient(f"http://127.0.0.1:{httpd.server_address[1]}/", timeout=2).post(b"{}")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_fail_stopped_centre_makes_a_voucher_not_a_refusal(tmp_path, served_centre):
    """The counter's transport answers CENTRE_UNAVAILABLE (a centre that fail-stopped): the sale ends in cash
    against a voucher, never ``refused``; once the centre is back, the voucher settles."""
    counter = make_counter(served_centre.url, tmp_path / "t.db", PHARMACY, resend_for=0.2)
    counter.sign_in()
    real = counter.messenger.transport

    class FailStopped:
        def post(self, body: bytes) -> dict:
            return {"infcode": -1, "err_msg": "CENTRE_UNAVAILABLE: the journal failed: disk full", "output": {}}

    counter.messenger.transport = FailStopped()
    receipt = counter.sell(Identity("02", default_registry().identities[employee(9)].certno), ITEMS)
    assert receipt.kind == "deferred" and receipt.voucher, receipt
    counter.messenger.transport = real
    assert counter.settle_voucher(receipt.voucher).kind == "refund"
