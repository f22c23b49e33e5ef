"""The PC/SC reader driver, on pyscard's ``smartcard.scard`` layer (the PC/SC API itself, so every
failure arrives as an hresult that maps one-to-one onto medsettle's reader errors).

Deadlines: nothing in pcscd times out an APDU (a hung card hangs SCardTransmit until its link closes), so
every operation runs on the reader's worker thread and the caller watches it. The deadline is per PC/SC
call (one APDU, a connect): a card that answers every APDU, however slowly, is read, however many APDUs
the operation takes; only a call left unanswered for ``deadline`` seconds is a mute card. Then the
context, the card handle and the worker are abandoned (pcsc-lite holds the context's lock through the
hung call) and CardMute is raised; the next operation starts on a fresh context.

The APDUs themselves (select, read, verify, authenticate, 61xx / 6Cxx) are :mod:`.protocol`'s, shared with the
virtual backend; this module is how they travel through pcscd.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from . import protocol
from ._pyscard import scard
from .base import Reader
from .errors import (
    CardMute,
    CardRemoved,
    CardUnreadable,
    NoCard,
    NoReader,
    ReaderError,
    ServiceDown,
)
from .protocol import KNOWN_ATRS, MAX_CHAINED, CardSession
from .record import CardRecord
from .trace import Trace

T = TypeVar("T")
PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
__all__ = ["KNOWN_ATRS", "MAX_CHAINED", "PROTOCOLS", "PcscReader", "first_reader", "list_readers", "pcsc_error"]

_REMOVED = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_W_RESET_CARD}
_NO_CARD = {scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_E_TIMEOUT}
# After pcscd restarts, an old handle is invalid: the service went away under it.
_SERVICE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_F_COMM_ERROR,
    scard.SCARD_E_INVALID_HANDLE,
}
_NO_READER = {scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE, scard.SCARD_E_NO_READERS_AVAILABLE}
_MUTE = {scard.SCARD_W_UNRESPONSIVE_CARD}


def pcsc_error(hresult: int, what: str, reader: str | None) -> ReaderError:
    """The medsettle error for a failed PC/SC call."""
    message = f"{what}: {scard.SCardGetErrorMessage(hresult).strip()} (0x{hresult & 0xFFFFFFFF:08X})"
    if hresult in _REMOVED:
        return CardRemoved(f"the card was removed ({message})", reader=reader)
    if hresult in _NO_CARD:
        return NoCard(f"no card in the reader ({message})", reader=reader)
    if hresult in _SERVICE:
        return ServiceDown(f"the PC/SC service is not available ({message}); is pcscd running?", reader=reader)
    if hresult in _NO_READER:
        return NoReader(f"no such reader ({message})", reader=reader)
    if hresult in _MUTE:
        return CardMute(f"the card does not answer ({message})", reader=reader)
    return CardUnreadable(message, reader=reader)


def _context() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise ServiceDown(
            f"cannot reach the PC/SC service: {scard.SCardGetErrorMessage(hresult).strip()}; is pcscd running?"
        )
    return context


_check_pin = protocol.check_pin


class _InFlight:
    """When the PC/SC call a reader's worker is in began (None between calls), so the caller can hold each
    call, not the whole operation, to the deadline. One per worker: a call abandoned on an old worker that
    returns late cannot clear the mark of the new one's."""

    def __init__(self) -> None:
        self.since: float | None = None  # ok-float: a monotonic time

    def __enter__(self) -> None:
        self.since = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.since = None


def list_readers() -> list[str]:
    """The names of the readers pcscd offers (ServiceDown when it is not running)."""
    context = _context()
    try:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise pcsc_error(hresult, "list readers", None)
        return list(names)
    finally:
        scard.SCardReleaseContext(context)


def first_reader() -> tuple[str, str | None]:
    """The first reader pcscd lists and its PSAM's slot (slot 01 of the same reader entry, when pcscd lists
    it), as ``card read`` and a terminal without ``--reader`` take them; NoReader when there is none."""
    names = list_readers()
    card_names = [name for name in names if not name.endswith(" 01")] or names
    if not card_names:
        raise NoReader(
            "pcscd lists no reader: is a reader plugged in, or the virtual stack up ('medsettle hardware up')?"
        )
    name = card_names[0]
    psam = name[:-3] + " 01" if name.endswith(" 00") and name[:-3] + " 01" in names else None
    return name, psam


