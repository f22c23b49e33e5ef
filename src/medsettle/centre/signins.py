"""Sign-in (9001) and sign-out (9002), and the envelope checks every other message passes (docs/messages.md).

A sign_no is valid for the institution that signed in, on the day it signed in (Asia/Shanghai). Several
processes may share one PostgreSQL journal: a sign_no made by another is found in the journal.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..errors import InvalidInput, MedsettleError
from ..ledger.journal import Entry
from ..money import fen_to_decimal
from .answers import answer_fields
from .core import Ledger, journal_key
from .institutions import Institution
from .messages import Envelope, SignIn, SignOut

SIGNIN, SIGNOUT = "signin", "signout"
SIGNIN_FIELDS = ("fixmedins_code", "opter_no", "dev_no", "day")


class EnvelopeRefused(MedsettleError):
    """Unknown institution, missing or expired sign_no: refused and not stored (docs/messages.md)."""

    code = "ENVELOPE_REFUSED"


class SignIns:
    """The terminals signed in: sign_no -> fixmedins_code, opter_no, dev_no and day."""

    def __init__(self, ledger: Ledger, institutions: dict[str, Institution], *, id_prefix: str, partial: bool) -> None:
        self._ledger = ledger
        self._institutions = institutions
        self._id_prefix = id_prefix
        self._partial = partial
        self._signins: dict[str, dict[str, Any]] = {}
        self._sign_seq = itertools.count(1)
        ledger.owns(SIGNIN, self._replay_sign_in)
        ledger.owns(SIGNOUT, self._replay_sign_out)

    def handlers(self) -> dict:
        return {"9001": self.sign_in, "9002": self.sign_out}

    def check_envelope(self, env: Envelope) -> Institution:
        """The institution sending ``env``; EnvelopeRefused if unknown or not signed in today."""
        institution = self._institutions.get(env.fixmedins_code)
        if institution is None:
            raise EnvelopeRefused(f"unknown institution {env.fixmedins_code!r}", field="fixmedins_code")
        if env.mdtrtarea_admvs and env.mdtrtarea_admvs != institution.admdvs:
            raise EnvelopeRefused(
                f"institution {institution.fixmedins_code} is in {institution.admdvs}, not {env.mdtrtarea_admvs}",
                field="mdtrtarea_admvs",
            )
        if env.infno != "9001":
            signin = self._signins.get(env.sign_no)
            if signin is None and self._partial:  # signed in at another process sharing the database
                signin = self._found_elsewhere(env.sign_no)
            if (
                signin is None
                or signin["fixmedins_code"] != env.fixmedins_code
                or signin["day"] != self._ledger.clock.now().date().isoformat()
            ):
                raise EnvelopeRefused("missing, unknown or expired sign_no: sign in with 9001", field="sign_no")
        return institution

    def _found_elsewhere(self, sign_no: str) -> dict[str, Any] | None:
        entry = self._ledger.journal.find(SIGNIN, sign_no)
        if entry is None:
            return None
        signin = {k: entry.body[k] for k in SIGNIN_FIELDS}
        with self._ledger.lock:
            return self._signins.setdefault(sign_no, signin)

    def sign_in(self, env: Envelope, institution: Institution, payload: SignIn) -> dict:
        now = self._ledger.clock.now()
        sign_no = f"{now:%Y%m%d%H%M%S}{institution.fixmedins_code[-5:]}{self._id_prefix}{next(self._sign_seq):06d}"
        record = {
            "fixmedins_code": institution.fixmedins_code,
            "opter_no": payload.signIn.opter_no,
            "dev_no": env.dev_no,
            "day": now.date().isoformat(),
        }
        # medsettle extension: the counter learns its failure policy and floor limits (docs/failures.md) here.
        output = {
            "signinoutb": {"sign_time": self._ledger.now_text(), "sign_no": sign_no},
            "insinfo": {
                "failure_policy": institution.failure_policy,
                "tier": institution.tier,
                "floor_per_bill": fen_to_decimal(institution.floor_per_bill),
                "floor_per_person_day": fen_to_decimal(institution.floor_per_person_day),
                "floor_outstanding": fen_to_decimal(institution.floor_outstanding),
            },
        }
        self._ledger.commit(
            SIGNIN,
            institution.admdvs,
            sign_no,
            {**record, "sign_no": sign_no, **answer_fields(env, output)},
            apply=lambda: self._signins.__setitem__(sign_no, record),
        )
        return output

    def sign_out(self, env: Envelope, institution: Institution, payload: SignOut) -> dict:
        sign_no = payload.signOut.sign_no
        if sign_no != env.sign_no:
            raise InvalidInput("signs out another terminal's sign_no", field="input.signOut.sign_no")
        output = {"signoutoutb": {"sign_time": self._ledger.now_text()}}
        self._ledger.commit(
            SIGNOUT,
            institution.admdvs,
            journal_key(institution.fixmedins_code, env.msgid),
            {"sign_no": sign_no, **answer_fields(env, output)},
            apply=lambda: self._signins.pop(sign_no, None),
        )
        return output

    def _replay_sign_in(self, entry: Entry) -> None:
        self._signins[entry.key] = {k: entry.body[k] for k in SIGNIN_FIELDS}
        self._sign_seq = itertools.count(len(self._signins) + 1)

    def _replay_sign_out(self, entry: Entry) -> None:
        self._signins.pop(entry.body["sign_no"], None)
