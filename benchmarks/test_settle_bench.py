"""Batch settlement throughput (issue 2): the Cython core with all outputs and narrowed to totals, the
reference engine on a sample, and a bare ``balance[person] -= amount`` loop over the same stream.

    python -m pytest benchmarks/ --benchmark-only                          # 10^4, 10^6, 10^7 persons
    MEDSETTLE_BENCH_100M=1 python -m pytest benchmarks/ --benchmark-only   # adds 10^8 persons (~8 GB of state)
    MEDSETTLE_BENCH_BILLS=1000000 ...                                      # a shorter stream

State is re-initialised in place between rounds, so every round settles the same stream from the same
starting state; result buffers are allocated once and reused. The world and the timed calls are
medsettle.bench.layers.kernel's (what `medsettle bench all` measures).
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

from figures import record
from medsettle.bench.layers.kernel import KernelWorld as World
from medsettle.engine import Settler
from medsettle.policy import load_default_policy

SIZES = [10_000, 1_000_000, 10_000_000] + ([100_000_000] if os.environ.get("MEDSETTLE_BENCH_100M") == "1" else [])
REFERENCE_SAMPLE = 20_000
ROUNDS = 3

_POLICY = load_default_policy()


@pytest.fixture(
    scope="module", params=[(p, d) for p in SIZES for d in ("uniform", "zipf")], ids=lambda x: f"{x[0]}-{x[1]}"
)
def world(request, n_bills):
    w = World(request.param[0], request.param[1], n_bills)
    yield w
    del w
    gc.collect()


def test_core_all_outputs(benchmark, world):
    benchmark.pedantic(world.settle_all_outputs, setup=world.settler.engine.reset, rounds=ROUNDS, iterations=1)
    record(world.key, "core_full", world.n, benchmark)
    assert np.count_nonzero(world.out[:, 0] == 0) > 0.9 * world.n


def test_core_totals_only(benchmark, world):
    benchmark.pedantic(world.settle_totals, setup=world.settler.engine.reset, rounds=ROUNDS, iterations=1)
    record(world.key, "core_totals", world.n, benchmark)


def test_bare_loop_on_the_state_records(benchmark, world):
    """balance -= amount on the balance field of the 64-byte records: the kernel's memory-access limit."""
    benchmark.pedantic(world.bare_record_loop, setup=world.settler.engine.reset, rounds=ROUNDS, iterations=1)
    record(world.key, "bare_record", world.n, benchmark)


def test_bare_loop_on_a_dense_balance_array(benchmark, world):
    benchmark.pedantic(world.bare_dense_loop, rounds=ROUNDS, iterations=1)
    record(world.key, "bare_dense", world.n, benchmark)


def test_vectorised_validation(benchmark, world):
    benchmark.pedantic(
        world.batch.validate, args=(world.settler.compiled, len(world.population)), rounds=ROUNDS, iterations=1
    )
    record(world.key, "validate", world.n, benchmark)


def test_reference_engine_on_a_sample(benchmark, world):
    if world.key[0] != f"{SIZES[-1]:,} persons":
        pytest.skip("the reference engine is measured once, on the largest population")
    ref = Settler(_POLICY, world.population, engine="reference", compiled=world.settler.compiled)
    n = min(REFERENCE_SAMPLE, world.n)
    part = world.batch.slice(0, n)
    benchmark.pedantic(
        ref.run_batch, args=(part,), kwargs={"validate": False}, setup=ref.engine.reset, rounds=1, iterations=1
    )
    record(world.key, "reference_sample", n, benchmark)
