"""The ``medsettle`` command. Every subcommand has --help; errors print one clear line and exit 1.

One module per command or group; they share helpers from ``_common`` and ``_errors`` and never import each
other, so this package only puts them together. A command's module is imported when the command is run (or
listed by --help), not before: most of them need the engine, whose import alone costs most of a second, and
``medsettle terminal ...``, run once per clerk's command, needs none of it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping

import click

from .. import __version__

# The command's name -> (its module in this package, the command's name there): each in a module of its name,
# but for `card`, which lives beside `hardware`.
_NAMES = (
    "demo",
    "settle",
    "policy",
    "persons",
    "bills",
    "serve",
    "sign",
    "hardware",
    "terminal",
    "bench",
    "sim",
    "scenario",
)
WHERE = {name: (name, name) for name in _NAMES} | {"card": ("hardware", "card")}


class _Commands(MutableMapping[str, click.Command]):
    """The group's commands, each imported on first use (click reads a group's commands through this)."""

    def __init__(self, where: dict[str, tuple[str, str]]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attr = self._where[name]  # KeyError: no such command (click then says so)
            self._loaded[name] = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        self._where.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._where, *self._loaded]))

    def __len__(self) -> int:
        return len(set(self._where) | set(self._loaded))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medsettle")
def main() -> None:
    """medsettle: medical-insurance settlement at hospital and pharmacy counters, simulated with real parts."""


main.commands = _Commands(WHERE)

__all__ = ["main"]
