"""The core kernel's batch settlement against the bare memory-access loop (issue 2).

The kernel settles a generated stream with all its outputs; the yardstick is ``balance -= amount`` on the
balance field of the same 64-byte state records (``_core.bare_debit``), the memory-access limit of any
kernel that touches every person's record once a bill. State is reset in place between rounds, so every
round settles the same stream from the same starting state; result buffers are allocated once.
"""

from __future__ import annotations

import gc
from typing import Any, Literal

import numpy as np

from ...engine import Population, Settler
from ...engine.backends import core_module
from ...engine.columns import LINE_COLUMNS, N_COLUMNS, NARROW_COLUMNS
from ...engine.state import STATE_DTYPE
from ...policy import load_default_policy
from ...sim import generate_bills
from . import LayerResult, LayerSkipped, Size, ratio
from .timing import median, rounds

TITLE = "core kernel, batch"
NOT_BUILT = "the compiled kernel is not built (python setup.py build_ext --inplace)"


class KernelWorld:
    """A population, a core Settler, a stream of bills over it and the buffers its rounds write to."""

    def __init__(self, n_persons: int, persons: Literal["uniform", "zipf"], n_bills: int) -> None:
        gc.collect()
        policy = load_default_policy()
        self.key = (f"{n_persons:,} persons", persons)
        self.population = Population.generate(policy, n_persons, seed=1, with_psn_nos=False)
        self.settler = Settler(policy, self.population, engine="core")
        self.stream = generate_bills(self.settler.compiled, self.population, n_bills, seed=2, persons=persons, days=28)
        self.batch = self.stream.batch
        self.n = n_bills
        self.out = np.zeros((n_bills, N_COLUMNS), np.int64)
        self.line_out = np.zeros((len(self.batch.item), len(LINE_COLUMNS)), np.int64)
        self.narrow_out = np.zeros((n_bills, len(NARROW_COLUMNS)), np.int64)
        fees = (self.batch.pric * self.batch.cnt + 500_000) // 1_000_000
        self.amount = np.add.reduceat(fees, self.batch.line_start[:-1])
        self.dense_balance = self.population.balances.copy()

    def settle_all_outputs(self) -> None:
        """One round of the kernel with every output (bills and lines)."""
        self.settler.run_batch(self.batch, validate=False, out=self.out, line_out=self.line_out)

    def settle_totals(self) -> None:
        """One round of the kernel narrowed to the totals."""
        self.settler.run_batch(self.batch, validate=False, outputs="totals", out=self.narrow_out)

    def bare_record_loop(self) -> None:
        """balance -= amount on the balance field of the state records (the kernel's memory-access limit)."""
        engine: Any = self.settler.engine  # the core's: its state records
        balances = engine.state.view(np.int64)  # 8 int64 per record; balance is the first
        _kernel().bare_debit(balances, self.batch.person, self.amount, STATE_DTYPE.itemsize // 8)

    def bare_dense_loop(self) -> None:
        """The same loop over a dense balance array (no record stride)."""
        _kernel().bare_debit(self.dense_balance, self.batch.person, self.amount, 1)


def _kernel() -> Any:
    core = core_module()
    if core is None:
        raise LayerSkipped(NOT_BUILT)
    return core


def measure(size: Size) -> LayerResult:
    """Bills/s of the kernel (best round) and its median round, against the bare loop's bills/s."""
    if core_module() is None:
        raise LayerSkipped(NOT_BUILT)
    n_persons, n_bills = size.n(10_000_000, 1_000_000, 1_000), size.n(10_000_000, 1_000_000, 1_000)
    n_rounds = 3
    world = KernelWorld(n_persons, "uniform", n_bills)
    reset = world.settler.engine.reset
    core = rounds(world.settle_all_outputs, n_rounds, setup=reset)
    bare = rounds(world.bare_record_loop, n_rounds, setup=reset)
    throughput, yardstick = n_bills / min(core), n_bills / min(bare)
    return LayerResult(
        layer="kernel",
        title=TITLE,
        throughput=throughput,
        throughput_unit="bills/s",
        latency_ms=median(core) * 1e3,
        latency_kind=f"median round of {n_bills:,} bills",
        yardstick="bare memory-access loop (balance -= amount on the state records)",
        yardstick_throughput=yardstick,
        yardstick_unit="bills/s",
        ratio=ratio(throughput, yardstick),
        details={"persons": n_persons, "bills": n_bills, "rounds": n_rounds, "persons_drawn": "uniform"},
    )
