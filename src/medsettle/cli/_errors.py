"""How every ``medsettle`` command fails: one clear line and exit status 1, never a traceback."""

from __future__ import annotations

import functools

import click

from ..errors import MedsettleError


def fail_cleanly(*plain: type[Exception]):
    """Decorator: a medsettle error becomes 'CODE: message'; the ``plain`` exception types their message."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except MedsettleError as exc:
                raise click.ClickException(f"{exc.code}: {exc}") from None
            except plain as exc:
                raise click.ClickException(str(exc)) from None
            except MemoryError:
                raise click.ClickException("not enough memory for this run: ask for fewer (--persons, --bills, "
                                           "--count)") from None

        return wrapper

    return decorate
