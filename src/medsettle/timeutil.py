"""Dates in Asia/Shanghai, as the platform keeps them (docs/settlement.md 'Time').

Inside the engines a date is a day number (days since 1970-01-01, local date) and a month is
``year * 12 + month - 1``; both are plain ints so the core can compare them without Python objects.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH = dt.date(1970, 1, 1)


def day_number(d: dt.date) -> int:
    return (d - EPOCH).days


def from_day_number(n: int) -> dt.date:
    return EPOCH + dt.timedelta(days=n)


def month_index(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def local_date(value: dt.datetime | dt.date | str) -> dt.date:
    """The Asia/Shanghai calendar date of a datetime, date, or platform time string.

    Naive datetimes and strings ("yyyy-MM-dd HH:mm:ss" or "yyyy-MM-dd") are taken as Shanghai time,
    as the platform sends them; aware datetimes are converted.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a date or 'yyyy-MM-dd HH:mm:ss' time: {text!r}") from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(SHANGHAI)
        return value.date()
    return value


def now_shanghai() -> dt.datetime:
    return dt.datetime.now(SHANGHAI)
