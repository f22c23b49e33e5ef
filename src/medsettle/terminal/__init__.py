"""The counter (收费窗口) of a hospital or pharmacy: online settlement through the centre, its own durable
journal, and the failure procedures of docs/failures.md (cash with a deferred-settlement voucher, re-settled
later at the same counter within the window).

- :mod:`.journal`  the terminal's SQLite journal: every msgid written before it is sent, every step a state
- :mod:`.client`   the centre over HTTP; connection refused, timeout and 5xx become CentreUnreachable
- :mod:`.crash`    named crash points (MEDSETTLE_CRASH_AT) for the scenario tests
- :mod:`.counter`  the counter: sign-in, identify, the pharmacy sale, cancel, vouchers, store-and-forward,
                   reconciliation, resume
- :mod:`.outpatient`, :mod:`.inpatient`  a hospital's visits and stays, as journaled steps
- :mod:`.provisional`  the provisional split of a store-and-forward counter, from its cached rules
"""

from .client import CentreClient, CentreUnreachable
from .counter import Counter, CounterError, Identity, Receipt, Refused
from .journal import TerminalJournal

__all__ = ["CentreClient", "CentreUnreachable", "Counter", "CounterError", "Identity", "Receipt", "Refused",
           "TerminalJournal"]
