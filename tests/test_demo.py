"""`medsettle demo`: the simulated day at a hospital and a pharmacy (its timeline, summary table and chart), on
both engines and the same for a seed; `--batch` is the batch demo as it always was."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from medsettle.cli.demo import demo
from medsettle.demo import play_day
from medsettle.demo.day import HOSPITAL, PHARMACY
from medsettle.sim.world import World

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "medsettle.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def days(world):
    """The default day of seed 0 on each engine, played once for the module."""
    return {engine: play_day(0, engine=engine, world=world) for engine in ("core", "reference")}


@pytest.mark.parametrize("engine", ["core", "reference"])
def test_the_day_has_its_troubles_and_ends_clean_on_each_engine(days, engine):
    day = days[engine]
    assert day.engine == engine
    said = [e.text for e in day.timeline]
    assert any(t.startswith("centre outage") for t in said) and any(t.startswith("the centre is back") for t in said)
    assert any("card reader fails" in t for t in said) and any("card reader is repaired" in t for t in said)
    assert any(t.startswith("pharmacy forwards its queue") for t in said)
    assert any("re-settles the outage's" in t for t in said) and any(
        "re-settles the reader failure's" in t for t in said
    )
    times = [e.at for e in day.timeline]
    assert times == sorted(times) and times[0].hour == 8 and times[-1].hour == 18
    assert day.vouchers["outage"] > 0 and day.vouchers["reader failure"] > 0
    assert day.resettled == sum(day.vouchers.values()) and day.manual_claims == 0
    assert day.provisional > 0 and day.forwarded == day.provisional and day.flagged == 0
    assert day.reconciled == {HOSPITAL: True, PHARMACY: True}
    assert day.balanced and day.hours_add_up and day.settlements == day.total.bills
    t = day.total
    assert t.medfee == t.fund + t.account + t.cash + t.institution


def test_both_engines_play_the_same_day(days):
    core, reference = days["core"], days["reference"]
    assert core.timeline == reference.timeline and core.hourly == reference.hourly
    assert core.totals == reference.totals


def test_a_seed_gives_the_same_day_and_another_seed_another(world, days):
    again = play_day(0, engine="core", world=world)
    assert again.timeline == days["core"].timeline and again.totals == days["core"].totals
    other = play_day(1, engine="core", world=world, patients={HOSPITAL: 60, PHARMACY: 40})
    assert other.totals != days["core"].totals


def test_the_command_prints_the_timeline_and_the_table_and_writes_the_chart_where_it_says(tmp_path):
    r = run("demo", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "engine: core" in out and "timeline (virtual time, Asia/Shanghai):" in out
    for said in ("10:05  centre outage", "14:20  pharmacy: the card reader fails", "reconciliation with the centre"):
        assert said in out
    assert "reconciliation (3201): clean at both counters" in out
    assert "check: medfee = fund + account + cash + institution on every settlement: yes" in out
    assert "check: the chart's fund and account by hour add up to the table's: yes" in out
    chart = tmp_path / "medsettle-demo.png"
    assert f"shaded: {chart}" in out
    assert chart.read_bytes()[:8] == PNG
    lines = out.splitlines()
    assert any(line.startswith("all ") for line in lines) and any(
        line.startswith(f"{HOSPITAL} hospital") for line in lines
    )


def test_chart_goes_where_asked_and_the_reference_engine_is_said(tmp_path):
    chart = tmp_path / "day.png"
    r = run("demo", "--engine", "reference", "--chart", str(chart), "--seed", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "engine: reference\n" in r.stdout and str(chart) in r.stdout
    assert chart.read_bytes()[:8] == PNG and not (tmp_path / "medsettle-demo.png").exists()


BATCH = """\
medsettle {version}: 2,000 bills of 2026-03-02 for 300 insured persons in 130100 石家庄市 (illustrative), 330300 温州市 (illustrative); engine: core
insured  med_type  bills      medfee       fund    account       cash  institution
----------------------------------------------------------------------------------
 130100        11    545   42,773.15   5,440.38  19,450.78  17,881.99         0.00
 130100        13     44    6,484.76   2,467.76     775.38   3,241.62         0.00
 130100        14     93    6,179.55     216.80   2,825.80   3,136.95         0.00
 130100        21     32    2,030.10       0.00   1,003.94   1,026.16         0.00
 130100        41    242   32,331.69   9,042.86  15,900.15   7,388.68         0.00
 330300        11    615   56,090.08  11,023.98  20,047.48  25,018.62         0.00
 330300        13     45    2,921.54     146.39   1,240.41   1,534.74         0.00
 330300        14     94   20,764.81   9,146.14   7,615.93   4,002.74         0.00
 330300        21     45    5,508.68   1,572.42   1,777.54   2,158.72         0.00
 330300        41    245   15,584.30   2,213.66   7,012.52   6,358.12         0.00
----------------------------------------------------------------------------------
    all            2,000  190,668.66  41,270.39  77,649.93  71,748.34         0.00
check: medfee = fund + account + cash + institution on every bill: yes
"""  # noqa: E501 - what the batch demo printed before the day came (0.1.0, e371311)


def test_batch_prints_todays_batch_demo(tmp_path):
    from medsettle import __version__

    r = run("demo", "--batch", "--bills", "2000", "--persons", "300", "--seed", "5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(BATCH.format(version=__version__) + "\n2,000 bills in ")
    assert r.stdout.rstrip().endswith("on the core engine") and "bills/s, validation included" in r.stdout
    assert not list(tmp_path.iterdir())  # no chart
    implied = run("demo", "--bills", "2000", "--persons", "300", "--seed", "5", cwd=tmp_path)
    assert implied.stdout.splitlines()[:-1] == r.stdout.splitlines()[:-1]  # all but the timing line


def test_the_day_s_options_are_refused_with_batch():
    for option in (["--chart", "x.png"], ["--pcsc"]):
        r = CliRunner().invoke(demo, ["--batch", *option])
        assert r.exit_code == 2 and f"Error: {option[0]} is the simulated day's" in r.output, r.output


def test_pcsc_without_pcscd_says_what_is_needed(monkeypatch):
    from medsettle.hardware import stack

    monkeypatch.setattr(stack, "pcscd_path", lambda: None)
    r = CliRunner().invoke(demo, ["--pcsc"])
    assert r.exit_code == 1, r.output
    assert "Error: STACK_ERROR: pcscd is not installed (apt-get install pcscd" in r.output


def test_a_chart_in_a_directory_that_is_not_there_is_refused_before_the_day(tmp_path):
    r = CliRunner().invoke(demo, ["--chart", str(tmp_path / "no" / "day.png")])
    assert r.exit_code == 2 and "Invalid value for --chart" in r.output and "no directory" in r.output
    assert "timeline" not in r.output
