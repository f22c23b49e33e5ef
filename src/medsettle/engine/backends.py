"""The twin's one seam: the compiled modules, the interface both engines keep, and choosing between them.

Every import of the compiled modules (``medsettle._core``, the kernel, and ``medsettle._plain``, the
validated path's quick route, built together from ext/) happens here: :func:`core_module` and
:func:`plain_module` give them, or None with the reason in :func:`core_problem`. The core is used only
when both import and fit these sources (engine/core.py's ``build_mismatch``), so the quick route never
falls back quietly to its Python twin behind a core that is used.

:class:`Engine` is the interface the Settler holds: engine/core.py's CoreEngine and
engine/reference.py's ReferenceEngine both keep it (tests/test_backends.py checks they do).

``MEDSETTLE_NO_EXTENSIONS=1`` forces the reference engine (aiohttp's switch for its C parser).
The fall-back is said as one plain sentence on stderr (not through :mod:`warnings`, whose format
adds a source line that tells a user nothing), once per process.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from ..errors import MedsettleError

if TYPE_CHECKING:
    from .._core import Session as CoreSession  # noqa: F401 (for core.py: the kernel's session, typed by _core.pyi)
    from ..policy.compile import CompiledPolicy
    from ..policy.models import Policy
    from .bills import BillBatch
    from .persons import Population
    from .state import PersonState

REBUILD_HINT = "rebuild it with 'pip install -e .' (or 'python setup.py build_ext --inplace' in a checkout)"

_core_module: ModuleType | None = None
_plain_module: ModuleType | None = None
_core_error: str | None = None  # why the core is not used, when it is not
_core_fix = ""  # what to do about it ("" when it was turned off on purpose)
_warned = False
log = logging.getLogger(__name__)


class CoreUnavailable(MedsettleError):
    code = "CORE_UNAVAILABLE"


class Engine(Protocol):
    """What the Settler asks of an engine; the core and the reference engine answer it identically.

    ``run`` settles (or pre-settles) a validated batch in order and gives its rows of columns.COLUMNS
    (NARROW_COLUMNS when ``narrow``) and its lines' rows of LINE_COLUMNS (None when narrow); ``cancel``
    moves a person's state back by a settlement's row (docs/settlement.md Cancel)."""

    name: ClassVar[str]
    policy: Policy
    compiled: CompiledPolicy
    population: Population

    def run(
        self,
        batch: BillBatch,
        *,
        presettle: bool = False,
        narrow: bool = False,
        out: np.ndarray | None = None,
        line_out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]: ...

    def cancel(
        self, person: int, original: np.ndarray, role: int, restore: tuple[int, int, int, int]
    ) -> tuple[int, int]: ...

    def get_state(self, person: int) -> PersonState: ...

    def set_state(self, person: int, state: PersonState) -> None: ...

    def reset(self) -> None: ...

    def add_person(self) -> None: ...


def core_module() -> ModuleType | None:
    """medsettle._core, or None when it is disabled, cannot be imported or does not fit these sources
    (reason in core_problem())."""
    _load()
    return _core_module


def plain_module() -> ModuleType | None:
    """medsettle._plain, the core's quick route, exactly when :func:`core_module` is not None."""
    _load()
    return _plain_module


def _load() -> None:
    """Import both compiled modules once; either both are used or neither, and core_problem() says why."""
    global _core_module, _plain_module, _core_error, _core_fix
    if _core_module is not None or _core_error is not None:
        return
    if os.environ.get("MEDSETTLE_NO_EXTENSIONS") == "1":
        _core_error = "the Cython core is off (MEDSETTLE_NO_EXTENSIONS=1)"
        return
    try:
        from .. import _core, _plain  # noqa: PLC0415 (the one place they are imported)
    except ImportError as exc:
        _core_error = f"the Cython core is not built or cannot be imported ({exc})"
    else:
        _core_error = _stale(_core, _plain)
        if _core_error is None:
            _core_module, _plain_module = _core, _plain
    _core_fix = REBUILD_HINT if _core_error else ""


def _stale(core: ModuleType, plain: ModuleType) -> str | None:
    """Why compiled modules that import do not fit these sources, or None (the checks live by the engine)."""
    from .core import build_mismatch  # noqa: PLC0415 (core imports this module)

    return build_mismatch(core, plain)


def core_problem() -> str | None:
    """Why the core is not used when asked for ('the Cython core is ...', and what to do), or None."""
    core_module()
    return _core_error and _core_error + (f"; {_core_fix}" if _core_fix else "")


def resolve_engine_name(name: str) -> str:
    """'auto' becomes 'core' or, said once on stderr, 'reference'; 'core' without a core is an error."""
    global _warned
    if name not in ("auto", "core", "reference"):
        raise MedsettleError(f"unknown engine {name!r}: choose core, reference or auto", field="engine")
    if name == "reference":
        return name
    if core_module() is not None:
        return "core"
    if name == "core":
        raise CoreUnavailable(f"the core engine was asked for, but {core_problem()}")
    if not _warned:
        _warned = True
        # A log record, not a print: with no logging configured Python writes its message alone to stderr
        # (logging's last-resort handler), as before; `medsettle serve` gives it its log format.
        log.warning(
            "medsettle: %s; using the reference engine (pure Python, slow)%s",
            _core_error,
            f"; {_core_fix}" if _core_fix else "",
        )
    return "reference"
