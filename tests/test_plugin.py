"""medsettle's pytest plugin (medsettle.testing, docs/testing.md) as a user meets it: a suite of their own run
by pytest in a subprocess with the plugin loaded (a sale through a counter against the centre, a lost answer
resent and settled once, a card pulled mid-sale, the clock), the example module of docs/ copied and run, the
fault proxy's controls against a small upstream of its own, and the plugin's import staying light (it loads in
every pytest run of whoever installed medsettle)."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsettle.testing.proxy import FaultProxy

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = "medsettle.testing.plugin"


def run_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """pytest in a subprocess on the pytester directory, the plugin named with -p and nothing else
    autoloaded (so the run is the same whether or not the entry point is installed)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester.runpytest_subprocess("-p", PLUGIN, "-q", "-p", "no:cacheprovider", timeout=110)


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    """The plugin module brings in pytest and the standard library only: no numpy, no aiohttp, none of
    medsettle's centre, counter, engine, card or simulator parts."""
    code = f"import sys, json, {PLUGIN}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(out.stdout))
    heavy = ("numpy", "aiohttp", "pydantic", "click", "psycopg", "smartcard")
    ours = ("medsettle.centre", "medsettle.terminal", "medsettle.engine", "medsettle.hardware", "medsettle.readers",
            "medsettle.sim", "medsettle.policy", "medsettle._core", "medsettle._plain", "medsettle.cli")  # fmt: skip
    assert not [m for m in loaded if m.split(".")[0] in heavy or m.startswith(ours)]
    assert {m for m in loaded if m.startswith("medsettle")} == {"medsettle", "medsettle.testing", PLUGIN}


def test_the_plugin_is_registered_by_entry_point() -> None:
    """pyproject.toml declares it under pytest11; where the installed metadata has it, it names the module."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["entry-points"]["pytest11"] == {"medsettle": PLUGIN}
    from importlib.metadata import entry_points

    installed = [ep for ep in entry_points(group="pytest11") if ep.name == "medsettle"]
    assert all(ep.value == PLUGIN for ep in installed)


def test_pytest_loads_the_plugin_by_its_entry_point(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the entry point installed (here the pyproject's pytest11 table in a distribution's metadata on
    PYTHONPATH, as an install writes it) pytest loads the plugin unasked: a test uses a fixture and passes."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    dist = pytester.mkdir("site").joinpath("medsettle_probe-0.dist-info")
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: medsettle-probe\nVersion: 0\n", encoding="utf-8")
    lines = ["[pytest11]", *(f"{name} = {value}" for name, value in table["pytest11"].items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(dist.parent))
    pytester.makepyfile(test_clock="def test_clock(medsettle_clock):\n    medsettle_clock.advance(1)\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)


def test_the_example_in_docs_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/examples/test_with_medsettle.py, copied into a suite of its own as a user would, passes."""
    shutil.copy(ROOT / "docs" / "examples" / "test_with_medsettle.py", pytester.path / "test_with_medsettle.py")
    result = run_suite(pytester, monkeypatch)
    result.assert_outcomes(passed=4)


def test_the_examples_of_docs_testing_md_pass(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/testing.md's Python blocks: the module-scoped centre it shows as a conftest.py, the others in one
    module that uses it (so one centre serves them all)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "testing.md").read_text(encoding="utf-8"), re.S)
    shared = [block for block in blocks if 'scope="module"' in block]
    assert len(shared) == 1 and len(blocks) >= 5
    pytester.makeconftest(textwrap.dedent(shared[0]))
    pytester.makepyfile(test_docs_testing_md="\n\n".join(b for b in blocks if b not in shared))
    result = run_suite(pytester, monkeypatch)
    result.assert_outcomes(passed=len(blocks) - 1)


SUITE = '''
import datetime as dt

import pytest

from medsettle.readers import CardMute, CardRemoved
from medsettle.testing.centre import RunningCentre
from medsettle.terminal import Identity

PHARMACY, OTHER_PHARMACY = "P13010000001", "P13010000002"


@pytest.fixture(scope="module")
def medsettle_centre(tmp_path_factory):
    """One centre for the module, as docs/testing.md shows (each test its own institution)."""
    with RunningCentre(tmp_path_factory.mktemp("centre")) as centre:
        yield centre


def test_a_lost_answer_is_resent_and_settled_once(medsettle_centre, medsettle_counter, medsettle_faults):
    patient = medsettle_centre.person()
    counter = medsettle_counter(PHARMACY, via_proxy=True)
    counter.sign_in()
    medsettle_faults.drop("2102", times=1)
    receipt = counter.sell(Identity("02", patient.certno), medsettle_centre.bill(2))
    assert receipt.kind == "sale" and receipt.setl_id
    assert [e.outcome for e in medsettle_faults.events if e.infno == "2102"] == ["dropped answer", "forwarded"]
    day = counter.now().date().isoformat()
    assert [s["setl_id"] for s in medsettle_centre.settlements(PHARMACY, day)] == [receipt.setl_id]
    assert counter.reconcile(detail=True)["clean"]


def test_a_card_pulled_mid_sale_sends_no_settlement(medsettle_centre, medsettle_counter, medsettle_card):
    patient = medsettle_centre.person(index=1)
    counter = medsettle_counter(OTHER_PHARMACY, reader=medsettle_card.reader)
    counter.sign_in()
    card = medsettle_card.insert(patient.psn_no)
    identity = counter.read_card(pin="123456")
    assert identity.mdtrt_cert_type == "03" and identity.certno == patient.certno
    medsettle_card.pull()
    with pytest.raises(CardRemoved):
        counter.sell(identity, medsettle_centre.bill())
    assert medsettle_centre.settlements(OTHER_PHARMACY, counter.now().date().isoformat()) == []
    medsettle_card.insert(card)
    medsettle_card.fault(mute=True)
    with pytest.raises(CardMute):
        counter.read_card(pin="123456")
    medsettle_card.repair()
    assert counter.sell(counter.read_card(pin="123456"), medsettle_centre.bill()).kind == "sale"


def test_the_clock_moves_only_when_advanced(medsettle_clock):
    start = medsettle_clock.now()
    assert medsettle_clock.now() == start
    medsettle_clock.advance(90)
    medsettle_clock.advance_to(start + dt.timedelta(days=1))
    assert medsettle_clock.now() - start == dt.timedelta(days=1) and medsettle_clock.monotonic() == 86400


def test_the_admin_api_and_signed_posts(medsettle_centre):
    patient = medsettle_centre.person()
    record = medsettle_centre.admin("card_record", psn_no=patient.psn_no)
    assert record["ok"] and record["certno"] == patient.certno
    assert "P13010000001" in medsettle_centre.credentials.institutions
    unknown = medsettle_centre.admin("card_record", psn_no="nobody")
    assert not unknown.get("ok")
'''


