"""The counter (收费窗口) of a hospital or pharmacy: online settlement through the centre, its own durable
journal, and the failure procedures of docs/failures.md (cash with a deferred-settlement voucher, re-settled
later at the same counter within the window).

- :mod:`.counter`   the counter: one object holding its parts (the module's docstring says who owns what)
- :mod:`.journal`   the terminal's SQLite journal, the only module that speaks SQL: every msgid written before
                    it is sent, every step a state (:mod:`.states`: the sale states and their transitions)
- :mod:`.client`    the transport to the centre (:class:`Transport`); HTTP, where connection refused, timeout
                    and 5xx become CentreUnreachable
- :mod:`.crash`     named crash points (MEDSETTLE_CRASH_AT) for the scenario tests
- :mod:`.messaging`, :mod:`.signin`, :mod:`.identify`, :mod:`.pharmacy`, :mod:`.visits`, :mod:`.stays`,
  :mod:`.outcomes`, :mod:`.vouchers`, :mod:`.saf`, :mod:`.cancel`, :mod:`.resume`, :mod:`.reconcile`
                    the counter's parts, one subject each
- :mod:`.provisional`  the provisional split of a store-and-forward counter, from its cached rules
"""

from .client import CentreClient, CentreUnreachable, Transport
from .counter import Counter, CounterError, Identity, Receipt, Refused
from .states import IllegalTransition, SaleState
from .store import CounterStore

__all__ = [
    "CentreClient",
    "CentreUnreachable",
    "Counter",
    "CounterError",
    "IllegalTransition",
    "Identity",
    "Receipt",
    "Refused",
    "SaleState",
    "CounterStore",
    "Transport",
]
