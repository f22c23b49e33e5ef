"""Admission keys: the small int the core tells admissions apart by, one for each mdtrt_id a bill names.

Resolving a bill asks only for a key (:class:`AdmissionKeySource`); the Settler's table also binds known
keys on journal replay (:class:`AdmissionKeyTable`). :class:`AdmissionKeys` is both; a stream's keys,
engine/streamkeys.py, forget those no admission in progress holds."""

from __future__ import annotations

from typing import Protocol


class AdmissionKeySource(Protocol):
    """What resolving a bill asks of admission keys: the int key of its mdtrt_id (:class:`AdmissionKeys`
    gives them; a stream's, engine/streamkeys.py, forget those no admission in progress holds)."""

    def key(self, mdtrt_id: str, /) -> int: ...


class AdmissionKeyTable(AdmissionKeySource, Protocol):
    """The Settler's admission keys: a key for each mdtrt_id, and a known key bound (journal replay)."""

    def bind(self, mdtrt_id: str, key: int) -> None: ...


class AdmissionKeys:
    """Gives each mdtrt_id a small int key, the way the core tells admissions apart."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._next = 0

    def key(self, mdtrt_id: str) -> int:
        k = self._keys.get(mdtrt_id)
        if k is None:
            k = self._keys[mdtrt_id] = self._next
            self._next += 1
        return k

    def bind(self, mdtrt_id: str, key: int) -> None:
        """Give ``mdtrt_id`` a known key (journal replay); new keys continue past it."""
        if self._keys.get(mdtrt_id, key) != key:
            raise ValueError(f"mdtrt_id {mdtrt_id!r} already has key {self._keys[mdtrt_id]}, not {key}")
        self._keys[mdtrt_id] = key
        self._next = max(self._next, key + 1)
