"""The measuring code of the project's benchmarks, one small module a layer (docs/load.md 'bench all').

Each layer's ``measure(size)`` returns a :class:`LayerResult`: the layer's two canonical numbers (its
throughput, and a p99 or a median), its yardstick measured in the same run and the ratio of the two
throughputs, because these machines are shared and noisy and only a ratio to a yardstick of the same run
compares across runs. ``medsettle bench all`` runs them in turn; benchmarks/*.py build on the same
modules with pytest-benchmark. A layer whose parts are missing raises :class:`LayerSkipped` with the
reason, or measures without its yardstick and says so in ``note``.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol


class LayerSkipped(Exception):
    """The layer cannot be measured here; the message says which part is missing and how to get it."""


@dataclass(frozen=True)
class Size:
    """How much work a run does: ``quick`` picks each layer's small sizes (a minute for all), ``scale``
    multiplies them (below 1 for tests and slow machines)."""

    quick: bool = False
    scale: float = 1.0  # ok-float: a factor, not money

    def n(self, full: int, quick: int, least: int = 1) -> int:
        """A count of this size: ``full`` or ``quick``, times the scale, at least ``least``."""
        return max(least, round((quick if self.quick else full) * self.scale))

    def seconds(self, full: float, quick: float, least: float = 1.0) -> float:  # ok-float: seconds
        """A duration of this size, as :meth:`n`."""
        return max(least, (quick if self.quick else full) * self.scale)


@dataclass
class LayerResult:
    """One layer's figures. ``ratio`` is the layer's throughput over the yardstick's (above 1: faster)."""

    layer: str
    title: str
    throughput: float  # ok-float: a rate
    throughput_unit: str
    latency_ms: float  # ok-float: milliseconds
    latency_kind: str  # "p99" or "median", and of what
    yardstick: str
    yardstick_throughput: float | None  # ok-float: a rate; None when the yardstick could not be measured
    yardstick_unit: str
    ratio: float | None  # ok-float
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this layer in ``bench all --json``'s file."""
        return {"status": "measured", **dataclasses.asdict(self)}


def ratio(value: float, yardstick: float | None) -> float | None:  # ok-float: rates
    """value / yardstick, or None without a yardstick."""
    return value / yardstick if yardstick else None


class _Layer(Protocol):
    TITLE: str

    def measure(self, size: Size) -> LayerResult: ...


# name -> module, in the order ``bench all`` runs them (cheap first)
LAYERS: dict[str, str] = {
    "kernel": "kernel",
    "single": "single",
    "settle": "settle_file",
    "sim": "simulator",
    "centre": "http",
    "card": "card",
}


def layer_module(name: str) -> _Layer:
    """The module measuring layer ``name`` (imported when asked: the centre's pulls in aiohttp, the card's pyscard)."""
    module: Any = importlib.import_module(f"{__name__}.{LAYERS[name]}")
    return module