def test_the_fixtures_in_a_users_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost 2102 answer is resent and settled once; a card pulled between reading and settling raises
    CardRemoved and nothing reaches the centre (docs/card.md); a mute card, repaired; the clock; the admin
    API; and a module-scoped centre overriding the function-scoped one, as docs/testing.md shows."""
    pytester.makepyfile(test_users_suite=SUITE)
    result = run_suite(pytester, monkeypatch)
    result.assert_outcomes(passed=4)


# -- the fault proxy on its own, in front of a small upstream --------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every POST with the JSON body it got, and counts them."""

    received: list[bytes] = []
    ports: list[int] = []  # the port of the upstream that answered each
    protocol_version = "HTTP/1.1"  # answers keep the connection open unless asked to close

    def do_POST(self) -> None:  # http.server calls it by this name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(body)
        self.ports.append(self.server.server_address[1])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    """An upstream on 127.0.0.1 that echoes; its URL."""
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{upstream.server_address[1]}/"
    finally:
        upstream.shutdown()
        upstream.server_close()


@pytest.fixture()
def proxy() -> Iterator[FaultProxy]:
    _Echo.received, _Echo.ports = [], []
    with echo_server() as url, FaultProxy(url) as fault_proxy:
        yield fault_proxy


def post(url: str, infno: str, timeout: float = 2.0) -> dict:  # ok-float: seconds
    body = json.dumps({"infno": infno}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=timeout) as answer:
        return json.loads(answer.read())


def test_the_proxy_drops_requests_and_answers_by_infno(proxy: FaultProxy) -> None:
    assert post(proxy.url, "1101") == {"infno": "1101"}
    proxy.drop("2102", what="request", times=1)
    proxy.drop("2101", what="answer")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        post(proxy.url, "2102")
    assert len(_Echo.received) == 1  # the dropped request never reached the upstream
    assert post(proxy.url, "2102") == {"infno": "2102"}  # only once
    for _ in range(2):
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            post(proxy.url, "2101")
    assert len(_Echo.received) == 4  # both 2101s arrived; their answers were lost
    assert proxy.count("dropped request") == 1 and proxy.count("dropped answer", "2101") == 2 and proxy.dropped == 3
    proxy.heal()
    assert post(proxy.url, "2101") == {"infno": "2101"}


def test_the_proxy_delays_resets_and_blackholes_until_healed(proxy: FaultProxy) -> None:
    proxy.delay(0.3)
    started = time.monotonic()
    assert post(proxy.url, "1101") == {"infno": "1101"}
    assert time.monotonic() - started >= 0.3
    proxy.heal()
    proxy.reset()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        post(proxy.url, "1101")
    proxy.heal()
    proxy.blackhole()
    with pytest.raises((urllib.error.URLError, TimeoutError, socket.timeout, OSError)):
        post(proxy.url, "1101", timeout=0.5)
    assert proxy.count("reset") == 1 and proxy.count("blackholed") == 1
    proxy.heal()
    assert post(proxy.url, "1101") == {"infno": "1101"}


def test_the_proxy_keeps_a_client_connection_alive_and_follows_a_restarted_upstream(proxy: FaultProxy) -> None:
    """Two exchanges on one kept-alive client connection; then the upstream moves (a centre restarted on
    another port) and ``retarget`` follows it while clients keep the proxy's address."""
    host, port = proxy.url.split("//")[1].strip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for infno in ("1101", "2101"):
            conn.request("POST", "/", body=json.dumps({"infno": infno}).encode())
            assert json.loads(conn.getresponse().read()) == {"infno": infno}
    finally:
        conn.close()
    assert proxy.connections == 1 and proxy.count("forwarded") == 2
    with echo_server() as moved:
        proxy.retarget(moved)
        assert post(proxy.url, "2102") == {"infno": "2102"}
        assert _Echo.ports[-1] == int(moved.rsplit(":", 1)[1].strip("/")) != _Echo.ports[0]
