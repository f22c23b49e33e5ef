"""Answers that wait for the journal: small helpers over concurrent.futures.Future.

A state-changing request is applied at once and its answer is a Future that resolves when its journal
entries are durable (medsettle.centre.service). These helpers chain such Futures without a thread and
without reference cycles: a busy centre's answers are then freed by reference counting alone, not by
the cyclic garbage collector's pauses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..errors import MedsettleError


def answered(response: dict) -> Future:
    """A Future already holding ``response``."""
    future: Future = Future()
    future.set_result(response)
    return future


def then(future: Future, on_result: Callable[[Any], Any], on_error: Callable[[MedsettleError], Any]) -> Future:
    """A Future of ``on_result(result)``, or of ``on_error(exc)`` if ``future`` failed with a MedsettleError
    (any other exception is passed on: a bug)."""
    if future.done() and future.exception() is None:
        return answered(on_result(future.result()))
    chained: Future = Future()

    def done(source: Future) -> None:
        exc = source.exception()
        if exc is None:
            chained.set_result(on_result(source.result()))
        elif isinstance(exc, MedsettleError):
            chained.set_result(on_error(exc))
        else:
            chained.set_exception(exc)

    future.add_done_callback(done)
    return chained


def after(future: Future, make: Callable[[], Future]) -> Future:
    """A Future of what ``make()`` answers, called once ``future`` is done (whatever its outcome): an answer
    that depends on another is chained to it, so no thread waits. ``make`` runs on the thread that
    completes ``future`` (the journal's, or the caller's if it is done already)."""
    chained: Future = Future()

    def done(_: Future) -> None:
        try:
            made = make()
        except BaseException as exc:  # noqa: BLE001 (whatever make() raised, a bug, is passed on to the caller)
            chained.set_exception(exc)
            return
        made.add_done_callback(lambda result: _copy(result, chained))

    future.add_done_callback(done)
    return chained


def _copy(source: Future, target: Future) -> None:
    exc = source.exception()
    if exc is None:
        target.set_result(source.result())
    else:
        target.set_exception(exc)


def when_all(futures: list[Future], on_all_done: Callable[[BaseException | None], None]) -> None:
    """Call ``on_all_done(None)`` once every future has succeeded, or ``on_all_done(first failure)`` once
    all are done.

    The callbacks hold neither ``futures`` nor each other, so no reference cycle is made: the answers
    of a busy centre are then freed by reference counting alone, not by the cyclic collector's pauses."""
    if not futures:
        on_all_done(None)
        return
    waiting = _Countdown(len(futures), on_all_done)
    for future in futures:
        future.add_done_callback(waiting.one_done)


class _Countdown:
    __slots__ = ("failure", "lock", "on_all_done", "remaining")

    def __init__(self, count: int, on_all_done: Callable[[BaseException | None], None]) -> None:
        self.remaining = count
        self.failure: BaseException | None = None  # the first future's failure, in completion order
        self.on_all_done = on_all_done
        self.lock = threading.Lock()

    def one_done(self, future: Future) -> None:
        with self.lock:
            self.remaining -= 1
            if self.failure is None:
                self.failure = future.exception()
            last = self.remaining == 0
        if last:
            self.on_all_done(self.failure)
