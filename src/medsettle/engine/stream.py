"""Settling a JSON-lines file of bills as a stream (``medsettle settle``): line by line, a chunk at a time.

Two passes. The first reads the bills (a file or standard input) and checks each as settling it would:
the plain shape and the quick route, or the Bill model and its resolution. It settles nothing, so an
invalid bill still fails the run before anything is settled or written; what it resolved (the indices
the engines take, the ids an answer repeats) goes to a temporary file, a chunk of bills at a time. The
second pass settles the spooled chunks in order, each as a batch (Settler.run_batch: the path the
command always took, which settled the list of bills as a batch), and writes their answers.

What it keeps does not grow with the number of bills: no settlement records (a stream cancels
nothing), and the admission keys of mdtrt_ids that no person's admission in progress holds are
forgotten now and then (:class:`StreamAdmissionKeys`).

Why it is quick: reading a bill and writing its answer must cost no more than settling it. A line is
read and checked in one go by pydantic-core (the plain shape's own validator reading JSON: strings
only, no number through float) and resolved by the quick route once; any other bill is read by the
exact reader (numbers as Decimal) and takes the model way, as ``Settler.settle`` would. Settling a
chunk is one engine call, and its answers are written together (:func:`.answers.render_answers`).

The parts, one module each: the bills file (billsfile), the admission keys (streamkeys), the first
pass's spool (spool), the answers' text (answers), progress on a terminal (progress); this module
drives the two passes.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain, compress, islice
from typing import IO

import numpy as np
from pydantic import ValidationError

from ..errors import MedsettleError
from ..policy.codes import INSUTYPES, PSN_TYPES
from .answers import Settled, refusal_answer, render_answers
from .bills import ResolvedBill, parse_bill, resolve_bill
from .billsfile import BillsFile, BillsFileError, read_exact
from .core import CoreEngine
from .fastpath import fast_path
from .plainbill import PLAIN_SHAPE as _PLAIN_SHAPE  # the plain shape's validator
from .plainbill import BillHead
from .progress import Progress
from .settler import Settler
from .spool import ChunkOfBills, batch_of, unspool
from .streamkeys import NoAdmissionKeys, StreamAdmissionKeys, admissions_in_progress


@dataclass
class StreamSummary:
    bills: int
    settled: int
    refused: int


class BillStream:
    """Checks then settles a :class:`BillsFile` on one Settler, writing one answer a bill to ``out``.

    The first pass resolves every bill and spools the resolved chunks to a temporary file; the second
    settles each chunk as a batch (Settler.run_batch, the path the command always took) and writes its
    answers. The Settler must be fresh (no bill yet): its admission keys become :class:`StreamAdmissionKeys`.
    """

    CHUNK = 2048  # bills read, settled and answered at a time
    FORGET_EVERY = 1 << 16  # new admission keys between looks at which are still in progress

    def __init__(
        self,
        settler: Settler,
        *,
        presettle: bool = False,
        progress: Callable[[str, int | None], Progress] | None = None,
    ) -> None:
        self.settler = settler
        self.presettle = presettle
        self.keys = settler.admissions = StreamAdmissionKeys()
        self._progress = progress or (lambda verb, total: Progress(None, verb, total))
        self._spool: IO[bytes] | None = None
        self._chunks = 0
        self.bills = 0

    def check(self, bills: BillsFile) -> int:
        """The first pass: every bill checked and resolved, nothing settled; the number of bills. Raises
        BillsFileError naming the file, line, bill and field of the first invalid bill."""
        settler = self.settler
        fast = fast_path(settler.engine, NoAdmissionKeys())
        route, validate_json = fast.route, _PLAIN_SHAPE.validate_json
        spool = self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        progress = self._progress("checked", None)
        self.bills = self._chunks = 0
        for lines in _chunks(bills.lines(), self.CHUNK):
            chunk = ChunkOfBills()
            for number, line in lines:
                try:  # JSON read and the plain shape checked in one go
                    plain = validate_json(line)
                except ValidationError:
                    plain = None
                routed = None if plain is None else route(plain)
                if routed is not None:
                    chunk.add_routed(*routed, fast)
                else:
                    chunk.add_resolved(*self._resolve(read_exact(line, bills.where(number)), bills.where(number)))
            try:
                chunk.spool(settler.compiled, len(settler.population), spool)
            except MedsettleError as exc:  # what the route or the model let through, the batch refuses
                raise BillsFileError(f"{bills.name}: {exc.code}: {exc} (nothing was settled)") from None
            self.bills += len(lines)
            self._chunks += 1
            progress.update(self.bills)
        progress.finish(self.bills)
        return self.bills

    def _resolve(self, bill: object, where: str) -> tuple[ResolvedBill, BillHead]:
        settler = self.settler
        try:
            model = parse_bill(bill)
            return resolve_bill(model, settler.compiled, settler.population, NoAdmissionKeys()), BillHead.of(model)
        except MedsettleError as exc:
            raise BillsFileError(
                f"{where}: {exc.code}: {exc} (nothing was settled: correct the bill and run again)"
            ) from None

    def settle(self, out: IO[bytes]) -> StreamSummary:
        """The second pass (after :meth:`check`): settle the bills in order, one answer each."""
        settler, keys, spool = self.settler, self.keys, self._spool
        if spool is None:
            raise RuntimeError("BillStream.settle comes after check (the first pass spools the bills)")
        insutype_of = np.array(INSUTYPES, object)[settler.population.attrs["insutype"]]
        psn_type_of = np.array(PSN_TYPES, object)[settler.population.attrs["psn_type"]]
        persons: set[int] = set()  # for the reference engine's admissions in progress
        track_persons = not isinstance(settler.engine, CoreEngine)
        forget_at, done, refused = self.FORGET_EVERY, 0, 0
        progress = self._progress("settled", self.bills)
        spool.seek(0)
        for _ in range(self._chunks):
            parts = unspool(spool)
            bill_ids, psn_nos, mdtrt_ids, setl_times, sns = parts[5:]
            batch = batch_of(parts, np.fromiter(map(keys.key, mdtrt_ids), np.int32, len(mdtrt_ids)))
            result = settler.run_batch(batch, presettle=self.presettle, validate=False)  # checked when spooled
            status, cells = result.column("status"), result.lines
            assert cells is not None  # run_batch splits the lines unless outputs="totals"
            ok = status == 0
            refusals = {int(i): refusal_answer(bill_ids[i], int(status[i]), done + int(i)) for i in np.flatnonzero(~ok)}
            pick = functools.partial(_settled_only, ok.tolist() if refusals else None)
            n_lines = np.diff(batch.line_start)
            persons_ok = batch.person[ok]
            answers = Settled(
                rows=result.out[ok],
                cells=cells[np.repeat(ok, n_lines)],
                n_lines=n_lines[ok],
                bill_ids=pick(bill_ids),
                setl_ids=self._setl_ids(int(ok.sum())),
                mdtrt_ids=pick(mdtrt_ids),
                psn_nos=pick(psn_nos),
                insutypes=insutype_of[persons_ok].tolist(),
                psn_types=psn_type_of[persons_ok].tolist(),
                setl_times=pick(setl_times),
                feedetl_sns=list(chain.from_iterable(pick(sns))),
            )
            out.write(render_answers(answers, refusals))
            if track_persons:
                persons.update(batch.person.tolist())
            if len(keys) >= forget_at:
                keys.keep_only(admissions_in_progress(settler, persons))
                forget_at = len(keys) + self.FORGET_EVERY
            done += len(status)
            refused += len(refusals)
            progress.update(done)
        out.flush()
        progress.finish(done)
        return StreamSummary(done, done - refused, refused)

    def _setl_ids(self, n: int) -> list[str]:
        return [""] * n if self.presettle else self.settler.new_setl_ids(n)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def _settled_only(ok: list[bool] | None, items: list) -> list:
    """The items of the settled bills (all of them when ``ok`` is None: none was refused)."""
    return items if ok is None else list(compress(items, ok))


def _chunks(items: Iterator, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    while chunk := list(islice(items, size)):
        yield chunk


def settle_file(
    settler: Settler, bills: BillsFile, out: IO[bytes], *, presettle: bool = False, progress_to: IO[str] | None = None
) -> StreamSummary:
    """Check every bill of ``bills``, then settle them in order, writing one JSON answer a line to ``out``.

    ``progress_to``: where progress goes (a terminal), or None for none."""
    stream = BillStream(settler, presettle=presettle, progress=lambda verb, total: Progress(progress_to, verb, total))
    try:
        stream.check(bills)
        return stream.settle(out)
    finally:
        stream.close()


__all__ = ["BillStream", "StreamSummary", "settle_file"]
