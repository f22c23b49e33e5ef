"""``medsettle terminal``: a pharmacy or outpatient counter, in a shell (``shell``) or one action per command for POS
integration (every action prints JSON). Each command first finishes what a crash or an outage left
(resends unanswered messages unchanged, prints receipts not printed).

The counter (its journal, and that resume) is opened only when a command runs, never for ``--help``: help
needs no option and writes nothing. A mistake at the counter (a malformed item, an unknown sale, a refusal
by the centre) is one ``Error:`` line; the shell prints it and prompts again.

The group and its shell are here; its commands are in part modules named after it (terminal_day,
terminal_sales, terminal_stays), their shared helpers in _terminal_common and _terminal_identity."""

from __future__ import annotations

import shlex

import click

from ._terminal_common import _Session
from .terminal_day import COMMANDS as DAY_COMMANDS
from .terminal_sales import COMMANDS as SALE_COMMANDS
from .terminal_stays import COMMANDS as STAY_COMMANDS


@click.group(invoke_without_command=True)
@click.option("--institution", "-i", "code", help="The institution's code (e.g. P13010000001); every command needs it.")
@click.option("--centre", "centre_url", default="http://127.0.0.1:8901/", show_default=True)
@click.option(
    "--credentials",
    "credentials_file",
    type=click.Path(dir_okay=False),
    help="The centre's credentials file (default: $MEDSETTLE_CREDENTIALS, else medsettle-data/credentials.toml).",
)
@click.option(
    "--reader",
    "reader_name",
    help="The card reader for --card (its PSAM in slot 01 of the same reader; default: the first reader pcscd lists).",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False),
    help="The terminal's journal (default: medsettle-data/terminal-CODE.db).",
)
@click.option(
    "--resend-for",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a settle is resent before giving up.",
)
@click.option(
    "--timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds to wait for each answer.",
)
@click.pass_context
def terminal(
    ctx: click.Context,
    code: str | None,
    centre_url: str,
    credentials_file: str | None,
    reader_name: str | None,
    journal_path: str | None,
    resend_for: float,
    timeout: float,
) -> None:
    """A counter of institution CODE talking to the centre; without a command, an interactive shell.

    Every request is signed with CODE's credential from the centre's credentials file (``--credentials``)."""
    session = _Session(code, centre_url, reader_name, journal_path, resend_for, timeout)
    session.credentials_file = credentials_file
    ctx.obj = session
    ctx.call_on_close(session.close)
    if ctx.invoked_subcommand is None:
        _shell(ctx)


for _command in (*DAY_COMMANDS, *SALE_COMMANDS, *STAY_COMMANDS):
    terminal.add_command(_command)


@terminal.command("shell")
@click.pass_context
def shell(ctx: click.Context) -> None:
    """An interactive counter: type 'help'."""
    if ctx.parent is None:  # never: shell is a command of the terminal group, whose context holds the session
        raise click.ClickException("the shell runs under the terminal: medsettle terminal -i CODE shell")
    _shell(ctx.parent)


def _shell(ctx: click.Context) -> None:
    """The interactive counter: one command a line, until quit or the end of input. The counter is opened
    (and what a crash left finished) before the first prompt."""
    ctx.obj.counter()
    click.echo(
        f"medsettle counter {ctx.obj.code}: signin, sell ITEMS [--certno N|--qr T|--card], cancel SALE, "
        "vouchers, resettle V [...], reconcile, signout, quit",
        err=True,
    )
    while True:
        try:
            line = input("counter> ").strip()
        except EOFError:
            return
        if line in ("quit", "exit"):
            return
        if not line:
            continue
        if line == "help":
            click.echo(terminal.get_help(ctx))
            continue
        try:
            _run_line(ctx, line)
        except click.exceptions.Abort:
            return


def _run_line(ctx: click.Context, line: str) -> None:
    """One line of the shell. Whatever is wrong with it (unbalanced quotes, an unknown command or option, a
    malformed item, an error of the command) is one Error line on stderr, and the shell prompts again."""
    try:
        args = shlex.split(line)
    except ValueError as error:
        click.echo(f"Error: cannot read the line ({error}): check its quotes", err=True)
        return
    command = terminal.get_command(ctx, args[0])
    if command is None or command.name == "shell":
        click.echo(f"Error: unknown command {args[0]!r}: type 'help' for the commands", err=True)
        return
    try:
        command.main(args[1:], prog_name=args[0], obj=ctx.obj, standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
    except click.exceptions.Abort:
        raise
    except Exception as error:  # noqa: BLE001 - a fault of one command must not close the clerk's counter
        click.echo(f"Error: {args[0]} failed ({type(error).__name__}: {error}); the counter goes on", err=True)
