"""Single-bill throughput (issue 2): the pre-validated fast path and the validated (pydantic) path.

Both settle bills one call at a time against 10^6 persons on the core; the fast path takes resolved
indices, the validated path takes platform-shaped dicts (strings for amounts, as counters send them).
"""

from __future__ import annotations

import numpy as np
import pytest

from figures import record
from medsettle.engine import Population, Settler
from medsettle.policy import load_default_policy
from medsettle.sim import generate_bills

N_PERSONS = 1_000_000
N_FAST = 200_000
N_VALIDATED = 20_000


@pytest.fixture(scope="module")
def world():
    policy = load_default_policy()
    population = Population.generate(policy, N_PERSONS, seed=1)
    settler = Settler(policy, population, engine="core")
    stream = generate_bills(settler.compiled, population, N_FAST, seed=5, days=28)
    b = stream.batch
    calls = []
    for i in range(N_FAST):
        x, y = int(b.line_start[i]), int(b.line_start[i + 1])
        calls.append(
            (
                int(b.person[i]),
                int(b.day[i]),
                int(b.med_type[i]),
                int(b.tier[i]),
                int(b.treat_region[i]),
                int(b.acct_flag[i]),
                int(b.adm[i]),
                -1,
                b.item[x:y].tolist(),
                b.pric[x:y].tolist(),
                b.cnt[x:y].tolist(),
                b.appr[x:y].tolist(),
            )
        )
    dicts = [stream.bill_dict(i) for i in range(N_VALIDATED)]
    return settler, calls, dicts


def test_single_bill_fast_path(benchmark, world):
    settler, calls, _ = world
    fast = settler.fast_path()

    def run():
        settle = fast.settle
        for args in calls:
            settle(*args)

    benchmark.pedantic(run, setup=settler.engine.reset, rounds=3, iterations=1)
    record((f"{N_PERSONS:,} persons", "single"), "single_fast", len(calls), benchmark)
    assert np.count_nonzero(settler.engine.state["acc_year"]) > 0


def test_single_bill_validated_path(benchmark, world):
    settler, _, dicts = world

    def run():
        for d in dicts:
            settler.settle(d)

    def reset():
        settler.engine.reset()
        settler.records.clear()

    benchmark.pedantic(run, setup=reset, rounds=3, iterations=1)
    record((f"{N_PERSONS:,} persons", "single"), "single_validated", len(dicts), benchmark)
