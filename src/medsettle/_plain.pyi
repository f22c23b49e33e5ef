"""Type stubs for the validated path's quick route in C (ext/_plain.pyx); see that file."""

from collections.abc import Callable
from typing import Any

BOUNDS: dict[str, int]  # the bounds it was built with (medsettle.engine.bounds.COMPILED_BOUNDS)

class PlainRoute:
    def __init__(
        self,
        compiled: Any,
        population: Any,
        admissions: Any,
        session: Any,
        *,
        med_type_index: dict[str, int],
        tier_index: dict[str, int],
        bill_head: Callable[..., Any],
    ) -> None: ...
    def resolve(self, bill: dict[str, Any]) -> tuple[tuple[int, ...], Any] | None: ...
