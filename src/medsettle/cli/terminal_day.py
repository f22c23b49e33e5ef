"""``medsettle terminal signin|signout|reconcile|forward|resume``: the counter's day, from signing in to the
end-of-day reconciliation, and what an outage or a crash left to forward or finish."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._terminal_common import _emit, _errors, _Session, _with_counter

if TYPE_CHECKING:  # the counter is imported when a command runs, never for --help
    from ..terminal import Counter


@click.command("signin")
@_errors
@_with_counter
def signin(counter: Counter) -> None:
    """Sign in (9001) at the start of the day."""
    _emit({"sign_no": counter.sign_in()})


@click.command("signout")
@_errors
@_with_counter
def signout(counter: Counter) -> None:
    """Sign out (9002) at the end of the day."""
    counter.sign_out()
    _emit({"signed_out": True})


@click.command("reconcile")
@click.option("--day", help="yyyy-mm-dd (default: today).")
@click.option("--detail", is_flag=True, help="Always ask for the detail (3202), even when the totals agree.")
@click.pass_obj
@_errors
def reconcile(session: _Session, day: str | None, detail: bool) -> None:
    """End-of-day reconciliation: 3201 per scheme and insured region, 3202 when totals differ."""
    import datetime as dt  # noqa: PLC0415

    try:
        when = dt.date.fromisoformat(day) if day else None
    except ValueError:
        raise click.ClickException(f"--day {day!r} is not a date: give yyyy-mm-dd, e.g. 2026-03-02") from None
    _emit(session.counter().reconcile(when, detail=detail))


@click.command("forward")
@click.option(
    "--rounds",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rounds of forwarding, with back-off between them.",
)
@_errors
@_with_counter
def forward(counter: Counter, rounds: int) -> None:
    """Forward queued provisional settlements (store-and-forward) in order."""
    _emit(counter.forward_until_done(rounds=rounds))


@click.command("resume")
@click.option(
    "--wait",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep resending unanswered messages.",
)
@_errors
@_with_counter
def resume(counter: Counter, wait: float) -> None:  # ok-float: wait is seconds
    """Finish what a crash or an outage left (also done before every command)."""
    _emit(counter.resume(deadline_s=wait))


COMMANDS = (signin, signout, reconcile, forward, resume)
