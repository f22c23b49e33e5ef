"""Named crash points: ``MEDSETTLE_CRASH_AT=<point>`` makes the terminal process exit at once (no cleanup,
no flush beyond what is already durable) when it reaches that point, as a power cut would. The scenario
tests run a terminal with each point and check that the restarted terminal finishes correctly.

Points, in the order a sale reaches them (see :data:`POINTS`).
"""

from __future__ import annotations

import os

POINTS = (
    "sale_recorded",          # the sale is in the journal, nothing sent
    "settle_written",         # the 2102's msgid and body are durable, not yet sent
    "settle_sent",            # the 2102 was sent and answered, the answer not yet recorded
    "settle_recorded",        # the answer is recorded, the receipt not yet printed
    "voucher_recorded",       # a deferred-settlement voucher is durable (cash taken)
    "voucher_settle_written",  # the voucher's 2102 is durable, not yet sent
    "voucher_settle_sent",    # the voucher's 2102 was answered, the answer not yet recorded
    "reversal_written",       # a 2601 abandoning a sale is durable, not yet sent
    "saf_recorded",           # a provisional settlement is queued (cash taken)
    "forward_written",        # a queued entry's 2102 is durable, not yet sent
    "forward_sent",           # the forward was answered, the answer not yet recorded
)
EXIT_CODE = 86


def crash_point(name: str) -> None:
    """Exit the process here if the environment asks for it."""
    assert name in POINTS, name
    if os.environ.get("MEDSETTLE_CRASH_AT") == name:
        os._exit(EXIT_CODE)
