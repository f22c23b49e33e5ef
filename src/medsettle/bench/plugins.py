"""A user's own flows: Python files run before the mix is read, each registering flows with
:func:`medsettle.bench.flows.flow` (docs/load.md 'Your own flows, and the locustfile')."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from .mix import MixError


def load_flows(paths: Sequence[str]) -> list[str]:
    """Run each flows file as a module (registering its flows); the module names. MixError naming --flows when a
    file cannot be found or fails as it runs."""
    names = []
    for n, path in enumerate(paths):
        if not Path(path).is_file():
            raise MixError(f"--flows {path}: no such file")
        spec = importlib.util.spec_from_file_location(f"medsettle_user_flows_{n}", path)
        if spec is None or spec.loader is None:
            raise MixError(f"--flows {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001  the user's code: any failure is theirs to see, in one line
            raise MixError(f"--flows {path}: {type(exc).__name__}: {exc}") from None
        names.append(spec.name)
    return names
