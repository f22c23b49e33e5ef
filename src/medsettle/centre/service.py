"""The centre: envelope checks, sign-in, idempotency, the pharmacy flow, and dispatch to the other flows.

The transactions live in mixins by subject (outpatient, inpatient, cards, reversal, reconciliation,
queries, downloads); this class owns the lock, the journal, the stored answers and the replay.

``Centre.submit(request_dict)`` answers one request without waiting for the disk: it applies the request
in memory under one lock, queues its journal entries there, and returns a Future of the platform's
response dict that resolves once those entries are durable. The HTTP server calls it on its event loop
and awaits the Future, so many requests share one fsync (group commit) without a thread each.
``Centre.handle(request_dict)`` is the blocking form, for Python callers (plain JSON data back, amounts as
Decimal); it may be called from several threads at once. If the journal fails, the centre stops answering state-changing calls (its
memory is ahead of its journal); a restart replays the journal.

What counts as "the same request", which answers are stored and what 2601 covers are docs/messages.md.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pydantic import BaseModel, ValidationError

from ..engine import Settler
from ..engine.bills import field_path
from ..engine.results import Settlement
from ..errors import InvalidInput, MedsettleError, SettlementRefused
from ..jsontext import dumps_bytes, fen_number, loads
from ..ledger import GroupCommitJournal
from ..ledger.journal import Entry
from ..ledger.replay import replay
from ..money import fen_to_decimal
from ..timeutil import local_date, now_shanghai
from .cards import CardChecks
from .downloads import Downloads
from .encounters import EVENT_KINDS, Encounters
from .inpatient import InpatientFlow
from .institutions import Institution
from .messages import INPUTS, Cancel, Envelope, PharmacySale, SignIn, SignOut
from .outpatient import OutpatientFlow
from .pending import answered, then, when_all
from .persons import PersonAdmin
from .queries import Queries
from .reconciliation import Reconciliation
from .registry import CARD_EVENT, PERSON_EVENT, Registry
from .reversal import REVERSAL, TOMBSTONE, ReversalFlow

SIGNIN, SIGNOUT, ANSWER = "signin", "signout", "answer"
STATE_CHANGING = {"9001", "9002", "2102", "2103", "2201", "2202", "2203", "2204", "2205", "2207", "2208", "2601",
                  "2401", "2402", "2404", "2405", "2301", "2302", "2304", "2305"}


# The journal entries the request being answered has queued; its answer leaves once they are durable.
# Set by ``_once`` around a state-changing request; ``_wait`` outside one (the admin API) blocks instead.
_JOURNAL_WAITS: contextvars.ContextVar[list[Future] | None] = contextvars.ContextVar("journal_waits", default=None)


class EnvelopeRefused(MedsettleError):
    """Unknown institution, missing or expired sign_no: refused and not stored (docs/messages.md)."""

    code = "ENVELOPE_REFUSED"


class CentreUnavailable(MedsettleError):
    code = "CENTRE_UNAVAILABLE"


class Centre(OutpatientFlow, InpatientFlow, Queries, ReversalFlow, Reconciliation, Downloads, CardChecks,
             PersonAdmin):
    def __init__(self, settler: Settler, journal: GroupCommitJournal, institutions: list[Institution],
                 registry: Registry | None = None, *, regions: list[str] | None = None):
        """``regions``: the insured regions this process owns (default: all of the policy's). Several
        processes may share one PostgreSQL journal, each owning other regions (docs/architecture.md): each is the one
        writer of its regions' persons, refuses the others' and numbers its ids apart."""
        self.settler = settler
        self.journal = journal
        every = [r.admdvs for r in settler.policy.regions]
        unknown = sorted(set(regions or []) - set(every))
        if unknown:
            raise InvalidInput(f"regions {unknown} are not in the policy ({', '.join(every)})", field="regions")
        self.owned = set(regions or every)
        self.partial = self.owned != set(every)
        self.id_prefix = min(self.owned) if self.partial else ""  # setl_id, mdtrt_id and sign_no apart
        settler.id_prefix = self.id_prefix
        journal.claim_regions(sorted(self.owned))
        self.registry = registry or Registry.generate(settler.population)
        self.encounters = Encounters()
        self.institutions = {i.fixmedins_code: i for i in institutions}
        self._lock = threading.Lock()
        # msgid -> (request hash, the response as JSON bytes, or its Future while it is not yet durable).
        # Bytes, not dicts: millions of stored answers would otherwise be millions of containers for
        # Python's cyclic garbage collector to walk again and again (pauses of a second and more).
        self._answers: dict[str, tuple[str, Any]] = {}
        self._signins: dict[str, dict[str, Any]] = {}  # sign_no -> fixmedins_code, day, ...
        self._reversals: dict[str, dict] = {}  # omsgid -> the first 2601's output
        self._setl_institution: dict[str, str] = {}  # setl_id (settlements and mirrors) -> fixmedins_code
        self._credit_keys: set[str] = set()  # "psn_no/month" of account credits made
        self._qr_tokens: dict[str, tuple] = {}  # QR e-voucher token -> (psn_no, expiry); in memory only
        self._sign_seq = itertools.count(1)
        self.failed: str | None = None
        self._handlers: dict[str, Callable[[Envelope, Institution, BaseModel], dict]] = {
            "9001": self._sign_in, "9002": self._sign_out, "2101": self._pharmacy_presettle,
            "2102": self._pharmacy_settle, "2103": self._cancel, "2201": self._register,
            "2202": self._register_cancel, "2203": self._visit, "2204": self._fees, "2205": self._fees_cancel,
            "2206": self._outpatient_presettle, "2207": self._outpatient_settle, "2208": self._cancel,
            "5206": self._accumulators, "2601": self._reverse, "3201": self._statement,
            "3202": self._statement_detail, "2401": self._admit, "2402": self._discharge,
            "2404": self._admission_cancel, "2405": self._discharge_cancel, "2301": self._fees,
            "2302": self._fees_cancel, "2303": self._inpatient_presettle, "2304": self._inpatient_settle,
            "2305": self._cancel, "1312": self._download_catalogue, "9901": self._download_rules,
            "1101": self._person_info,
        }
        replay(journal, settler, observe=self._observe)

    # -- the one entry point ----------------------------------------------------------------

    def handle(self, request: Any) -> dict[str, Any]:
        """Answer one request; return once its journal entries are durable (blocks the calling thread).

        The response is plain JSON data, amounts as Decimal (``submit``'s may hold pre-written numbers)."""
        return loads(dumps_bytes(self.submit(request).result()))

    def submit(self, request: Any) -> Future:
        """Answer one request: a Future of the response that resolves once its journal entries are durable.

        The request is applied (or refused) before this returns; only the durability is awaited. The
        Future never raises: every failure is an answer in the platform's shape."""
        refmsg_time = _now_text()
        msgid = request.get("msgid", "") if isinstance(request, dict) else ""
        try:
            env = _parse(Envelope, request, "")
            msgid = env.msgid
            institution = self._check_envelope(env)
            handler = self._handlers.get(env.infno)
            if handler is None:
                raise InvalidInput(f"transaction {env.infno} is not offered by this centre", field="infno")
            payload = _parse(INPUTS[env.infno], env.input, "input.")
            if self.partial:
                self._check_ownership(env, payload)
            if env.infno not in STATE_CHANGING:
                return answered(_ok(msgid, refmsg_time, handler(env, institution, payload)))
            pending = self._once(env, lambda: _ok(msgid, refmsg_time, handler(env, institution, payload)))
        except MedsettleError as exc:  # refusals and bad input alike (refusals were stored by _once)
            return answered(_error(msgid, refmsg_time, exc))
        return then(pending, lambda response: _with_times(response, refmsg_time),
                    lambda exc: _error(msgid, refmsg_time, exc))

    # -- envelope, sign-in ------------------------------------------------------------------

    def _check_envelope(self, env: Envelope) -> Institution:
        institution = self.institutions.get(env.fixmedins_code)
        if institution is None:
            raise EnvelopeRefused(f"unknown institution {env.fixmedins_code!r}", field="fixmedins_code")
        if env.mdtrtarea_admvs and env.mdtrtarea_admvs != institution.admdvs:
            raise EnvelopeRefused(f"institution {institution.fixmedins_code} is in {institution.admdvs}, not "
                                  f"{env.mdtrtarea_admvs}", field="mdtrtarea_admvs")
        if env.infno != "9001":
            signin = self._signins.get(env.sign_no)
            if signin is None and self.partial:  # signed in at another process sharing the database
                entry = self.journal.find(SIGNIN, env.sign_no)
                if entry is not None:
                    signin = {k: entry.body[k] for k in ("fixmedins_code", "opter_no", "dev_no", "day")}
                    with self._lock:
                        self._signins.setdefault(env.sign_no, signin)
            if (signin is None or signin["fixmedins_code"] != env.fixmedins_code
                    or signin["day"] != now_shanghai().date().isoformat()):
                raise EnvelopeRefused("missing, unknown or expired sign_no: sign in with 9001", field="sign_no")
        return institution

    def _sign_in(self, env: Envelope, institution: Institution, payload: SignIn) -> dict:
        now = now_shanghai()
        sign_no = f"{now:%Y%m%d%H%M%S}{institution.fixmedins_code[-5:]}{self.id_prefix}{next(self._sign_seq):06d}"
        record = {"fixmedins_code": institution.fixmedins_code, "opter_no": payload.signIn.opter_no,
                  "dev_no": env.dev_no, "day": now.date().isoformat()}
        # medsettle extension: the counter learns its failure policy and floor limits (docs/failures.md) here.
        output = {"signinoutb": {"sign_time": _now_text(), "sign_no": sign_no},
                  "insinfo": {"failure_policy": institution.failure_policy, "tier": institution.tier,
                              "floor_per_bill": str(fen_to_decimal(institution.floor_per_bill)),
                              "floor_per_person_day": str(fen_to_decimal(institution.floor_per_person_day)),
                              "floor_outstanding": str(fen_to_decimal(institution.floor_outstanding))}}
        self._commit(SIGNIN, institution.admdvs, sign_no, {**record, "sign_no": sign_no, **self._answer(env, output)},
                     apply=lambda: self._signins.__setitem__(sign_no, record))
        return output

    def _sign_out(self, env: Envelope, institution: Institution, payload: SignOut) -> dict:
        sign_no = payload.signOut.sign_no
        if sign_no != env.sign_no:
            raise InvalidInput("signs out another terminal's sign_no", field="input.signOut.sign_no")
        output = {"signoutoutb": {"sign_time": _now_text()}}
        self._commit(SIGNOUT, institution.admdvs, env.msgid, {"sign_no": sign_no, **self._answer(env, output)},
                     apply=lambda: self._signins.pop(sign_no, None))
        return output

    # -- regions owned by this process ----------------------------------------------------------

    def owns_person(self, psn_no: str, field: str = "psn_no") -> None:
        """Refuse a person insured in a region this process does not own (another process writes them)."""
        population = self.settler.population
        region = population.region_of(population.index_of(psn_no, field))
        if region not in self.owned:
            raise InvalidInput(f"person {psn_no} is insured in {region}, which this centre process does not own "
                               f"(it owns {', '.join(sorted(self.owned))}): send it to that region's process",
                               field=field)

    def _check_ownership(self, env: Envelope, payload: BaseModel) -> None:
        if env.insuplc_admdvs and env.insuplc_admdvs not in self.owned:
            raise InvalidInput(f"insured region {env.insuplc_admdvs} is not owned by this centre process "
                               f"(it owns {', '.join(sorted(self.owned))})", field="insuplc_admdvs")
        for part in ("data", "mdtrtinfo", "dscginfo"):
            psn_no = getattr(getattr(payload, part, None), "psn_no", None)
            if psn_no:
                self.owns_person(psn_no, f"input.{part}.psn_no")
        for j, line in enumerate(getattr(payload, "feedetail", None) or []):
            if getattr(line, "psn_no", None):
                self.owns_person(line.psn_no, f"input.feedetail[{j}].psn_no")

    def _new_mdtrt_id(self, kind: str, institution: Institution) -> str:
        n = self.encounters.count + 1
        if self.id_prefix:
            return f"{kind}{institution.admdvs}{self.id_prefix}{n:06d}"
        return f"{kind}{institution.admdvs}{n:012d}"

    @staticmethod
    def _answer(env: Envelope, output: dict) -> dict:
        """The journal fields that let a replay give the same request its stored answer again."""
        return {"msgid": env.msgid, "hash": env.request_hash(), "answer_output": output}

    # -- pharmacy ---------------------------------------------------------------------------

    def _pharmacy_presettle(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        bill = self._pharmacy_bill(env, institution, payload)
        return self._presettle(env, institution, payload.data, payload.data.psn_no, bill)

    def _presettle(self, env: Envelope, institution: Institution, data: Any, psn_no: str, bill: dict) -> dict:
        """A pre-settlement (2101/2206/2303): the card is checked, not activated; nothing changes."""
        self._present_card(env, institution, data, psn_no, presettle=True)
        with self._lock:
            return self._settlement_output(self.settler.presettle(bill))

    def _pharmacy_settle(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        bill = self._pharmacy_bill(env, institution, payload)
        self._present_card(env, institution, payload.data, payload.data.psn_no, activate=True)
        return self._settle(env, institution, bill, {})

    def _settle(self, env: Envelope, institution: Institution, bill: dict, extra: dict) -> dict:
        """Settle a bill and journal it with its answer (``extra``: the visit's lines it settles)."""
        with self._lock:
            self._refuse_if_failed()
            result = self.settler.settle(bill, when=now_shanghai().replace(tzinfo=None, microsecond=0))
            self._setl_institution[result.setl_id] = institution.fixmedins_code
            output = self._settlement_output(result)
            if extra:
                self.encounters.mark_settled(extra["mdtrt_id"], extra["feedetl_sns"], result.setl_id)
            future = self.journal.append_future("settle", institution.admdvs, result.setl_id, {
                "setl_id": result.setl_id, "bill": bill, "setl_time": result.setl_time.isoformat(),
                "adm": result.adm, "row": result.row.tolist(), "msgid": env.msgid, "hash": env.request_hash(),
                "fixmedins_code": institution.fixmedins_code, **extra,
            })
        self._wait(future)
        return output

    def _event(self, kind: str, institution: Institution, env: Envelope, make_body: Callable[[], dict],
               make_output: Callable[[dict], dict]) -> dict:
        """Apply an encounter event and journal it with its answer; return the answer's output."""
        with self._lock:
            self._refuse_if_failed()
            body = make_body()
            output = make_output(body)
            self.encounters.apply(kind, body)
            future = self.journal.append_future(kind, institution.admdvs, env.msgid,
                                                {**body, **self._answer(env, output)})
        self._wait(future)
        return output

    def _cancel(self, env: Envelope, institution: Institution, payload: Cancel) -> dict:
        original = self.settler.records.get(payload.data.setl_id)
        if original is None or original.psn_no != payload.data.psn_no:
            raise InvalidInput(f"no settlement {payload.data.setl_id} of person {payload.data.psn_no}",
                               field="input.data.setl_id")
        with self._lock:
            self._refuse_if_failed()
            mirror = self.settler.cancel(payload.data.setl_id)
            self._setl_institution[mirror.setl_id] = institution.fixmedins_code
            self.encounters.mark_cancelled(payload.data.setl_id)
            output = self._settlement_output(mirror)
            future = self.journal.append_future("cancel", institution.admdvs, mirror.setl_id, {
                "setl_id": mirror.setl_id, "original": payload.data.setl_id,
                "setl_time": mirror.setl_time.isoformat(), "row": mirror.row.tolist(), "msgid": env.msgid,
                "hash": env.request_hash(), "fixmedins_code": institution.fixmedins_code,
            })
        self._wait(future)
        return output

    def _pharmacy_bill(self, env: Envelope, institution: Institution, payload: PharmacySale) -> dict:
        if payload.data.med_type != "41":
            raise InvalidInput("a pharmacy sale has med_type 41", field="input.data.med_type")
        if "41" not in institution.med_types:
            raise InvalidInput(f"institution {institution.fixmedins_code} may not settle med_type 41",
                               field="input.data.med_type")
        self._check_routing(env, payload.data.psn_no)
        when = next((f.fee_ocur_time for f in payload.feedetail if f.fee_ocur_time), "") or env.inf_time
        bill = {
            "bill_id": env.msgid, "psn_no": payload.data.psn_no, "mdtrt_id": f"MD{env.msgid}", "med_type": "41",
            "setl_time": when or _now_text(), "hosp_lv": institution.tier, "mdtrtarea_admvs": institution.admdvs,
            "acct_used_flag": str(payload.data.acct_used_flag),
            "feedetail": [f.model_dump(mode="json", exclude_none=True) for f in payload.feedetail],
        }
        if payload.data.medfee_sumamt is not None:
            bill["medfee_sumamt"] = str(payload.data.medfee_sumamt)
        if payload.data.saf_cash_amt is not None:
            bill["saf_cash_amt"] = str(payload.data.saf_cash_amt)
        if payload.data.deferred_voucher_no is not None:
            self._check_deferred_window(institution, bill["setl_time"], "41")
        return bill

    def _check_deferred_window(self, institution: Institution, setl_time: str, med_type: str) -> None:
        """A deferred settlement (自费转医保) must come within the treatment region's window (docs/failures.md):
        until 23:59:59 of the Nth calendar day after the bill's date; later it is a manual claim."""
        try:
            bill_date = local_date(setl_time)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="input.feedetail[0].fee_ocur_time") from None
        region = self.settler.policy.region(institution.admdvs)
        rules = region.ruleset_on(bill_date) or region.rulesets[0]
        days = rules.deferred_window.inpatient_days if med_type == "21" else rules.deferred_window.outpatient_days
        last_day = bill_date + dt.timedelta(days=days)
        if now_shanghai().date() > last_day:
            raise SettlementRefused("WINDOW_EXPIRED", f"the bill of {bill_date} could be settled until {last_day}; "
                                    "it is now a manual claim at the insured region's agency")

    @staticmethod
    def _settlement_output(result: Settlement) -> dict:
        """setlinfo, setldetail and the per-line split, as the platform answers a settlement; the amounts
        are pre-written JSON numbers (jsontext.fen_number): an answer is only ever written out."""
        return result.to_json(fen_number)

    # -- idempotency and journaling ----------------------------------------------------------

    def _once(self, env: Envelope, work: Callable[[], dict]) -> Future:
        """Answer a state-changing request once; the same request gets the stored answer again.

        Returns the Future of the answer, resolved once the journal entries ``work`` queued are durable;
        until then an identical request gets that same Future, so no copy of an answer leaves before
        the original is durable. A failed journal fails the Future with CentreUnavailable."""
        digest = env.request_hash()
        with self._lock:
            stored = self._answers.get(env.msgid)
            if stored is None:
                pending: Future = Future()
                self._answers[env.msgid] = (digest, pending)
        if stored is not None:
            stored_digest, answer = stored
            if stored_digest == TOMBSTONE:
                raise InvalidInput(f"msgid {env.msgid} was reversed by 2601 before it arrived", field="msgid")
            if stored_digest != digest:
                raise InvalidInput(f"msgid {env.msgid} was already used for another request", field="msgid")
            return answer if isinstance(answer, Future) else answered(loads(answer))
        journal_waits: list[Future] = []
        token = _JOURNAL_WAITS.set(journal_waits)
        try:
            try:
                response = work()
            except SettlementRefused as exc:  # refusals are answers too: stored and journaled
                response = _error(env.msgid, _now_text(), exc)
                with self._lock:
                    self._wait(self.journal.append_future(ANSWER, self.institutions[env.fixmedins_code].admdvs,
                                                          env.msgid, {"hash": digest, "response": response}))
        except BaseException as exc:
            with self._lock:
                del self._answers[env.msgid]  # bad input is not stored: a corrected resend may use the msgid
            pending.set_exception(exc)  # an identical request waiting meanwhile gets the same error
            raise
        finally:
            _JOURNAL_WAITS.reset(token)
        when_all(journal_waits, lambda failure: self._settle_answer(env.msgid, digest, pending, response, failure))
        return pending

    def _settle_answer(self, msgid: str, digest: str, pending: Future, response: dict,
                       failure: BaseException | None) -> None:
        """Store a durable answer for repeats, or, if its journal entries failed, forget it and fail."""
        if failure is None:
            with self._lock:
                self._answers[msgid] = (digest, dumps_bytes(response))
            pending.set_result(response)
            return
        self.failed = f"the journal failed: {failure}"
        with self._lock:
            del self._answers[msgid]
        pending.set_exception(CentreUnavailable(f"{self.failed}; restart the centre (it replays its journal)"))

    def _commit(self, kind: str, region: str, key: str, body: dict, *, apply: Callable[[], Any]) -> None:
        with self._lock:
            self._refuse_if_failed()
            apply()
            future = self.journal.append_future(kind, region, key, body)
        self._wait(future)

    def _wait(self, future: Future) -> None:
        """Wait until a queued journal entry is durable; inside a state-changing request, the answer
        waits for it instead (see ``_once``)."""
        journal_waits = _JOURNAL_WAITS.get()
        if journal_waits is not None:
            journal_waits.append(future)
            return
        try:
            future.result()
        except Exception as exc:
            self.failed = f"the journal failed: {exc}"
            raise CentreUnavailable(f"{self.failed}; restart the centre (it replays its journal)") from None

    def _refuse_if_failed(self) -> None:
        if self.failed:
            raise CentreUnavailable(f"{self.failed}; restart the centre (it replays its journal)")

    def _observe(self, entry: Entry) -> None:
        """Rebuild sign-ins and stored answers while the journal is replayed."""
        body = entry.body
        if entry.kind in ("settle", "cancel"):
            self._setl_institution[body["setl_id"]] = body["fixmedins_code"]
        if entry.kind == SIGNIN:
            self._signins[entry.key] = {k: body[k] for k in ("fixmedins_code", "opter_no", "dev_no", "day")}
            self._sign_seq = itertools.count(len(self._signins) + 1)
        elif entry.kind == SIGNOUT:
            self._signins.pop(body["sign_no"], None)
        elif entry.kind == ANSWER:
            self._answers[entry.key] = (body["hash"], dumps_bytes(body["response"]))
            return
        elif entry.kind == "credit":
            self._credit_keys.add(entry.key)
        elif entry.kind == CARD_EVENT:
            self.registry.apply(entry.kind, body)
        elif entry.kind == PERSON_EVENT:
            self._apply_person_event(body)
        elif entry.kind in EVENT_KINDS:
            self.encounters.apply(entry.kind, body)
        elif entry.kind == "settle" and "feedetl_sns" in body:
            self.encounters.mark_settled(body["mdtrt_id"], body["feedetl_sns"], body["setl_id"])
        elif entry.kind == "cancel":
            self.encounters.mark_cancelled(body["original"])
        elif entry.kind == REVERSAL:
            self._reversals[body["omsgid"]] = body["answer_output"]
            if body["tombstone"]:
                self._answers[body["omsgid"]] = (TOMBSTONE, None)
        if "msgid" in body:
            # A settlement's answer is a function of its record, so it is not journaled twice.
            output = (body["answer_output"] if "answer_output" in body
                      else self._settlement_output(self.settler.records[body["setl_id"]]))
            self._answers[body["msgid"]] = (body["hash"], dumps_bytes({"infcode": 0, "inf_refmsgid": body["msgid"],
                                                                       "err_msg": "", "output": output}))


def _parse(model: type[BaseModel], data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidInput("expected a JSON object", field=prefix.rstrip(".") or "request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(err["msg"], field=prefix + (field_path(err["loc"]) or "")) from None


_clock_text: tuple[int, str] = (0, "")  # (unix second, its text): every answer carries it twice


def _now_text() -> str:
    """The time now in Asia/Shanghai as the platform writes it, made once per second."""
    global _clock_text
    second = int(time.time())
    if _clock_text[0] != second:
        _clock_text = (second, now_shanghai().strftime("%Y-%m-%d %H:%M:%S"))
    return _clock_text[1]


def _ok(msgid: str, refmsg_time: str, output: dict) -> dict:
    return {"infcode": 0, "inf_refmsgid": msgid, "refmsg_time": refmsg_time, "respond_time": _now_text(),
            "err_msg": "", "output": output}


def _error(msgid: str, refmsg_time: str, exc: MedsettleError) -> dict:
    return {"infcode": -1, "inf_refmsgid": msgid, "refmsg_time": refmsg_time, "respond_time": _now_text(),
            "err_msg": f"{exc.code}: {exc}", "output": {}}


def _with_times(response: dict, refmsg_time: str) -> dict:
    return {**response, "refmsg_time": refmsg_time, "respond_time": _now_text()}
