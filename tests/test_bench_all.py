"""``medsettle bench all`` (issue 18): every layer's two numbers, its yardstick and the ratio, as a table
and JSON; a layer whose parts are missing is skipped with the reason; bad options are one Error line.

The real command runs the cheap layers at a small scale (seconds); the centre runs for a second without
pgbench (its yardstick, which takes both cores) and is driven into its skip path without wrk; the card only
into its skip path (it would start a pcscd, and only one can run on a machine).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from medsettle.bench.layers import card, http, kernel, postgres
from medsettle.cli.bench import bench

CHEAP = ["kernel", "single", "settle", "sim"]


def test_the_cheap_layers_measured_with_their_yardsticks(tmp_path):
    out = tmp_path / "all.json"
    command = [sys.executable, "-m", "medsettle", "bench", "all", "--quick", "--scale", "0.05"]
    proc = subprocess.run(
        [*command, "--only", ",".join(CHEAP), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=170,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    document = json.loads(out.read_text())
    assert document["quick"] is True and document["format"] == "medsettle-bench-all/1"
    assert list(document["layers"]) == CHEAP
    for name, entry in document["layers"].items():
        assert entry["status"] == "measured", entry
        assert entry["throughput"] > 0 and entry["latency_ms"] > 0, entry
        assert entry["yardstick"] and entry["yardstick_throughput"] > 0, entry
        assert entry["ratio"] == pytest.approx(entry["throughput"] / entry["yardstick_throughput"]), name
        assert entry["throughput_unit"] and entry["latency_kind"]
    # a progress line before and after each layer, on stderr; the table and the file's path on stdout
    for n, name in enumerate(CHEAP, 1):
        assert f"[{n}/4] {name}: " in proc.stderr
    rows = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert set(CHEAP) <= rows
    assert f"figures: {out}" in proc.stdout
    assert list(tmp_path.iterdir()) == [out]  # nothing else written where it ran


def test_missing_parts_are_skipped_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(card, "unavailable", lambda: "no PC/SC stack: pcscd is not installed (test)")
    monkeypatch.setattr(http, "find_wrk", lambda: None)
    out = tmp_path / "skips.json"
    result = CliRunner().invoke(bench, ["all", "--quick", "--only", "card,centre", "--json", str(out)])
    assert result.exit_code == 0, result.output
    layers = json.loads(out.read_text())["layers"]
    assert list(layers) == ["centre", "card"]  # the run's order, whatever --only's
    assert layers["card"]["status"] == "skipped"
    assert layers["card"]["reason"] == "no PC/SC stack: pcscd is not installed (test)"
    assert layers["centre"]["status"] == "skipped" and layers["centre"]["reason"] == http.WRK_MISSING
    assert "card: skipped: no PC/SC stack" in result.output
    assert "centre: skipped: wrk is not installed" in result.output


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_the_centre_without_postgresql_is_measured_without_its_yardstick(tmp_path, monkeypatch):
    monkeypatch.setattr(postgres, "missing", lambda: "PostgreSQL is not installed (test)")
    out = tmp_path / "centre.json"
    result = CliRunner().invoke(bench, ["all", "--quick", "--scale", "0.1", "--only", "centre", "--json", str(out)])
    assert result.exit_code == 0, result.output
    entry = json.loads(out.read_text())["layers"]["centre"]
    assert entry["status"] == "measured", entry
    assert entry["throughput"] > 0 and entry["latency_ms"] > 0 and entry["details"]["server_cpu_ms"] > 0
    assert entry["yardstick_throughput"] is None and entry["ratio"] is None
    assert entry["note"].startswith("measured without its yardstick: PostgreSQL is not installed (test)")
    row = next(line for line in result.output.splitlines() if line.startswith("centre "))
    assert row.split()[-2:] == ["-", "-"]  # no yardstick, no ratio


def test_a_failing_layer_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(size):
        raise RuntimeError("the kernel broke (test)")

    monkeypatch.setattr(kernel, "measure", broken)
    monkeypatch.setattr(card, "unavailable", lambda: "not here (test)")
    out = tmp_path / "failed.json"
    result = CliRunner().invoke(bench, ["all", "--only", "kernel,card", "--json", str(out)])
    assert result.exit_code == 1
    layers = json.loads(out.read_text())["layers"]
    assert layers["kernel"]["status"] == "failed" and "the kernel broke (test)" in layers["kernel"]["reason"]
    assert layers["card"]["status"] == "skipped"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--only", "kernel,nope"], "Error: --only kernel,nope: no layer nope; the layers: kernel, single, settle,"),
        (["--only", ","], "Error: --only ,: no layer (none given)"),
        (["--json", "/nonexistent-dir/x.json"], "Error: --json /nonexistent-dir/x.json: no directory"),
        (["--scale", "0"], "Error: Invalid value for '--scale'"),
    ],
)
def test_bad_options_are_one_error_line(options, message):
    proc = subprocess.run(
        [sys.executable, "-m", "medsettle", "bench", "all", *options], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
