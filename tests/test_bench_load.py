"""`medsettle bench load` and `bench compare` (issue 18, docs/load.md): short, bounded runs of simulated
counters against an embedded centre and a separately started one, a centre stopped for a second during an
open-loop run (the latency must show it: no coordinated omission), the report's files, and bad options as
one `Error:` line. Each run is a few seconds."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from centre_rig import ServedCentre
from medsettle.bench.flows import identity_failures
from medsettle.bench.mix import MixError, load_mix, make_mix
from medsettle.cli import main

if importlib.util.find_spec("locust") is None:  # found, not imported: Locust would patch this process with gevent
    pytest.skip("locust is not installed (pip install -e '.[test]')", allow_module_level=True)

COUNTERS, SECONDS, RATE = "20", "3", "30"


def bench(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:  # ok-float: seconds
    return subprocess.run(
        [sys.executable, "-m", "medsettle", "bench", *args], capture_output=True, text=True, timeout=timeout
    )


def plausible(out: Path) -> dict:
    """The run's files exist and its figures are those of a healthy short run."""
    result = json.loads((out / "result.json").read_text())
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "transactions.csv").read_text().startswith("transaction,requests,failures")
    assert (out / "seconds.csv").read_text().startswith("second,answers,errors")
    assert result["throughput"]["bills"] > 0 and result["throughput"]["bills_failed"] == 0, result["errors"]
    assert result["errors"] == {}
    assert result["answers_checked"]["settlements"] > 0
    assert result["answers_checked"]["identity_failures"] == 0, result["answers_checked"]
    latency = result["latency_ms"]
    assert {"9001", "1101", "2102"} <= set(latency), sorted(latency)
    assert latency["9001"]["requests"] == int(COUNTERS)
    for row in latency.values():
        assert row["p50_ms"] <= row["p99_ms"] <= row["p99.9_ms"] and row["max_ms"] > 0
    assert result["driver"]["lag_p99_ms"] is not None and result["seconds"]
    return result


