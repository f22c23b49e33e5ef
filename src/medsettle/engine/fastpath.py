"""The pre-validated single-bill fast path, on either engine.

For load testers and counters that settle one bill at a time and have already resolved their indices
(person row, med type, tier, treatment region, catalogue items in force on the bill's date, as a
:class:`BillBatch` holds them). No pydantic, no batch to build: about a microsecond per bill on the core.
``settle`` returns the status (0 settled, else the refusal code of :data:`columns.REFUSALS`); the results
are in ``out`` (one row of :data:`columns.COLUMNS`) and ``lines[:n]``.

The validated path (``Settler.settle(dict)``) comes through here too: ``route`` resolves a bill that
plainbill.validate_plain accepted and writes its lines into the input buffers (``item_in``, ``pric_in``,
``cnt_in``, ``appr_in``), and ``settle_loaded`` settles it from there. On the core the route is
medsettle._plain, in C; on the reference engine it is plainbill.resolve_plain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..policy.codes import MED_TYPE_INDEX, TIER_INDEX
from .backends import CoreUnavailable, Engine, core_problem, plain_module
from .bills import MAX_LINES, NO_VALUE, AdmissionKeySource, BillBatch
from .columns import LINE_COLUMNS, N_COLUMNS
from .core import CoreEngine
from .plainbill import BillHead, PlainBill, resolve_plain
from .reference import ReferenceEngine

# What ``route`` gives: the arguments of ``settle_loaded`` but presettle, and the bill's head.
Routed = tuple[tuple[int, int, int, int, int, int, int, int, int], BillHead]
# A bill's lines as ``settle`` takes them: lists (a resolved bill's) or slices of the input buffers.
LineValues = Sequence[int] | np.ndarray


class CoreFastPath:
    def __init__(self, engine: CoreEngine, admissions: AdmissionKeySource | None = None) -> None:
        self._session = session = engine.session()
        # Bound C methods: no Python frame in between.
        self.settle = session.settle
        self.settle_loaded = session.settle_loaded
        self.person_codes = session.person_codes
        self.out: np.ndarray = session.out
        self.lines: np.ndarray = session.lines
        self.item_in, self.pric_in, self.cnt_in, self.appr_in = (
            session.item_in,
            session.pric_in,
            session.cnt_in,
            session.appr_in,
        )
        self.route = _no_route
        if admissions is not None:
            plain = plain_module()  # there whenever the core is used (backends takes both or neither)
            if plain is None:
                raise CoreUnavailable(f"the core's quick route is missing: {core_problem()}")
            self.route = plain.PlainRoute(
                engine.compiled,
                engine.population,
                admissions,
                session,
                med_type_index=MED_TYPE_INDEX,
                tier_index=TIER_INDEX,
                bill_head=BillHead,
            ).resolve


class ReferenceFastPath:
    """The same calls on the reference engine (a batch of one underneath)."""

    def __init__(self, engine: ReferenceEngine, admissions: AdmissionKeySource | None = None) -> None:
        self._engine = engine
        self._admissions = admissions
        self.out = np.zeros(N_COLUMNS, np.int64)
        self.lines = np.zeros((MAX_LINES, len(LINE_COLUMNS)), np.int64)
        self.item_in = np.zeros(MAX_LINES, np.int32)
        self.pric_in = np.zeros(MAX_LINES, np.int64)
        self.cnt_in = np.zeros(MAX_LINES, np.int64)
        self.appr_in = np.zeros(MAX_LINES, np.uint8)
        self.route = _no_route if admissions is None else PythonRoute(engine, admissions, self).resolve

    def settle(
        self,
        person: int,
        day: int,
        med_type: int,
        tier: int,
        treat_region: int,
        acct_flag: int,
        adm: int,
        saf_cash: int,
        items: LineValues,
        prices: LineValues,
        cnts: LineValues,
        apprs: LineValues,
        presettle: bool = False,
    ) -> int:
        n = len(items)
        batch = BillBatch.from_columns(
            person=[person],
            day=[day],
            med_type=[med_type],
            tier=[tier],
            treat_region=[treat_region],
            acct_flag=[acct_flag],
            adm=[adm],
            saf_cash=[saf_cash],
            caller_medfee=[NO_VALUE],
            line_start=[0, n],
            item=items,
            pric=prices,
            cnt=cnts,
            appr=apprs,
        )
        batch.validate(self._engine.compiled, len(self._engine.population))
        out, lines = self._engine.run(batch, presettle=presettle)
        assert lines is not None  # not narrowed: the lines are split
        self.out[:] = out[0]
        self.lines[:n] = lines
        return int(out[0, 0])

    def settle_loaded(
        self,
        person: int,
        day: int,
        med_type: int,
        tier: int,
        treat_region: int,
        acct_flag: int,
        adm: int,
        saf_cash: int,
        n: int,
        presettle: bool = False,
    ) -> int:
        if not 1 <= n <= MAX_LINES:
            raise ValueError("a bill has 1 to 1000 lines")
        return self.settle(
            person,
            day,
            med_type,
            tier,
            treat_region,
            acct_flag,
            adm,
            saf_cash,
            self.item_in[:n],
            self.pric_in[:n],
            self.cnt_in[:n],
            self.appr_in[:n],
            presettle,
        )

    def person_codes(self, person: int) -> tuple[int, int]:
        record = self._engine.population.attrs[person]
        return int(record["insutype"]), int(record["psn_type"])


class PythonRoute:
    """plainbill.resolve_plain, writing the lines into a fast path's input buffers (as medsettle._plain does)."""

    def __init__(
        self,
        engine: CoreEngine | ReferenceEngine,
        admissions: AdmissionKeySource,
        buffers: CoreFastPath | ReferenceFastPath,
    ) -> None:
        self._engine, self._admissions, self._buffers = engine, admissions, buffers

    def resolve(self, bill: PlainBill) -> Routed | None:
        resolved = resolve_plain(bill, self._engine.compiled, self._engine.population, self._admissions)
        if resolved is None:
            return None
        r, head = resolved
        n, b = len(r.items), self._buffers
        b.item_in[:n], b.pric_in[:n], b.cnt_in[:n], b.appr_in[:n] = r.items, r.prices, r.cnts, r.apprs
        return (r.person, r.day, r.med_type, r.tier, r.treat_region, r.acct_flag, r.adm, r.saf_cash, n), head


def _no_route(bill: PlainBill) -> None:
    """The route of a fast path made without admission keys: every bill takes the model way."""
    return None


def fast_path(engine: Engine, admissions: AdmissionKeySource | None = None) -> CoreFastPath | ReferenceFastPath:
    """The fast path on ``engine``; with ``admissions`` (the Settler's keys) it also has the plain route."""
    if isinstance(engine, CoreEngine):
        return CoreFastPath(engine, admissions)
    if isinstance(engine, ReferenceEngine):
        return ReferenceFastPath(engine, admissions)
    raise TypeError(f"no fast path for {type(engine).__name__}")