class _Link:
    """One connection to one slot (the card's or the PSAM's): context, handle, protocol."""

    def __init__(self, reader: str, trace: Trace | None, in_flight: _InFlight) -> None:
        self.reader, self.trace, self.in_flight = reader, trace, in_flight
        with in_flight:
            self.context = _context()
        self.handle: int | None = None  # SCARDHANDLE while connected
        self.protocol: int | None = None

    @property
    def connected(self) -> bool:
        return self.handle is not None

    def connect(self) -> bytes:
        with self.in_flight:
            hresult, handle, protocol = scard.SCardConnect(
                self.context, self.reader, scard.SCARD_SHARE_SHARED, PROTOCOLS
            )
        if hresult != scard.SCARD_S_SUCCESS:
            raise pcsc_error(hresult, "connect", self.reader)
        self.handle, self.protocol = handle, protocol
        with self.in_flight:
            hresult, _, _, _, atr = scard.SCardStatus(handle)
        if hresult != scard.SCARD_S_SUCCESS:
            raise pcsc_error(hresult, "status", self.reader)
        return bytes(atr)

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """Send one C-APDU; follow 61xx with GET RESPONSE and 6Cxx with the same command and Le = xx."""
        return protocol.transmit(self._exchange, command, self.reader)

    def _exchange(self, command: bytes) -> tuple[bytes, int]:
        started = time.perf_counter()
        with self.in_flight:
            hresult, answer = scard.SCardTransmit(self.handle, self.protocol, list(command))
        elapsed = time.perf_counter() - started
        if hresult != scard.SCARD_S_SUCCESS:
            error = pcsc_error(hresult, "transmit", self.reader)
            if self.trace:
                self.trace(self.reader, command, None, elapsed, type(error).__name__)
            raise error
        answer = bytes(answer)
        if self.trace:
            self.trace(self.reader, command, answer, elapsed)
        return protocol.split_answer(answer, command, self.reader)  # empty: pcscd's "no valid response"

    def disconnect(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            scard.SCardDisconnect(handle, scard.SCARD_LEAVE_CARD)

    def close(self) -> None:
        self.disconnect()
        scard.SCardReleaseContext(self.context)


class _Worker:
    """One daemon thread that runs a reader's operations in order. Not a ThreadPoolExecutor: Python joins
    those at exit, so a card hung in SCardTransmit would hang the program's exit too."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._loop, name=name, daemon=True).start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, operation = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(operation())
                except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
                    future.set_exception(error)

    def submit(self, operation: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((future, operation))
        return future

    def stop(self) -> None:
        self._jobs.put(None)


class PcscReader(Reader):
    """A counter's reader: the card in ``name`` (slot 00) and, for authentication, the PSAM in ``psam``
    (slot 01 of the same reader). ``name=None`` takes :func:`first_reader`. ``deadline``: the seconds one
    APDU (or connect) may go unanswered before the card counts as mute."""

    def __init__(
        self, name: str | None = None, psam: str | None = None, *, deadline: float = 2.0, trace: Trace | None = None
    ) -> None:
        if name is None:
            name, first_psam = first_reader()
            psam = first_psam if psam is None else psam
        self.name, self.psam_name = name, psam
        self.deadline = deadline
        self.trace = trace
        self._worker: _Worker | None = None
        self._in_flight = _InFlight()
        self._session = CardSession(name, psam, self._open_link)

    def _open_link(self, reader: str) -> _Link:
        return _Link(reader, self.trace, self._in_flight)  # the in-flight mark of the worker of the moment

    # -- running an operation under its deadline -------------------------------------------------

    def _run(self, what: str, operation: Callable[[], T]) -> T:
        if self._worker is None:
            self._worker = _Worker(f"reader-{self.name}")
        future = self._worker.submit(operation)
        try:
            return self._result(future, self._in_flight, what)
        except (CardRemoved, ServiceDown, CardUnreadable, NoCard):
            self._drop_links()  # the next operation connects afresh
            raise

    def _result(self, future: concurrent.futures.Future[T], in_flight: _InFlight, what: str) -> T:
        """The operation's result, however long it takes in all; CardMute as soon as one PC/SC call of it
        has gone unanswered for ``deadline`` seconds."""
        while True:
            since = in_flight.since
            left = self.deadline if since is None else since + self.deadline - time.monotonic()
            try:
                return future.result(timeout=max(left, 0.0))
            except concurrent.futures.TimeoutError:
                since = in_flight.since
                if since is not None and time.monotonic() - since >= self.deadline and not future.done():
                    self._abandon()
                    raise CardMute(
                        f"the card did not answer within {self.deadline:g} s during {what}", reader=self.name
                    ) from None

    def _abandon(self) -> None:
        """Leave a hung call behind: its worker, context and handles are never used again."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()  # it ends when (if ever) the hung call returns
        self._session.forget()
        self._in_flight = _InFlight()

    def _drop_links(self) -> None:
        self._session.close()

    # -- the card (the APDUs are the session's: :class:`.protocol.CardSession`) -----------------------

    def read_card(self) -> CardRecord:
        return self._run("READ RECORD", self._session.read)

    def transmit(self, command: bytes) -> tuple[bytes, int]:
        """One raw APDU to the card in the current session (61xx and 6Cxx followed), for support work."""
        return self._run("an APDU", lambda: self._session.transmit(bytes(command)))

    def verify_pin(self, pin: str) -> None:
        _check_pin(pin)
        self._run("VERIFY", lambda: self._session.verify(pin))

    def authenticate(self, record: CardRecord) -> None:
        self._run("INTERNAL AUTHENTICATE", lambda: self._session.authenticate(record))

    def read_and_authenticate(self, pin: str | None = None) -> CardRecord:
        """Read, verify the PIN (if given) and authenticate as one operation on the worker (each of its
        APDUs under the deadline)."""
        if pin is not None:
            _check_pin(pin)
        return self._run("a card read", lambda: self._session.read_and_authenticate(pin))

    # -- presence -----------------------------------------------------------------------------------

    def _reader_state(self, context: int, timeout_ms: int, known: int = scard.SCARD_STATE_UNAWARE) -> int:
        hresult, states = scard.SCardGetStatusChange(context, timeout_ms, [(self.name, known)])
        if hresult == scard.SCARD_E_TIMEOUT:
            return known
        if hresult != scard.SCARD_S_SUCCESS:
            raise pcsc_error(hresult, "status", self.name)
        return states[0][1]

    def card_present(self) -> bool:
        context = _context()
        try:
            state = self._reader_state(context, 0)
            if state & scard.SCARD_STATE_UNKNOWN:
                raise NoReader("no such reader", reader=self.name)
            present = bool(state & scard.SCARD_STATE_PRESENT)
        finally:
            scard.SCardReleaseContext(context)
        if not present:
            self._drop_links()
        return present

    def wait_for_card(self, timeout: float) -> None:
        """Return when a card is present; NoCard after ``timeout`` (pcscd sees a card up to 0.4 s late)."""
        context = _context()
        try:
            state = self._reader_state(context, 0)
            deadline = time.monotonic() + timeout
            while not state & scard.SCARD_STATE_PRESENT:
                if state & scard.SCARD_STATE_UNKNOWN:
                    raise NoReader("no such reader", reader=self.name)
                left_ms = int((deadline - time.monotonic()) * 1000)
                if left_ms <= 0:
                    raise NoCard(f"no card within {timeout:g} s", reader=self.name)
                state = self._reader_state(context, min(left_ms, 500), state & ~scard.SCARD_STATE_CHANGED)
        finally:
            scard.SCardReleaseContext(context)

    def close(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(concurrent.futures.TimeoutError):  # a call still hung: its handles stay its
                self._worker.submit(self._drop_links).result(timeout=self.deadline)
            self._worker.stop()
            self._worker = None
        else:
            self._drop_links()
