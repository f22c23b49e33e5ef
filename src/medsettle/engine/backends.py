"""Choosing an engine: the Cython core when it is built, else the reference engine, said once.

``MEDSETTLE_NO_EXTENSIONS=1`` forces the reference engine (aiohttp's switch for its C parser).
The fall-back is said as one plain sentence on stderr (not through :mod:`warnings`, whose format
adds a source line that tells a user nothing), once per process.
"""

from __future__ import annotations

import os
import sys

from ..errors import MedsettleError

REBUILD_HINT = "rebuild it with 'pip install -e .' (or 'python setup.py build_ext --inplace' in a checkout)"

_core_module = None
_core_error: str | None = None  # why the core is not used, when it is not
_core_fix = ""  # what to do about it ("" when it was turned off on purpose)
_warned = False


class CoreUnavailable(MedsettleError):
    code = "CORE_UNAVAILABLE"


def core_module():
    """medsettle._core, or None when it is disabled or cannot be imported (reason in core_problem())."""
    global _core_module, _core_error, _core_fix
    if _core_module is None and _core_error is None:
        if os.environ.get("MEDSETTLE_NO_EXTENSIONS") == "1":
            _core_error = "the Cython core is off (MEDSETTLE_NO_EXTENSIONS=1)"
        else:
            try:
                from .. import _core  # noqa: PLC0415
            except ImportError as exc:
                _core_error = f"the Cython core is not built or cannot be imported ({exc})"
            else:
                _core_error = _stale(_core)
                _core_module = None if _core_error else _core
            _core_fix = REBUILD_HINT if _core_error else ""
    return _core_module


def _stale(core) -> str | None:
    """Why a compiled core that imports does not fit these sources, or None (the checks live by the engine)."""
    from .core import build_mismatch  # noqa: PLC0415 (core imports this module)

    return build_mismatch(core)


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
        print(f"medsettle: {_core_error}; using the reference engine (pure Python, slow)"
              + (f"; {_core_fix}" if _core_fix else ""), file=sys.stderr)
    return "reference"
