"""The small set of errors a counter sees from its reader, whatever the stack below raised.

The terminal treats all of them as an equipment failure (docs/failures.md) except WrongPin, which the
patient can retry; each message says which reader and what to do.
"""

from __future__ import annotations

from ..errors import MedsettleError


class ReaderError(MedsettleError):
    code = "READER_ERROR"

    def __init__(self, message: str, *, reader: str | None = None):
        self.reader = reader
        super().__init__(f"reader {reader!r}: {message}" if reader else message)


class NoReader(ReaderError):
    """The reader (or the PSAM's slot) is not there."""

    code = "NO_READER"


class NoCard(ReaderError):
    """No card in the reader (or none came before the deadline)."""

    code = "NO_CARD"


class CardRemoved(ReaderError):
    """The card was taken out during the operation."""

    code = "CARD_REMOVED"


class CardMute(ReaderError):
    """The card did not answer within the deadline."""

    code = "CARD_MUTE"


class CardUnreadable(ReaderError):
    """The card answered, but not as a social security card does (garbage, truncated answers, a wrong
    ATR, records that do not parse)."""

    code = "CARD_UNREADABLE"


class WrongPin(ReaderError):
    """A wrong PIN; ``tries_left`` more before the card blocks."""

    code = "WRONG_PIN"

    def __init__(self, tries_left: int, *, reader: str | None = None):
        self.tries_left = tries_left
        super().__init__(f"wrong PIN, {tries_left} {'try' if tries_left == 1 else 'tries'} left", reader=reader)


class CardBlocked(ReaderError):
    """The PIN is blocked: the holder must have it reset at the region's service centre."""

    code = "CARD_BLOCKED"


class CardNotGenuine(ReaderError):
    """The card failed authentication through the PSAM (a clone, or data altered after issue)."""

    code = "CARD_NOT_GENUINE"


class ServiceDown(ReaderError):
    """The PC/SC service (pcscd) is not running or went away."""

    code = "SERVICE_DOWN"


PYSCARD_MISSING = "pyscard is not installed: pip install 'medsettle[readers]' (after apt-get install libpcsclite-dev)"


class PyscardMissing(ReaderError, ImportError):
    """The PC/SC driver needs pyscard, an optional dependency that is not installed. Also an ImportError,
    so code that imports the driver optionally can catch it as it would any missing module."""

    code = "NO_PYSCARD"

    def __init__(self, message: str = PYSCARD_MISSING):
        super().__init__(message)


class UnknownBackend(ReaderError, ValueError):
    """No reader backend of that name (``open_reader``): the message lists the backends there are."""

    code = "UNKNOWN_READER_BACKEND"

    def __init__(self, backend: str, known: list[str]):
        self.backend = backend
        super().__init__(f"no reader backend {backend!r}; the backends are: {', '.join(known)}")
