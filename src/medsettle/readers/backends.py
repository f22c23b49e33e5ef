"""Reader backends by name, as python-can picks its interfaces: ``open_reader("pcsc", ...)`` for a reader
through pcscd, ``open_reader("virtual", ..., bus=bus)`` for one on a virtual bus in this process
(docs/card.md 'The virtual backend'). Every backend gives the same :class:`.base.Reader`.

    reader = open_reader("pcsc", "Counter 00 00", psam="Counter 00 01", deadline=2.0)
    reader = open_reader("virtual", "Counter 00 00", psam="Counter 00 01", bus=bus, clock=clock)

A backend is imported only when it is opened, so the virtual one works where pyscard is not installed (and
opening ``pcsc`` there raises PyscardMissing, saying how to install it).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .base import Reader
from .errors import UnknownBackend

__all__ = ["BACKENDS", "backend_names", "open_reader", "register_backend"]

# name → the reader class, or "module:attribute" where it is, imported at the first open.
BACKENDS: dict[str, Callable[..., Reader] | str] = {
    "pcsc": "medsettle.readers.pcsc:PcscReader",
    "virtual": "medsettle.readers.virtual:VirtualReader",
}


def register_backend(name: str, factory: Callable[..., Reader] | str) -> None:
    """Offer a backend under ``name``: a callable ``factory(name, psam=..., **options)`` that gives a Reader,
    or its "module:attribute" path. A name taken already is replaced."""
    if not name or not isinstance(name, str):
        raise ValueError("a reader backend needs a name")
    BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def _factory(backend: str) -> Callable[..., Reader]:
    try:
        factory = BACKENDS[backend]
    except KeyError:
        raise UnknownBackend(backend, backend_names()) from None
    if isinstance(factory, str):
        module, _, attribute = factory.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
    return factory


def open_reader(backend: str, name: str | None = None, *, psam: str | None = None, **options: object) -> Reader:
    """A reader of ``backend`` for the card in ``name`` and the PSAM in ``psam`` (``name=None``: the backend's
    first reader and its PSAM). ``options`` are the backend's own: ``deadline`` and ``trace`` for both,
    ``bus`` (required) and ``clock`` for ``virtual``."""
    return _factory(backend)(name, psam=psam, **options)
