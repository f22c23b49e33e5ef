"""Single-bill throughput (issue 2): the pre-validated fast path and the validated (pydantic) path.

Both settle bills one call at a time against 10^6 persons on the core; the fast path takes resolved
indices, the validated path takes platform-shaped dicts (strings for amounts, as counters send them).
"""

from __future__ import annotations

import numpy as np
import pytest

from figures import record
from medsettle.bench.layers.single import SingleWorld

N_PERSONS = 1_000_000
N_FAST = 200_000
N_VALIDATED = 20_000


@pytest.fixture(scope="module")
def world():
    """medsettle.bench.layers.single's world (what `medsettle bench all` measures)."""
    return SingleWorld(N_PERSONS, N_FAST, N_VALIDATED)


def test_single_bill_fast_path(benchmark, world):
    benchmark.pedantic(world.run_fast, setup=world.settler.engine.reset, rounds=3, iterations=1)
    record((f"{N_PERSONS:,} persons", "single"), "single_fast", len(world.calls), benchmark)
    assert np.count_nonzero(world.settler.engine.state["acc_year"]) > 0


def test_single_bill_validated_path(benchmark, world):
    benchmark.pedantic(world.run_validated, setup=world.reset, rounds=3, iterations=1)
    record((f"{N_PERSONS:,} persons", "single"), "single_validated", len(world.dicts), benchmark)