@pytest.fixture(scope="module")
def embedded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("load") / "embedded"
    r = bench("load", "--counters", COUNTERS, "--duration", SECONDS, "--rate", RATE, "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "embedded centre: http://127.0.0.1:" in r.stderr
    assert "answers/s" in r.stderr and "p99" in r.stderr  # the live line
    assert "answers checked:" in r.stdout and str(out / "report.png") in r.stdout
    return out


def test_a_run_against_an_embedded_centre_writes_plausible_figures(embedded_run: Path) -> None:
    result = plausible(embedded_run)
    assert result["parameters"]["centre"] == "embedded" and result["parameters"]["loop"] == "open"


@pytest.fixture(scope="module")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("load") / "served"
    with ServedCentre(tmp_path_factory.mktemp("centre")) as centre:
        r = bench(
            "load", "--counters", COUNTERS, "--duration", SECONDS, "--closed", "--workers", "2",
            "--centre", centre.url, "--credentials", str(centre.credentials_file), "--out", str(out),
        )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_a_closed_loop_on_two_workers_against_a_separate_centre(served_run: Path) -> None:
    result = plausible(served_run)
    assert result["parameters"]["loop"] == "closed" and result["parameters"]["workers"] == 2
    assert result["driver"]["processes"] == 2


def test_a_centre_stopped_for_a_second_shows_in_the_maximum_latency(tmp_path: Path) -> None:
    out = tmp_path / "stopped"
    with ServedCentre(tmp_path / "centre") as centre:
        # Busy enough that a request is in flight, or queued behind the stop, when the centre stops.
        args = ["load", "--counters", "40", "--duration", "4", "--rate", "100", "--centre", centre.url]
        args += ["--credentials", str(centre.credentials_file), "--out", str(out)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "medsettle", "bench", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # the first live line: bills are arriving
                if "answers/s" in line:
                    break
            os.kill(centre.proc.pid, signal.SIGSTOP)
            time.sleep(1.0)
            os.kill(centre.proc.pid, signal.SIGCONT)
            rest = proc.stderr.read()
            assert proc.wait(timeout=60) == 0, rest[-3000:]
        finally:
            os.kill(centre.proc.pid, signal.SIGCONT)
            if proc.poll() is None:
                proc.kill()
    result = json.loads((out / "result.json").read_text())
    assert result["latency_ms"]["all"]["max_ms"] >= 1000, result["latency_ms"]["all"]
    assert max(row["max_ms"] or 0 for row in result["seconds"]) >= 1000
    assert result["answers_checked"]["identity_failures"] == 0


def test_compare_prints_the_two_runs_side_by_side_with_ratios(embedded_run: Path, served_run: Path) -> None:
    r = bench("compare", str(embedded_run / "result.json"), str(served_run / "result.json"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("A: 20 counters, open loop 30 bills/s") and lines[1].startswith("B: 20 counters, closed")
    bills = next(line for line in lines if line.startswith("bills/s"))
    assert bills.rstrip().endswith("x"), bills
    assert any(line.startswith("2102 p99_ms") for line in lines)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["load", "--counters", "0"], ["--counters", "0"]),
        (["load", "--duration", "abc"], ["--duration", "abc"]),
        (["load", "--rate", "5", "--closed"], ["--rate", "--closed"]),
        (["load", "--rate", "-1"], ["--rate"]),
        (["load", "--credentials", "x.toml"], ["--credentials"]),
        (["load", "--centre", "ftp://example"], ["--centre", "ftp://example"]),
        (["load", "--mix", "{tmp}/none.toml"], ["--mix", "no such file"]),
        (["load", "--mix", "{tmp}/bad.toml"], ["--mix", "unknown flow 'dancing'"]),
        (["load", "--flows", "{tmp}/broken.py"], ["--flows", "ZeroDivisionError"]),
        (["load", "--workers", "two"], ["--workers"]),
        (["load", "--no-such-option"], ["--no-such-option"]),
        (["compare", "{tmp}/bad.toml", "{tmp}/bad.toml"], ["bad.toml", "not a load run"]),
        (["compare", "{tmp}/a.json"], ["B.json"]),
    ],
)
def test_bad_options_are_one_error_line(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[mix]\ndancing = 3\n")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    r = CliRunner().invoke(main, ["bench", *(a.format(tmp=tmp_path) for a in args)])  # in this process: quick
    assert "locust" not in sys.modules, "a bad option must be refused before the load driver is imported"
    lines = r.stderr.splitlines()
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("command", [[], ["load"], ["compare"]])
def test_every_bench_command_has_help(command: list[str]) -> None:
    r = CliRunner().invoke(main, ["bench", *command, "--help"])
    assert r.exit_code == 0 and "Usage:" in r.stdout, r.output


def test_medsettle_itself_never_imports_locust() -> None:
    code = "import sys, medsettle.cli; assert not {'locust', 'gevent'} & set(sys.modules), 'patched'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_identities_are_checked_exactly() -> None:
    ok = {
        "medfee_sumamt": Decimal("59.04"), "fulamt_ownpay_amt": Decimal("50.00"), "overlmt_selfpay": Decimal("0"),
        "preselfpay_amt": Decimal("0"), "inscp_scp_amt": Decimal("9.04"), "fund_pay_sumamt": Decimal("0.00"),
        "psn_part_amt": Decimal("59.04"), "hosp_part_amt": Decimal("0"), "acct_pay": Decimal("9.04"),
        "psn_cash_pay": Decimal("50.00"), "hifp_pay": 0, "hifob_pay": 0, "hifmi_pay": 0, "cvlserv_pay": 0,
        "hifes_pay": 0, "maf_pay": 0, "oth_pay": 0,
    }  # fmt: skip
    assert identity_failures(ok) == []
    assert identity_failures({**ok, "psn_cash_pay": Decimal("50.01")}) == [
        "psn_part_amt 59.04 != acct_pay + psn_cash_pay 59.05"
    ]
    assert identity_failures({k: v for k, v in ok.items() if k != "maf_pay"}) == [
        "fund_pay_sumamt: missing or not a number"
    ]


def test_the_default_mix_and_a_mix_file(tmp_path: Path) -> None:
    mix = load_mix(None)
    assert abs(sum(mix.shares.values()) - 1) < 1e-9  # ok-float: shares
    assert mix.counters(20) == {"pharmacy": 11, "hospital": 9}
    (tmp_path / "m.toml").write_text("[mix]\npharmacy_sale = 3\noutpatient_visit = 1\n")
    assert load_mix(tmp_path / "m.toml").counters(4) == {"pharmacy": 3, "hospital": 1}
    with pytest.raises(MixError, match="at least 2 counters"):
        make_mix({"pharmacy_sale": 1, "inpatient_stay": 1}).counters(1)
    with pytest.raises(MixError, match="non-negative"):
        make_mix({"pharmacy_sale": -1})


def test_the_embedded_centre_gets_enough_institutions_for_many_counters(tmp_path: Path) -> None:
    from medsettle.bench.centre import COUNTERS_PER_INSTITUTION, institutions_toml
    from medsettle.centre.institutions import load_institutions
    from medsettle.policy import load_default_policy

    regions = ["130100", "330300"]
    assert institutions_toml(regions, 200) is None  # the default five a region
    (tmp_path / "i.toml").write_text(institutions_toml(regions, 1000) or "")
    institutions, _ = load_institutions(tmp_path / "i.toml", load_default_policy())
    pharmacies = [i for i in institutions if i.tier == "pharmacy"]
    assert len(pharmacies) * COUNTERS_PER_INSTITUTION >= 1000 and len(institutions) == 2 * len(pharmacies)
    assert {"H13010000001", "P13010000002", "H33030000003"} <= {i.fixmedins_code for i in institutions}


def test_without_locust_bench_load_says_how_to_install_it() -> None:
    code = "import sys; sys.modules['locust'] = None\nfrom medsettle.cli import main\nmain(['bench', 'load'])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        "Error: bench load needs Locust (locust is not installed): pip install 'medsettle[load]'"
    ], r.stderr
