"""pyscard, imported once for the PC/SC driver and the card watcher: missing, it is PyscardMissing (which
says how to install it), not a bare ModuleNotFoundError from deep inside an import."""

from __future__ import annotations

from .errors import PyscardMissing

try:
    from smartcard import scard
except ImportError as error:  # pyscard not installed, or built without libpcsclite
    raise PyscardMissing() from error

__all__ = ["scard"]
