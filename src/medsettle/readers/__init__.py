"""Reader drivers: read the insured person's social security card at the counter (docs/card.md).

    from medsettle.readers import PcscReader
    with PcscReader("Counter 00 00", psam="Counter 00 01") as reader:
        reader.wait_for_card(timeout=10)
        card = reader.read_card()        # a CardRecord
        reader.verify_pin("123456")
        reader.authenticate(card)         # through the PSAM: raises CardNotGenuine for clones and altered data

Two backends give that same :class:`Reader`, picked by name with :func:`open_reader` (:mod:`.backends`): ``pcsc``
(:class:`PcscReader`, through pcscd) and ``virtual`` (:class:`VirtualReader`, the Python card OS and PSAM on a
:class:`~medsettle.hardware.bus.VirtualBus` in this process, no pcscd), both sending :mod:`.protocol`'s APDUs:

    reader = open_reader("virtual", "Counter 00 00", psam="Counter 00 01", bus=bus)

Every failure of the PC/SC stack becomes one of the errors in :mod:`.errors`. The PC/SC driver needs pyscard
(``pip install 'medsettle[readers]'``); without it this package still imports (the errors, the interface,
the card record: what the terminal and the virtual hardware use), and only taking :class:`PcscReader`,
:func:`list_readers` or :func:`first_reader` raises :class:`PyscardMissing`, which says how to install it.
"""

from typing import Any

from .backends import backend_names, open_reader, register_backend
from .base import Reader
from .errors import (
    CardBlocked,
    CardMute,
    CardNotGenuine,
    CardRemoved,
    CardUnreadable,
    NoCard,
    NoReader,
    PyscardMissing,
    ReaderError,
    ServiceDown,
    UnknownBackend,
    WrongPin,
)
from .record import CardRecord

__all__ = [
    "CardBlocked",
    "CardMute",
    "CardNotGenuine",
    "CardRecord",
    "CardRemoved",
    "CardUnreadable",
    "NoCard",
    "NoReader",
    "PcscReader",
    "PyscardMissing",
    "Reader",
    "ReaderError",
    "ServiceDown",
    "UnknownBackend",
    "VirtualReader",
    "WrongPin",
    "backend_names",
    "first_reader",
    "list_readers",
    "open_reader",
    "register_backend",
]


def __getattr__(name: str) -> Any:  # pyscard is an optional dependency: import it only when the PC/SC driver is used
    if name in ("PcscReader", "list_readers", "first_reader"):
        from . import pcsc  # noqa: PLC0415

        return getattr(pcsc, name)
    if name == "VirtualReader":
        from .virtual import VirtualReader  # noqa: PLC0415

        return VirtualReader
    raise AttributeError(name)
