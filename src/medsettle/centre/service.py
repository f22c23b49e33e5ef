"""The centre: envelope checks and dispatch to the flows, composed around one ledgered core.

What a :class:`Centre` holds, by owner:

- :class:`~medsettle.centre.core.Ledger`: the lock, the journal, the settler, the clock, the fail-stop
  state and the commit path; on replay it hands each journal entry to the flow owning its kind;
- :class:`~medsettle.centre.answers.AnswerStore`: idempotency, tombstones and the stored answers;
- one object per flow, each owning its state, exposing its handlers and replaying its own entries:
  sign-in (signins), pharmacy, settlements and cancels (settlements), outpatient, inpatient, reversal,
  reconciliation, queries, downloads, cards, persons (with the QR e-vouchers, qr).

``Centre.submit(request_dict)`` answers one request without waiting for the disk or for another answer:
it applies the request in memory under one lock, queues its journal entries there, and returns a Future
of the platform's response dict that resolves once those entries are durable. A 2601 whose original is
not yet durable is applied when the original's answer is (a chained Future), so the centre can run on
one thread. The HTTP server calls it on its event loop and awaits the Future, so many requests share one
fsync (group commit) without a thread each. ``Centre.handle(request_dict)`` is the blocking form, for
Python callers (plain JSON data back, amounts as Decimal); it may be called from several threads at
once. If the journal fails, the centre stops answering state-changing calls (its memory is ahead of its
journal); a restart replays the journal.

What counts as "the same request", which answers are stored and what 2601 covers are docs/messages.md.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from ..engine import Settler
from ..engine.bills import field_path
from ..errors import InvalidInput, MedsettleError
from ..jsontext import dumps_bytes, loads
from ..ledger import GroupCommitJournal
from ..seams import SYSTEM_CLOCK, SYSTEM_RANDOM, Clock, Randomness
from .answers import IDEMPOTENCY_WINDOW, AnswerStore, Stamps, ok_response
from .cards import Cards
from .certificates import Certificates
from .core import CentreFailStopped, Ledger
from .downloads import Downloads
from .encounters import Encounters
from .files import Files
from .inpatient import InpatientFlow
from .institutions import Institution
from .messages import INPUTS, Envelope, without_nulls
from .outpatient import OutpatientFlow
from .pending import after, answered, then
from .person_info import PersonInfo
from .persons import PersonsFlow
from .pharmacy import PharmacyFlow
from .qr import QrVouchers
from .queries import Queries
from .reconciliation import Reconciliation
from .regions import ForeignRegion, OwnedRegions
from .registry import Registry
from .reversal import ReversalFlow
from .settlements import Settlements
from .signins import EnvelopeRefused, SignIns

STATE_CHANGING = {
    "9001",
    "9002",
    "2102",
    "2103",
    "2201",
    "2202",
    "2203",
    "2204",
    "2205",
    "2207",
    "2208",
    "2601",
    "2401",
    "2402",
    "2404",
    "2405",
    "2301",
    "2302",
    "2304",
    "2305",
}

Handler = Callable[[Envelope, Institution, BaseModel], dict]

__all__ = ["Centre", "CentreFailStopped", "EnvelopeRefused", "STATE_CHANGING"]


class Centre:
    def __init__(
        self,
        settler: Settler,
        journal: GroupCommitJournal,
        institutions: list[Institution],
        registry: Registry | None = None,
        *,
        regions: list[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        randomness: Randomness = SYSTEM_RANDOM,
        idempotency_window: float = IDEMPOTENCY_WINDOW,  # ok-float: seconds
    ) -> None:
        """``regions``: the insured regions this process owns (default: all of the policy's). Several
        processes may share one PostgreSQL journal, each owning other regions (docs/architecture.md): each is
        the one writer of its regions' persons, refuses the others' and numbers its ids apart.
        ``clock`` and ``randomness``: where the centre's times (sign_no, setl_time, days, answers' times)
        and QR tokens come from; the real ones by default, a virtual clock and a seeded source in the
        simulator and in tests. ``idempotency_window``: seconds an answer is held in memory for resends
        (later, a resend is answered from the journal; docs/security.md 'Memory')."""
        self._regions = OwnedRegions(settler.population, [r.admdvs for r in settler.policy.regions], regions)
        # ``serve --workers``: where a request about another worker's region goes (medsettle.centre.workers);
        # None (one process, or processes each answering only their own regions): such a request is refused.
        self.handoff: Callable[[str, Any], Future] | None = None
        settler.id_prefix = self._regions.id_prefix
        journal.claim_regions(sorted(self._regions.owned))
        self.institutions = {i.fixmedins_code: i for i in institutions}
        self.registry = registry or Registry.generate(settler.population)
        self.encounters = Encounters()
        self._ledger = Ledger(settler, journal, clock)
        self._stamps = Stamps(clock, min(self._regions.owned))  # inf_refmsgid and the envelope's times
        self._answers = AnswerStore(self._ledger, self._stamps, window=idempotency_window)
        self._signins = SignIns(
            self._ledger, self.institutions, id_prefix=self._regions.id_prefix, partial=self._regions.partial
        )
        qr = QrVouchers(self._ledger, randomness)
        self._cards = Cards(self._ledger, self.registry, qr, self._regions)
        self._persons = PersonsFlow(self._ledger, self.registry, self._cards, qr, self._regions, self.institutions)
        settlements = Settlements(self._ledger, self._answers, self.encounters, self.registry)
        outpatient = OutpatientFlow(
            self._ledger, settlements, self._cards, self.encounters, id_prefix=self._regions.id_prefix
        )
        self._reversal = ReversalFlow(self._ledger, self._answers, settlements, self.encounters)
        flows = (
            self._signins,
            PharmacyFlow(self._ledger, settlements, self._cards),
            settlements,
            outpatient,
            InpatientFlow(self._ledger, settlements, self._cards, self.encounters, outpatient),
            self._reversal,
            Reconciliation(self._ledger, settlements, self._regions.owned),
            Queries(self._ledger, Certificates(self.registry, qr, self._ledger.clock)),
            Downloads(settler.policy, clock, self._ledger),
            Files(self._ledger),  # 9101/9102 (docs/files.md)
            self._cards,
            PersonInfo(self._ledger, self.registry, qr, self._regions),
        )
        self._handlers: dict[str, Handler] = {}
        for flow in flows:
            self._handlers.update(flow.handlers())
        self._ledger.replay()

    # -- what callers read --------------------------------------------------------------------

    @property
    def settler(self) -> Settler:
        return self._ledger.settler

    @property
    def journal(self) -> GroupCommitJournal:
        return self._ledger.journal

    @property
    def failed(self) -> str | None:
        """Why the centre stopped changing state (its journal failed), or None."""
        return self._ledger.failed

    @property
    def owned(self) -> set[str]:
        return self._regions.owned

    @property
    def partial(self) -> bool:
        return self._regions.partial

    @property
    def id_prefix(self) -> str:
        return self._regions.id_prefix

    # -- the entry points ---------------------------------------------------------------------

    def handle(self, request: Any) -> dict[str, Any]:
        """Answer one request; return once its journal entries are durable (blocks the calling thread).

        The response is plain JSON data, amounts as Decimal (``submit``'s may hold pre-written numbers)."""
        return loads(dumps_bytes(self.submit(request).result()))

    def submit(
        self, request: Any, *, url_infno: str | None = None, may_hold_nulls: bool = True, may_hand_off: bool = True
    ) -> Future:
        """Answer one request: a Future of the response that resolves once its journal entries are durable.

        Never blocks: the request is applied (or refused) before this returns, or, a 2601 of an original
        still waiting for the journal, once that original's answer is durable. The Future never raises:
        every failure is an answer in the platform's shape.

        The edge of the envelope (docs/messages.md): a key whose value is null is left out, at every depth,
        before anything reads the request or hashes it; ``may_hold_nulls`` False skips that walk for a
        caller that knows there is none (the HTTP server, whose body text has no ``null``). ``url_infno``:
        the transaction code the request's URL ends with (``POST /1101``); a body without an ``infno`` takes
        it, a body with another one is refused naming ``infno``.

        A request about another worker's region is handed to that worker (:attr:`handoff`) unless
        ``may_hand_off`` is False (a request handed to this one: it is answered here)."""
        refmsg_time = self._stamps.time()
        try:
            request = self._edge(request, url_infno, may_hold_nulls)
        except MedsettleError as exc:
            return answered(self._stamps.error(refmsg_time, exc))
        return self._submit(request, refmsg_time, may_hand_off and self.handoff is not None)

    def refusal(self, exc: MedsettleError) -> dict:
        """The platform's answer refusing a request that never reached the envelope (a path or a method the
        centre does not answer, a body that is not JSON, a bug): the same shape as every other refusal."""
        return self._stamps.error(self._stamps.time(), exc)

    @staticmethod
    def _edge(request: Any, url_infno: str | None, may_hold_nulls: bool) -> Any:
        if may_hold_nulls:
            try:
                request = without_nulls(request)
            except RecursionError:
                raise InvalidInput("the request is nested too deeply", field="request") from None
        if url_infno is not None and isinstance(request, dict):
            infno = request.get("infno")
            if infno is None:
                request = {**request, "infno": url_infno}
            elif not isinstance(infno, str):
                raise InvalidInput(f"expected the transaction code as a string, not {_json_kind(infno)}", field="infno")
            elif infno != url_infno:
                raise InvalidInput(f"{infno!r} in the body, but the URL ends with /{url_infno}", field="infno")
        return request

    def _submit(self, request: Any, refmsg_time: str, hand_off: bool = False) -> Future:
        stamps = self._stamps
        if hand_off and self.handoff is not None:  # plainly another worker's: handed on before it is parsed
            infno = request.get("infno") if isinstance(request, dict) else None
            foreign = self._regions.foreign_named(request, INPUTS.get(infno) if isinstance(infno, str) else None)
            if foreign is not None:
                return self._handed_off(self.handoff(foreign, request))
        try:
            env = _parse(Envelope, request, "")
            institution = self._signins.check_envelope(env)
            handler = self._handlers.get(env.infno)
            if handler is None:
                raise InvalidInput(f"transaction {env.infno} is not offered by this centre", field="infno")
            payload = _parse(INPUTS[env.infno], env.input, "input.")
            if self._regions.partial:
                named = self._regions.check_message(env, payload)
                if hand_off and not named and env.infno in STATE_CHANGING:  # answered by one worker
                    self._regions.check_institution(institution.admdvs)
                if self.handoff is not None and env.infno == "3202" and not payload.data.setl_optins:
                    raise InvalidInput(
                        "name the insured region whose settlements to list: each region's are held by its worker",
                        field="input.data.setl_optins",
                    )
            if env.infno not in STATE_CHANGING:
                return answered(stamps.ok(refmsg_time, handler(env, institution, payload)))
            if env.infno == "2601":
                original = self._reversal.waits_for(env, payload)
                if original is not None:  # answered once the original's answer is durable
                    return after(original, lambda: self._submit(request, refmsg_time, hand_off))
            pending = self._answers.once(
                env,
                institution.admdvs,
                lambda: ok_response("", "", "", handler(env, institution, payload)),  # stamped as it leaves
            )
        except ForeignRegion as exc:  # another worker's: its answer, as it gives it
            if hand_off and self.handoff is not None:
                return self._handed_off(self.handoff(exc.region, request))
            return answered(stamps.error(refmsg_time, exc))
        except MedsettleError as exc:  # refusals and bad input alike (refusals were stored by once)
            return answered(stamps.error(refmsg_time, exc))
        return then(  # every answer, first or stored, leaves with its own inf_refmsgid and this request's times
            pending,
            lambda response: stamps.again(response, refmsg_time),
            lambda exc: stamps.error(refmsg_time, exc),
        )

    def _handed_off(self, future: Future) -> Future:
        """The answer another worker gave (:attr:`handoff`); its failure (the worker did not answer) as the
        platform's refusal, never an exception."""
        answer: Future = Future()

        def done(source: Future) -> None:
            exc = source.exception()
            if exc is None:
                answer.set_result(source.result())
            else:
                error = exc if isinstance(exc, MedsettleError) else CentreFailStopped(f"a worker did not answer: {exc}")
                answer.set_result(self.refusal(error))

        future.add_done_callback(done)
        return answer

    # -- the admin API and what other processes ask -------------------------------------------

    def admin(self, body: Any) -> dict:
        """One admin request (a dict with ``action``); answers a dict, raises InvalidInput naming the field.

        As on the envelope, a key whose value is null is left out, at every depth."""
        try:
            body = without_nulls(body)
        except RecursionError:
            raise InvalidInput("the request is nested too deeply", field="request") from None
        if isinstance(body, dict) and not isinstance(body.get("action", ""), str):
            kind = _json_kind(body["action"])
            raise InvalidInput(f"expected the action's name as a string, not {kind}", field="action")
        return self._persons.admin(body)

    def fail_stop(self, failure: BaseException) -> CentreFailStopped:
        """Stop taking changes because the journal's database failed (a write beside the journal, such as the
        gateway's nonces, failed): the same fail-stop as a failed journal commit, logged once."""
        return self._ledger.fail(failure)

    def card_event(self, card_no: str, action: str, *, replace: bool = False) -> dict:
        """activate (at a bank), lost (optionally with a replacement card, issued), or cancel a card."""
        return self._cards.card_event(card_no, action, replace=replace)

    def credit_account(self, psn_no: str, amount: Any, key: str) -> dict:
        """Credit a person's account (the monthly 划入) once per ``key`` (say "2026-03"); amount in yuan."""
        return self._cards.credit_account(psn_no, amount, key)

    def cancel_person(self, psn_no: str, reason: str) -> dict:
        """End a person's insurance here (emigration, household registration lost, transfer out, death)."""
        return self._persons.cancel_person(psn_no, reason)

    def owns_person(self, psn_no: str, field: str = "psn_no") -> None:
        """Refuse a person insured in a region this process does not own (another process writes them)."""
        self._regions.owns_person(psn_no, field)


def _parse(model: type[BaseModel], data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidInput("expected a JSON object", field=prefix.rstrip(".") or "request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(err["msg"], field=prefix + (field_path(err["loc"]) or "")) from None


def _json_kind(value: Any) -> str:
    """What a JSON value is, for an error message (the value itself may be long)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a number" if isinstance(value, int | float | Decimal) else "that"  # ok-float: a type
