"""Admission keys for a stream of bills (``medsettle settle``): they do not grow with the number of bills.

The first pass settles nothing, so it needs no keys that last (:class:`NoAdmissionKeys`); the second
forgets, now and then, the keys no person's admission in progress holds (:class:`StreamAdmissionKeys`).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import count

import numpy as np

from .core import CoreEngine
from .settler import Settler


class StreamAdmissionKeys:
    """The Settler's admission keys (mdtrt_id -> int, as bills.AdmissionKeys gives them) for a stream.

    A key only ever matters while it is some person's admission in progress (the engines compare a bill's
    key with its person's ``adm_id`` and nothing else, and a stream cancels nothing). ``keep_only`` forgets
    the others; if such an mdtrt_id comes again it gets a new key, which no person holds either, so every
    bill settles as it would have. New keys never reuse an old number. ``key`` is a dict's own lookup
    (a missing mdtrt_id takes the next number): no Python call per bill. A stream replays no journal, so
    ``bind`` refuses.
    """

    def __init__(self) -> None:
        self._keys: defaultdict[str, int] = defaultdict(count().__next__)
        self.key = self._keys.__getitem__

    def keep_only(self, live: set[int]) -> None:
        """Forget every mdtrt_id whose key is not in ``live``."""
        for mdtrt_id in [mdtrt_id for mdtrt_id, k in self._keys.items() if k not in live]:
            del self._keys[mdtrt_id]

    def __len__(self) -> int:
        return len(self._keys)

    def bind(self, mdtrt_id: str, key: int) -> None:
        """Refused: a stream replays no journal, so no mdtrt_id comes with a key it must keep."""
        raise TypeError(f"a stream's admission keys take no known key (mdtrt_id {mdtrt_id!r}, key {key})")


class NoAdmissionKeys:
    """The first pass's keys: it settles nothing, so any int will do (and none is kept)."""

    key = staticmethod(len)  # a builtin: no Python call per bill


def admissions_in_progress(settler: Settler, persons: set[int]) -> set[int]:
    """The admission keys some person's state holds (``persons``: those with a bill so far, for the
    reference engine, whose states are objects; the core's are one array, read whole)."""
    engine = settler.engine
    if isinstance(engine, CoreEngine):
        return set(np.unique(engine.state["adm_id"]).tolist())
    return {engine.get_state(p).adm_id for p in persons}


__all__ = ["NoAdmissionKeys", "StreamAdmissionKeys", "admissions_in_progress"]
