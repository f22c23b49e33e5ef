"""Choosing an engine: the Cython core when it is built, else the reference engine, said once.

``MEDSETTLE_NO_EXTENSIONS=1`` forces the reference engine (aiohttp's switch for its C parser).
"""

from __future__ import annotations

import os
import warnings

from ..errors import MedsettleError

_core_module = None
_core_error: str | None = None
_warned = False


class CoreUnavailable(MedsettleError):
    code = "CORE_UNAVAILABLE"


def core_module():
    """medsettle._core, or None when it is disabled or cannot be imported (reason in core_problem())."""
    global _core_module, _core_error
    if _core_module is None and _core_error is None:
        if os.environ.get("MEDSETTLE_NO_EXTENSIONS") == "1":
            _core_error = "MEDSETTLE_NO_EXTENSIONS=1 is set"
        else:
            try:
                from .. import _core  # noqa: PLC0415
                _core_module = _core
            except ImportError as exc:
                _core_error = f"the compiled core cannot be imported ({exc}); reinstall with 'pip install .'"
    return _core_module


def core_problem() -> str | None:
    core_module()
    return _core_error


def resolve_engine_name(name: str) -> str:
    """'auto' becomes 'core' or, with one clear warning, 'reference'; 'core' without a core is an error."""
    global _warned
    if name not in ("auto", "core", "reference"):
        raise MedsettleError(f"unknown engine {name!r}: choose core, reference or auto", field="engine")
    if name == "reference":
        return name
    if core_module() is not None:
        return "core"
    if name == "core":
        raise CoreUnavailable(f"the Cython core is not available: {_core_error}")
    if not _warned:
        _warned = True
        message = f"medsettle is running on the pure-Python reference engine (slow): {_core_error}"
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return "reference"
