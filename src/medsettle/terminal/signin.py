"""Signing the counter in (9001) and out (9002), and what it learns at sign-in: its sign_no, the institution's
failure policy and floor limits (``insinfo``) and, at a store-and-forward counter, the rules (9901) and
catalogue (the platform's downloads 1301 ... 1319) in force, cached for provisional settlement and for checking
item codes."""

from __future__ import annotations

import json

from .common import Refused
from .messaging import Messenger
from .rules_cache import RulesCache
from .store import CounterStore

STORE_AND_FORWARD = "store_and_forward"


class SignIn:
    """The counter's sign-in and what it caches from it (kept in the journal's meta)."""

    def __init__(self, journal: CounterStore, messenger: Messenger) -> None:
        self._journal, self._messenger = journal, messenger
        self._codes: tuple[str, set[str] | None] | None = None  # (the cached catalogue's text, its codes)

    def sign_in(self) -> str:
        with self._journal.transaction() as db:
            msgid = self._messenger.new_message(
                db,
                "9001",
                {"signIn": {"opter_no": self._messenger.opter, "mac": "00:00:00:00:00:00", "ip": "127.0.0.1"}},
            )
        answer = self._messenger.send(msgid)
        return self.finish_sign_in(msgid, answer)

    def finish_sign_in(self, msgid: str, answer: dict) -> str:
        """Record a 9001's answer (now, or on resume): the sign_no, the institution's policy, the rules."""
        if answer.get("infcode") != 0:
            raise Refused(answer.get("err_msg", ""))
        sign_no = answer["output"]["signinoutb"]["sign_no"]
        with self._journal.transaction() as db:
            self._journal.record_answer(db, msgid, answer)
            self._journal.set_meta(db, "sign_no", sign_no)
            self._journal.set_meta(db, "insinfo", json.dumps(answer["output"].get("insinfo") or {}))
        if self.failure_policy == STORE_AND_FORWARD:
            self.cache_rules()
        return sign_no

    def sign_out(self) -> None:
        sign_no = self._journal.get_meta("sign_no", "")
        self._messenger.query("9002", {"signOut": {"sign_no": sign_no, "opter_no": self._messenger.opter}})
        with self._journal.transaction() as db:
            self._journal.set_meta(db, "sign_no", "")

    def insinfo(self) -> dict:
        """What the centre said of the institution at sign-in (failure policy, floor limits, tier)."""
        return json.loads(self._journal.get_meta("insinfo", "{}"))

    @property
    def failure_policy(self) -> str:
        return self.insinfo().get("failure_policy", "cash_deferred")

    def cache_rules(self) -> None:
        """Refresh the rule set (9901) and catalogue (1301 ... 1319 and 9102) in force for provisional
        settlement: only what changed since the versions held (:mod:`.rules_cache`)."""
        RulesCache(self._journal, self._messenger).refresh()

    def cached_rules(self) -> tuple[dict, dict] | None:
        """The rules and catalogue cached at sign-in, or None when the counter has none."""
        rules, catalogue = self._journal.get_meta("rules"), self._journal.get_meta("catalogue")
        if not (rules and catalogue):
            return None
        return json.loads(rules), json.loads(catalogue)

    def cached_catalogue_codes(self) -> set[str] | None:
        """The item codes of the catalogue cached at sign-in (a store-and-forward counter), or None when the
        counter holds no complete catalogue (then only the centre knows which codes exist)."""
        cached = self._journal.get_meta("catalogue")
        if not cached:
            return None
        if self._codes is None or self._codes[0] != cached:  # decoded once per catalogue, not once per sale
            catalogue = json.loads(cached)
            items = catalogue.get("items") or []
            complete = items and catalogue.get("total", len(items)) == len(items)
            self._codes = (cached, {item["med_list_codg"] for item in items} if complete else None)
        codes = self._codes[1]
        return set(codes) if codes is not None else None
