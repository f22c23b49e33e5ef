"""The pre-validated single-bill fast path, on either engine.

For load testers and counters that settle one bill at a time and have already resolved their indices
(person row, med type, tier, treatment region, catalogue items in force on the bill's date, as a
:class:`BillBatch` holds them). No pydantic, no batch to build: about a microsecond per bill on the core.
``settle`` returns the status (0 settled, else the refusal code of :data:`columns.REFUSALS`); the results
are in ``out`` (one row of :data:`columns.COLUMNS`) and ``lines[:n]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .bills import NO_VALUE, BillBatch
from .columns import LINE_COLUMNS, N_COLUMNS
from .core import CoreEngine
from .reference import ReferenceEngine


class CoreFastPath:
    def __init__(self, engine: CoreEngine):
        self._session = engine._core.Session(engine._policy, engine.population.attrs, engine.state,
                                             len(engine.compiled.region_codes))
        self.settle = self._session.settle  # bound C method: no Python frame in between
        self.out: np.ndarray = self._session.out
        self.lines: np.ndarray = self._session.lines


class ReferenceFastPath:
    """The same calls on the reference engine (a batch of one underneath)."""

    def __init__(self, engine: ReferenceEngine):
        self._engine = engine
        self.out = np.zeros(N_COLUMNS, np.int64)
        self.lines = np.zeros((1000, len(LINE_COLUMNS)), np.int64)

    def settle(self, person: int, day: int, med_type: int, tier: int, treat_region: int, acct_flag: int, adm: int,
               saf_cash: int, items: Sequence[int], prices: Sequence[int], cnts: Sequence[int],
               apprs: Sequence[int], presettle: bool = False) -> int:
        n = len(items)
        batch = BillBatch.from_columns(
            person=[person], day=[day], med_type=[med_type], tier=[tier], treat_region=[treat_region],
            acct_flag=[acct_flag], adm=[adm], saf_cash=[saf_cash], caller_medfee=[NO_VALUE],
            line_start=[0, n], item=items, pric=prices, cnt=cnts, appr=apprs)
        batch.validate(self._engine.compiled, len(self._engine.population))
        out, lines = self._engine.run(batch, presettle=presettle)
        self.out[:] = out[0]
        self.lines[:n] = lines
        return int(out[0, 0])


def fast_path(engine: CoreEngine | ReferenceEngine) -> CoreFastPath | ReferenceFastPath:
    return CoreFastPath(engine) if isinstance(engine, CoreEngine) else ReferenceFastPath(engine)
