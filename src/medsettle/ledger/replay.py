"""Rebuilding state from the journal: replaying every entry in order into a fresh Settler.

Settlements are settled again from their recorded bills (the engines are deterministic) and each
result must equal the recorded one; a difference means the policy, the population or an engine is not
what it was, and replay stops with :class:`ReplayMismatch` naming the entry. Cancels and credits are
applied as recorded. An entry the bounds refuse (a credit or a cancel's refund past the balance bound,
which only an older version could have journaled) stops replay too, naming it: a balance never wraps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np

from ..engine import Settler
from ..errors import MedsettleError
from .journal import Entry, GroupCommitJournal
from .journaled import CANCEL, CREDIT, SETTLE


class ReplayMismatch(MedsettleError):
    code = "REPLAY_MISMATCH"


def replay(journal: GroupCommitJournal, settler: Settler, observe: Callable[[Entry], None] | None = None) -> int:
    """Apply every journal entry to ``settler`` (fresh state); return the number of entries replayed.

    ``observe`` sees every entry after it is applied; kinds the ledger does not know are left to it
    (the centre's sign-ins and stored answers), and without it they are an error.
    """
    n = 0
    for entry in journal.entries():
        try:
            _apply(entry, settler, observe)
        except ReplayMismatch:
            raise
        except MedsettleError as exc:  # a bound the entry would pass (an older version's journal), say: never wrap
            raise ReplayMismatch(f"journal entry {entry.seq} ({entry.kind}) cannot be applied: {exc}") from None
        n += 1
    return n


def _apply(entry: Entry, settler: Settler, observe: Callable[[Entry], None] | None) -> None:
    body = entry.body
    if entry.kind == SETTLE:
        settler.admissions.bind(body["bill"]["mdtrt_id"], int(body["adm"]))
        result = settler.settle(
            body["bill"], setl_id=body["setl_id"], when=dt.datetime.fromisoformat(body["setl_time"])
        )
        _same(entry.seq, body["row"], result.row)
    elif entry.kind == CANCEL:
        mirror = settler.cancel(
            body["original"], mirror_id=body["setl_id"], when=dt.datetime.fromisoformat(body["setl_time"])
        )
        _same(entry.seq, body["row"], mirror.row)
    elif entry.kind == CREDIT:
        balance = settler.credit(body["psn_no"], int(body["amount"]))
        if balance != int(body["balance"]):
            raise ReplayMismatch(f"journal entry {entry.seq}: balance {balance}, recorded {body['balance']}")
    elif observe is None:
        raise ReplayMismatch(f"journal entry {entry.seq}: unknown kind {entry.kind!r}")
    if observe is not None:
        observe(entry)


def _same(seq: int, recorded: list[int], computed: np.ndarray) -> None:
    if list(recorded) != computed.tolist():
        raise ReplayMismatch(f"journal entry {seq}: replay computed {computed.tolist()}, recorded {recorded}")
