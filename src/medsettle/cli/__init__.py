"""The ``medsettle`` command. Every subcommand has --help; errors print one clear line and exit 1.

One module per command or group; they share helpers from ``_common`` and ``_errors`` and never import each
other, so this package only puts them together.
"""

from __future__ import annotations

import click

from .. import __version__
from .bench import bench
from .bills import bills
from .demo import demo
from .hardware import card, hardware
from .persons import persons
from .policy import policy
from .scenario import scenario
from .serve import serve
from .settle import settle
from .sign import sign
from .sim import sim
from .terminal import terminal


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medsettle")
def main() -> None:
    """medsettle: medical-insurance settlement at hospital and pharmacy counters, simulated with real parts."""


for _command in (demo, settle, policy, persons, bills, serve, sign, hardware, card, terminal, bench, sim, scenario):
    main.add_command(_command)

__all__ = ["main"]
