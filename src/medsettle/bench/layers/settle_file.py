"""``medsettle settle`` on a file (issue 12): bills/s of the command, a real process reading a JSON-lines
file and writing to /dev/null, against the validated single-bill path (``Settler.settle(dict)``) on the
same bills in the same run.

The command's time includes starting up (imports, the policy, reading the persons file), measured as a run
on a file of one bill: the figure per bill leaves it out, as the validated path's does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from ...engine import Population, Settler
from ...policy import load_default_policy
from ...sim import generate_bills
from . import LayerResult, Size, ratio
from .timing import median, rounds

TITLE = "settle on a file"


def write_bills(population: Population, n: int, path: Path, seed: int) -> None:
    """n generated bills (28 days, uniform persons) as the JSON lines 'medsettle bills generate' writes."""
    compiled = Settler(load_default_policy(), population, engine="reference").compiled
    stream = generate_bills(compiled, population, n, seed=seed, days=28)
    with path.open("wb") as f:
        for start in range(0, n, 10_000):
            f.write(b"".join(orjson.dumps(stream.bill_dict(i)) + b"\n" for i in range(start, min(n, start + 10_000))))


def settle_command(persons: Path, bills: Path) -> list[str]:
    """The command line of ``medsettle settle`` on the core."""
    return [sys.executable, "-m", "medsettle", "settle", "--persons", str(persons), "--engine", "core", str(bills)]


def run_command(command: list[str]) -> None:
    """Run it, its answers to /dev/null."""
    with open(os.devnull, "wb") as sink:
        subprocess.run(command, stdout=sink, stderr=subprocess.PIPE, check=True, timeout=3600)


def timed(command: list[str]) -> float:  # ok-float: seconds
    """Seconds of one run of ``command``."""
    started = time.perf_counter()
    run_command(command)
    return time.perf_counter() - started


def peak_rss_kb(command: list[str]) -> int:
    """Peak RSS of ``command`` (kB): ru_maxrss of the children of a process that runs only it."""
    probe = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True, timeout=3600
    )
    return int(out.stdout.strip())


def validated_dicts(bills: Path, n: int) -> list[dict[str, object]]:
    """The first ``n`` bills of a file, as the validated path takes them."""
    with bills.open("rb") as f:
        return [orjson.loads(line) for line, _ in zip(f, range(n), strict=False)]


def settle_each(settler: Settler, dicts: list[dict[str, object]]) -> None:
    """One round of the validated path: every dict through ``Settler.settle``."""
    for d in dicts:
        settler.settle(d)


def reset_settler(settler: Settler) -> None:
    """The state as before the first bill, and no records kept."""
    settler.engine.reset()
    settler.records.clear()


def validated_seconds(settler: Settler, dicts: list[dict[str, object]], n_rounds: int) -> list[float]:
    """Seconds of each round of the validated path over ``dicts``, from the same state each time."""
    return rounds(lambda: settle_each(settler, dicts), n_rounds, setup=lambda: reset_settler(settler))


def measure(size: Size) -> LayerResult:
    """Bills/s of the command less starting up (best round) and its median run, against the validated path."""
    n_persons, n_bills = size.n(100_000, 20_000, 500), size.n(100_000, 20_000, 200)
    n_validated, n_rounds = min(n_bills, size.n(20_000, 5_000, 100)), 3 if not size.quick else 2
    policy = load_default_policy()
    with tempfile.TemporaryDirectory(prefix="medsettle-bench-settle-") as tmp:
        population = Population.generate(policy, n_persons, seed=1)
        persons, bills, one = Path(tmp) / "persons.csv", Path(tmp) / "bills.jsonl", Path(tmp) / "one.jsonl"
        population.to_csv(persons)
        write_bills(population, n_bills, bills, seed=5)
        one.write_bytes(bills.read_bytes().split(b"\n", 1)[0] + b"\n")
        settler = Settler(policy, population, engine="core")
        validated = validated_seconds(settler, validated_dicts(bills, n_validated), n_rounds)
        startup = min(timed(settle_command(persons, one)) for _ in range(n_rounds))
        runs = [timed(settle_command(persons, bills)) for _ in range(n_rounds)]
    per_bill = (n_bills - 1) / max(1e-9, min(runs) - startup)
    yardstick = n_validated / min(validated)
    return LayerResult(
        layer="settle",
        title=TITLE,
        throughput=per_bill,
        throughput_unit="bills/s",
        latency_ms=median(runs) * 1e3,
        latency_kind=f"median run on {n_bills:,} bills",
        yardstick="validated single-bill path on the same bills",
        yardstick_throughput=yardstick,
        yardstick_unit="bills/s",
        ratio=ratio(per_bill, yardstick),
        note=f"per bill, less starting up ({startup:.2f} s for a file of one bill)",
        details={
            "persons": n_persons,
            "bills": n_bills,
            "rounds": n_rounds,
            "startup_s": startup,
            "end_to_end_bills_per_s": n_bills / min(runs),
        },
    )
