"""How every ``medsettle`` command fails: one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import click

from ..errors import MedsettleError

P = ParamSpec("P")
R = TypeVar("R")


def one_line(message: str) -> str:
    """``message`` on one line: a reason quoted from elsewhere (a database driver's, say) may span several."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


class OneLineCommand(click.Command):
    """A command whose bad options are one ``Error: ...`` line naming the option (no usage block)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise click.ClickException(exc.format_message()) from None


def fail_cleanly(*plain: type[Exception]) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: a medsettle error becomes 'CODE: message'; the ``plain`` exception types (medsettle's own
    included, such as StackError) their message alone."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except plain as exc:  # before MedsettleError: a plain type may be one of medsettle's own
                raise click.ClickException(one_line(str(exc))) from None
            except MedsettleError as exc:
                raise click.ClickException(one_line(f"{exc.code}: {exc}")) from None
            except MemoryError:
                raise click.ClickException(
                    "not enough memory for this run: ask for fewer (--persons, --bills, --count)"
                ) from None

        return wrapper

    return decorate
