"""What the first pass of ``medsettle settle`` spools for the second: its checked bills, resolved, a chunk
at a time (with marshal: quick to write and read back), and the batch a spooled chunk settles as.
"""

from __future__ import annotations

import marshal
from typing import IO

import numpy as np

from ..policy.compile import CompiledPolicy
from .answers import SETL_TIME_TEXTS
from .bills import BillBatch, ResolvedBill
from .fastpath import CoreFastPath, ReferenceFastPath
from .plainbill import BillHead


class ChunkOfBills:
    """A chunk of checked bills, resolved as the engines take them: what the first pass spools for the
    second (with marshal: quick to write and read back, and only what the second pass needs)."""

    def __init__(self) -> None:
        self.args: list[int] = []  # per bill: person, day, med_type, tier, treat_region, acct_flag, -, saf_cash, lines
        self.items: list[bytes] = []
        self.prices: list[bytes] = []
        self.counts: list[bytes] = []
        self.apprs: list[bytes] = []
        self.heads: list[BillHead] = []

    def add_routed(self, args: tuple, head: BillHead, fast: CoreFastPath | ReferenceFastPath) -> None:
        """A bill the quick route resolved (its lines in ``fast``'s input buffers). The first pass runs
        this once per bill: as few steps as can be (args as the route gives them, adm and all)."""
        n = args[8]
        self.args += args
        self.items.append(fast.item_in[:n].tobytes())
        self.prices.append(fast.pric_in[:n].tobytes())
        self.counts.append(fast.cnt_in[:n].tobytes())
        self.apprs.append(fast.appr_in[:n].tobytes())
        self.heads.append(head)

    def add_resolved(self, r: ResolvedBill, head: BillHead) -> None:
        """A bill the model way resolved."""
        self.args += (*r[:8], len(r.items))
        self.items.append(np.array(r.items, np.int32).tobytes())
        self.prices.append(np.array(r.prices, np.int64).tobytes())
        self.counts.append(np.array(r.cnts, np.int64).tobytes())
        self.apprs.append(np.array(r.apprs, np.uint8).tobytes())
        self.heads.append(head)

    def spool(self, compiled: CompiledPolicy, n_persons: int, to: IO[bytes]) -> None:
        """Check the chunk as a batch (what the second pass settles cannot fail) and write it to ``to``."""
        parts = (
            np.array(self.args, np.int64).tobytes(),
            b"".join(self.items),
            b"".join(self.prices),
            b"".join(self.counts),
            b"".join(self.apprs),
            [h.bill_id for h in self.heads],
            [h.psn_no for h in self.heads],
            [h.mdtrt_id for h in self.heads],
            list(map(SETL_TIME_TEXTS.__getitem__, [h.setl_time for h in self.heads])),
            [h.feedetl_sns for h in self.heads],
        )
        batch_of(parts, np.zeros(len(self.heads), np.int32)).validate(compiled, n_persons)
        data = marshal.dumps(parts)
        to.write(len(data).to_bytes(8, "little") + data)  # marshal.load from a file reads in tiny pieces


def unspool(spool: IO[bytes]) -> tuple:
    """The next chunk that ChunkOfBills.spool wrote."""
    size = int.from_bytes(spool.read(8), "little")
    return marshal.loads(spool.read(size))


def batch_of(parts: tuple, adm: np.ndarray) -> BillBatch:
    """The batch of a spooled chunk, with its bills' admission keys."""
    args = np.frombuffer(parts[0], np.int64).reshape(-1, 9)  # the route's arguments (its adm: not this one)
    line_start = np.zeros(len(args) + 1, np.int64)
    np.cumsum(args[:, 8], out=line_start[1:])
    return BillBatch.from_columns(
        person=args[:, 0],
        day=args[:, 1],
        med_type=args[:, 2],
        tier=args[:, 3],
        treat_region=args[:, 4],
        acct_flag=args[:, 5],
        saf_cash=args[:, 7],
        adm=adm,
        line_start=line_start,
        item=np.frombuffer(parts[1], np.int32),
        pric=np.frombuffer(parts[2], np.int64),
        cnt=np.frombuffer(parts[3], np.int64),
        appr=np.frombuffer(parts[4], np.uint8),
        bill_ids=parts[5],
    )


__all__ = ["ChunkOfBills", "batch_of", "unspool"]
