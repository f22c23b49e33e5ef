"""A counter (收费窗口) of a pharmacy or hospital: one object holding the parts that each own one subject.

Who owns what (each part a class in its own module; a part reaches another only through its public methods):

- :class:`~.messaging.Messenger`          the msgid, the envelope, write-before-send and the resend loop
- :class:`~.signin.SignIn`                 9001/9002 and what the counter caches at sign-in (policy, rules)
- :class:`~.identify.Identification`       the card reader and the 1101s (who the patient is)
- :class:`~.outcomes.Outcomes`             how a sale ends: receipt, cash against a voucher, 2601 of an abandoned
                                           settle, a voucher's settlement recorded
- :class:`~.pharmacy.PharmacySales`        the pharmacy sale (1101, 2101, 2102)
- :class:`~.visits.Visits`                 outpatient visits (2201, 2203, 2204, 2206, 2207)
- :class:`~.stays.Stays`                   inpatient stays (2401, 2301, 2303, 2304, 2305, 2402)
- :class:`~.vouchers.Vouchers`             vouchers re-settled at the counter (自费转医保)
- :class:`~.saf.Provisional`, :class:`~.saf.Forwarding`   store-and-forward: settling provisionally, forwarding
- :class:`~.cancel.Cancels`                2103/2208
- :class:`~.resume.Resumption`             what a restart finishes
- :class:`~.reconcile.Reconciliation`      3201/3202 at the end of the day

Every step is journaled (:class:`~.journal.CounterStore`, the only module that speaks SQL) before it takes
effect, and a sale's states are :class:`~.states.SaleState` with their allowed transitions.

The counter reaches the world only through its seams: the transport to the centre (:class:`~.client.Transport`,
HTTP by default), the clock, the randomness of its back-off, and the crash hook of its crash points
(:mod:`medsettle.seams`); a test or the simulator passes its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..seams import EXIT_ON_CRASH, SYSTEM_CLOCK, SYSTEM_RANDOM, Clock, CrashHook, Randomness
from .cancel import Cancels
from .client import Transport
from .common import CounterError, Identity, Receipt, Refused, bill_total, check_items
from .crash import CrashPoints
from .identify import Identification
from .messaging import Messenger
from .outcomes import Outcomes
from .pharmacy import PharmacySales
from .reconcile import Reconciliation
from .resume import Resumed, Resumption
from .saf import Forwarding, Provisional
from .signin import SignIn
from .stays import Stays
from .store import CounterStore
from .visits import Visits
from .vouchers import Vouchers


class Counter:
    """A counter: its parts, wired once, and the public API the CLI and integrators use."""

    def __init__(
        self,
        fixmedins_code: str,
        journal: CounterStore,
        client: Transport,
        *,
        reader: Any = None,
        admdvs: str | None = None,
        opter: str = "001",
        dev_no: str = "T01",
        resend_for: float = 3.0,
        clock: Clock = SYSTEM_CLOCK,
        randomness: Randomness = SYSTEM_RANDOM,
        crash: CrashHook = EXIT_ON_CRASH,
        crash_at: str | None = None,
    ) -> None:
        """``client``: the transport to the centre (:class:`~.client.CentreClient` for HTTP). ``clock``: wall
        time (msgids, bill times, the day) and the resend loop's time and sleep; ``randomness``: its jitter.
        ``crash``: what a crash point does when reached (exit the process); ``crash_at``: which point
        (default: the environment's ``MEDSETTLE_CRASH_AT``)."""
        self.code = fixmedins_code
        self.admdvs = admdvs or fixmedins_code[1:7]
        self.journal = journal
        self.clock = clock
        points = CrashPoints(crash, crash_at)
        self.messenger = Messenger(
            journal,
            client,
            code=fixmedins_code,
            admdvs=self.admdvs,
            opter=opter,
            dev_no=dev_no,
            resend_for=resend_for,
            clock=clock,
            randomness=randomness,
        )
        self.signin = SignIn(journal, self.messenger)
        self.identification = Identification(journal, self.messenger, reader)
        self.outcomes = Outcomes(journal, self.messenger, points)
        self.provisional = Provisional(
            journal, self.signin, self.outcomes, admdvs=self.admdvs, clock=clock, crash=points
        )
        self.pharmacy = PharmacySales(
            journal,
            self.messenger,
            self.identification,
            self.signin,
            self.outcomes,
            self.provisional,
            clock=clock,
            crash=points,
        )
        self.visits = Visits(
            journal,
            self.messenger,
            self.identification,
            self.signin,
            self.outcomes,
            self.provisional,
            clock=clock,
            crash=points,
        )
        self.stays = Stays(
            journal, self.messenger, self.identification, self.signin, self.outcomes, clock=clock, crash=points
        )
        self.vouchers = Vouchers(
            journal, self.messenger, self.identification, self.outcomes, self.visits, self.stays, crash=points
        )
        self.forwarding = Forwarding(
            journal, self.messenger, self.visits, clock=clock, randomness=randomness, crash=points
        )
        self.cancels = Cancels(journal, self.messenger)
        self.resumption = Resumption(
            journal, self.messenger, self.signin, self.outcomes, self.visits, self.forwarding, self.cancels
        )
        self.reconciliation = Reconciliation(journal, self.messenger, self.stays, clock=clock)

    # -- the seams and what the CLI sets -------------------------------------------------------------

    @property
    def client(self) -> Transport:
        """The transport to the centre."""
        return self.messenger.transport

    @client.setter
    def client(self, transport: Transport) -> None:
        self.messenger.transport = transport

    @property
    def reader(self) -> Any:
        """The counter's card reader (None: none)."""
        return self.identification.reader

    @reader.setter
    def reader(self, reader: Any) -> None:
        self.identification.reader = reader

    def now(self) -> dt.datetime:
        """The counter's wall time (Asia/Shanghai)."""
        return self.clock.now()

    # -- sign in and out -----------------------------------------------------------------------------

    def sign_in(self) -> str:
        return self.signin.sign_in()

    def sign_out(self) -> None:
        self.signin.sign_out()

    @property
    def failure_policy(self) -> str:
        return self.signin.failure_policy

    def cache_rules(self) -> None:
        self.signin.cache_rules()

    def cached_catalogue_codes(self) -> set[str] | None:
        return self.signin.cached_catalogue_codes()

    # -- identifying the patient ---------------------------------------------------------------------

    def read_card(self, pin: str | None = None) -> Identity:
        return self.identification.read_card(pin)

    def person_info(self, identity: Identity, *, sale: str | None = None) -> dict:
        return self.identification.person_info(identity, sale=sale)

    # -- sales, visits, stays --------------------------------------------------------------------------

    def sell(self, identity: Identity | None, items: list[dict], *, acct_used: bool = True) -> Receipt:
        return self.pharmacy.sell(identity, items, acct_used=acct_used)

    def visit(
        self,
        identity: Identity | None,
        items: list[dict],
        *,
        med_type: str = "11",
        acct_used: bool = True,
        diagnosis: str = "J06.900",
    ) -> Receipt:
        return self.visits.visit(identity, items, med_type=med_type, acct_used=acct_used, diagnosis=diagnosis)

    def advance_visit(self, sale: str) -> Receipt:
        return self.visits.advance_visit(sale)

    def admit(self, identity: Identity, *, diagnosis: str = "K35.900") -> str:
        return self.stays.admit(identity, diagnosis=diagnosis)

    def stay_fees(self, stay: str, items: list[dict]) -> list[dict]:
        return self.stays.stay_fees(stay, items)

    def settle_stay(self, stay: str, *, final: bool) -> Receipt:
        return self.stays.settle_stay(stay, final=final)

    def defer_stay(self, stay: str) -> Receipt:
        return self.stays.defer_stay(stay)

    def cancel_stay_settlement(self, stay: str, setl_id: str) -> Receipt:
        return self.stays.cancel_stay_settlement(stay, setl_id)

    def discharge(self, stay: str) -> None:
        self.stays.discharge(stay)

    def stay_settlements(self, data: dict) -> list[dict]:
        return self.stays.stay_settlements(data)

    def stay_mirrors(self, data: dict) -> list[dict]:
        return self.stays.stay_mirrors(data)

    def cancel(self, sale: str) -> Receipt:
        return self.cancels.cancel(sale)

    # -- vouchers and store-and-forward ----------------------------------------------------------------

    def pending_vouchers(self) -> list[dict]:
        return self.vouchers.pending_vouchers()

    def settle_voucher(self, voucher: str, identity: Identity | None = None) -> Receipt:
        return self.vouchers.settle_voucher(voucher, identity)

    def forward(self, *, max_attempts: int = 20, max_age: dt.timedelta = dt.timedelta(days=7)) -> list[dict]:
        return self.forwarding.forward(max_attempts=max_attempts, max_age=max_age)

    def forward_until_done(self, rounds: int = 10, base_delay: float = 0.1, max_delay: float = 5.0) -> list[dict]:
        return self.forwarding.forward_until_done(rounds, base_delay, max_delay)

    # -- after a restart, and the end of the day -------------------------------------------------------

    def resume(self, deadline_s: float = 0.0) -> Resumed:
        return self.resumption.resume(deadline_s)

    def reconcile(self, day: dt.date | None = None, *, detail: bool = False) -> dict:
        return self.reconciliation.reconcile(day, detail=detail)


__all__ = ["Counter", "CounterError", "Identity", "Receipt", "Refused", "bill_total", "check_items"]
