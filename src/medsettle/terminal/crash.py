"""Named crash points: ``MEDSETTLE_CRASH_AT=<point>`` makes the terminal process exit at once (no cleanup,
no flush beyond what is already durable) when it reaches that point, as a power cut would. The scenario
tests run a terminal with each point and check that the restarted terminal finishes correctly.

What a crash does is the counter's :class:`~medsettle.seams.CrashHook` (the real one exits the process; a test's
raises :class:`~medsettle.seams.Crashed`), and which point crashes is the environment's, or the counter's
``crash_at`` (:class:`CrashPoints`).

Points, in the order a sale reaches them (see :data:`POINTS`).
"""

from __future__ import annotations

import os

from ..seams import EXIT_ON_CRASH, CrashHook, ExitOnCrash

POINTS = (
    "sale_recorded",  # the sale is in the journal, nothing sent
    "settle_written",  # the 2102's msgid and body are durable, not yet sent
    "settle_sent",  # the 2102 was sent and answered, the answer not yet recorded
    "settle_recorded",  # the answer is recorded, the receipt not yet printed
    "voucher_recorded",  # a deferred-settlement voucher is durable (cash taken)
    "voucher_settle_written",  # the voucher's 2102 is durable, not yet sent
    "voucher_settle_sent",  # the voucher's 2102 was answered, the answer not yet recorded
    "reversal_written",  # a 2601 abandoning a sale is durable, not yet sent
    "saf_recorded",  # a provisional settlement is queued (cash taken)
    "forward_written",  # a queued entry's 2102 is durable, not yet sent
    "forward_sent",  # the forward was answered, the answer not yet recorded
)
EXIT_CODE = ExitOnCrash.exit_code  # 86: what EXIT_ON_CRASH exits with


class CrashPoints:
    """Where a counter crashes: at ``at`` if given, else where ``MEDSETTLE_CRASH_AT`` says (read at each
    point, so a process started with it set crashes there); what happens then is ``hook``'s."""

    def __init__(self, hook: CrashHook = EXIT_ON_CRASH, at: str | None = None) -> None:
        if at is not None and at not in POINTS:
            raise ValueError(f"no crash point {at!r}: one of {', '.join(POINTS)}")
        self._hook, self._at = hook, at

    def reach(self, name: str) -> None:
        """The flow is at point ``name``: crash here if asked to."""
        assert name in POINTS, name
        wanted = self._at if self._at is not None else os.environ.get("MEDSETTLE_CRASH_AT")
        if wanted == name:
            self._hook(name)
