"""The scenario file format (TOML, docs/scenarios.md): a ``[scenario]`` table and ``[[step]]`` tables, read and
checked before anything runs, so a mistake in a file is one error naming the file, the step and the field.

A file is checked whole first: an unknown ``do``, a field a step does not take, a crash point that does not
exist, a duration that is not one, a named result used before the step that names it. Running it then only
meets the world's answers, never the file's mistakes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any

from ..errors import MedsettleError
from ..terminal.crash import POINTS

# what each ``do`` takes besides do, counter, expect, note and as (the fields every step may have)
STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "sign_in": (),
    "read_card": ("patient", "by", "pin"),
    "sell": ("items", "acct_used"),
    "visit": ("items", "med_type", "acct_used"),
    "admit": ("diagnosis",),
    "stay_fees": ("stay", "items"),
    "discharge": ("stay",),
    "settle_stay": ("stay", "final"),
    "cut_network": ("mode", "infno", "seconds"),
    "restore_network": (),
    "crash_centre": (),
    "restart_centre": (),
    "power_off": ("at",),
    "break_reader": ("part",),
    "repair_reader": ("part",),
    "pull_card": (),
    "advance_clock": ("by", "to"),
    "resettle": ("voucher", "patient"),
    "forward": (),
    "reconcile": (),
    "cancel_card": ("patient",),
}
COMMON_FIELDS = ("do", "counter", "expect", "note", "as")
# what an ``expect`` table may check (docs/scenarios.md 'Expectations')
EXPECT_FIELDS = (
    "kind",
    "medfee",
    "fund",
    "account",
    "cash",
    "refund",
    "balance",
    "note",
    "error",
    "identified",
    "crashed",
    "voucher_state",
    "vouchers",
    "queue",
    "balances",
    "forwarded",
    "flagged",
    "refund_to_patient",
    "institution_bears",
    "clean",
)
MONEY_FIELDS = ("medfee", "fund", "account", "cash", "refund", "balance", "refund_to_patient", "institution_bears")
ALIAS = re.compile(r"^(employee|retiree|resident|other_region)(?:_(\d+))?$")
DURATION = re.compile(r"^(\d+)([dhms])$")
PARTS = ("reader", "card", "psam")
MODES = ("partition", "answers")
BY = ("certno", "card")


class ScenarioFileError(MedsettleError):
    """A scenario file that cannot be run: the message names the file, the step (index and ``do``) and the field."""

    code = "SCENARIO_INVALID"


@dataclasses.dataclass
class Step:
    index: int  # from 1, as docs/scenarios.md counts them
    do: str
    fields: dict[str, Any]
    expect: dict[str, Any]
    counter: str
    name: str = ""  # ``as``: what later steps call this step's result

    def where(self) -> str:
        return f"step {self.index} ({self.do})"


@dataclasses.dataclass
class Scenario:
    path: Path
    name: str
    description: str
    start: dt.datetime
    institutions: list[str]
    steps: list[Step]


def _fail(path: Path, where: str, field: str, why: str) -> ScenarioFileError:
    return ScenarioFileError(f"{path}: {where}: {field}: {why}")


def parse_duration(text: str) -> dt.timedelta:
    """``8d``, ``2h``, ``30m``, ``45s``: days, hours, minutes or seconds (ValueError otherwise)."""
    m = DURATION.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"{text!r} is not a duration: a number and d, h, m or s (8d, 2h)")
    n, unit = int(m.group(1)), m.group(2)
    return dt.timedelta(**{{"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[unit]: n})


def parse_time(text: Any) -> dt.datetime:
    """A time on the virtual clock, Asia/Shanghai: ``2026-12-31 10:00`` (a TOML local date-time too)."""
    if isinstance(text, dt.datetime):
        return text.replace(tzinfo=None)
    if isinstance(text, str):
        try:
            return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a time: YYYY-MM-DD HH:MM")


def load(path: Path) -> Scenario:
    """Read and check one scenario file (ScenarioFileError naming file, step and field)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioFileError(f"{path}: not TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ScenarioFileError(f"{path}: not UTF-8 text") from None
    unknown = sorted(set(doc) - {"scenario", "step"})
    if unknown:
        raise _fail(path, "the file", unknown[0], "unknown table: a file has [scenario] and [[step]] tables")
    head = doc.get("scenario")
    if not isinstance(head, dict):
        raise _fail(path, "[scenario]", "scenario", "missing: a file starts with a [scenario] table")
    extra = sorted(set(head) - {"name", "description", "start", "institutions"})
    if extra:
        raise _fail(path, "[scenario]", extra[0], "unknown field: name, description, start, institutions")
    for field in ("name", "description"):
        if not isinstance(head.get(field), str) or not head[field].strip():
            raise _fail(path, "[scenario]", field, "missing or empty: a text")
    try:
        start = parse_time(head.get("start", "2026-06-01 08:00"))
    except ValueError as exc:
        raise _fail(path, "[scenario]", "start", str(exc)) from None
    institutions = head.get("institutions")
    if not isinstance(institutions, list) or not institutions or not all(isinstance(i, str) for i in institutions):
        raise _fail(path, "[scenario]", "institutions", "a list of institution codes, at least one")
    raw_steps = doc.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _fail(path, "the file", "step", "no [[step]] tables: a scenario has at least one step")
    steps: list[Step] = []
    names: set[str] = set()
    for k, raw in enumerate(raw_steps, 1):
        steps.append(_step(path, k, raw, institutions, names))
    return Scenario(path, head["name"], head["description"].strip(), start, list(institutions), steps)


def _step(path: Path, k: int, raw: Any, institutions: list[str], names: set[str]) -> Step:
    if not isinstance(raw, dict):
        raise _fail(path, f"step {k}", "step", "not a table: write each step as [[step]]")
    do = raw.get("do")
    if not isinstance(do, str) or do not in STEP_FIELDS:
        raise _fail(path, f"step {k}", "do", f"{do!r} is not a step: one of {', '.join(STEP_FIELDS)}")
    where = f"step {k} ({do})"
    allowed = set(COMMON_FIELDS) | set(STEP_FIELDS[do])
    extra = sorted(set(raw) - allowed)
    if extra:
        takes = ", ".join(STEP_FIELDS[do]) or "nothing of its own"
        raise _fail(path, where, extra[0], f"unknown field: {do} takes {takes}")
    counter = raw.get("counter", institutions[0])
    if counter not in institutions:
        raise _fail(path, where, "counter", f"{counter!r} is not one of the scenario's institutions")
    expect = raw.get("expect", {})
    if not isinstance(expect, dict):
        raise _fail(path, where, "expect", "a table")
    for field, value in expect.items():
        _check_expect(path, where, field, value)
    fields = {f: raw[f] for f in STEP_FIELDS[do] if f in raw}
    _check_fields(path, where, do, fields, names)
    name = raw.get("as", "")
    if not isinstance(name, str):
        raise _fail(path, where, "as", "a name (text)")
    if name:
        if name in names:
            raise _fail(path, where, "as", f"{name!r} names an earlier step already")
        names.add(name)
    return Step(k, do, fields, expect, counter, name)


def _check_expect(path: Path, where: str, field: str, value: Any) -> None:
    if field not in EXPECT_FIELDS:
        raise _fail(path, where, f"expect.{field}", f"cannot be checked: one of {', '.join(EXPECT_FIELDS)}")
    if field in MONEY_FIELDS and not (isinstance(value, str) and re.fullmatch(r"-?\d+\.\d\d", value)):
        raise _fail(path, where, f"expect.{field}", f'{value!r}: an amount in yuan as text, "12.50"')
    if field in ("identified", "crashed", "clean") and not isinstance(value, bool):
        raise _fail(path, where, f"expect.{field}", f"{value!r}: true or false")
    if field in ("vouchers", "queue") and not (
        isinstance(value, dict) and all(isinstance(v, int) for v in value.values())
    ):
        raise _fail(path, where, f"expect.{field}", "a table of state = count")
    if field == "balances":
        if not isinstance(value, dict):
            raise _fail(path, where, "expect.balances", 'a table of patient = "yuan"')
        for who, amount in value.items():
            if not ALIAS.match(who):
                raise _fail(path, where, f"expect.balances.{who}", "not a patient alias (employee, retiree, ...)")
            if not (isinstance(amount, str) and re.fullmatch(r"-?\d+\.\d\d", amount)):
                raise _fail(path, where, f"expect.balances.{who}", f"{amount!r}: an amount in yuan as text")
    if field in ("forwarded", "flagged") and not isinstance(value, int):
        raise _fail(path, where, f"expect.{field}", f"{value!r}: a count")
    if field in ("kind", "error", "note", "voucher_state") and not isinstance(value, str):
        raise _fail(path, where, f"expect.{field}", f"{value!r}: a text")


def _check_fields(path: Path, where: str, do: str, fields: dict[str, Any], names: set[str]) -> None:
    if do in ("read_card", "cancel_card") and "patient" not in fields:
        raise _fail(path, where, "patient", "missing: a patient alias (employee, retiree, resident, other_region)")
    if "patient" in fields and not (isinstance(fields["patient"], str) and ALIAS.match(fields["patient"])):
        raise _fail(path, where, "patient", f"{fields['patient']!r}: employee, retiree, resident or other_region, "
                    "optionally _2, _3 ... for the next such person")  # fmt: skip
    if do == "read_card" and "by" in fields and fields["by"] not in BY:
        raise _fail(path, where, "by", f"{fields['by']!r}: one of {', '.join(BY)}")
    if do in ("sell", "visit") and "items" not in fields:
        raise _fail(path, where, "items", "missing: the bill's items")
    if "items" in fields:
        _check_items(path, where, fields["items"])
    if do == "power_off" and fields.get("at") not in POINTS:
        raise _fail(path, where, "at", f"{fields.get('at')!r} is not a crash point: one of {', '.join(POINTS)}")
    if "part" in fields and fields["part"] not in PARTS:
        raise _fail(path, where, "part", f"{fields['part']!r}: one of {', '.join(PARTS)}")
    if "mode" in fields and fields["mode"] not in MODES:
        raise _fail(path, where, "mode", f"{fields['mode']!r}: one of {', '.join(MODES)}")
    if "infno" in fields and not (
        isinstance(fields["infno"], list) and all(isinstance(i, str) and i.isdigit() for i in fields["infno"])
    ):
        raise _fail(path, where, "infno", 'a list of message numbers, ["2102"]')
    seconds = fields.get("seconds", 1)
    if isinstance(seconds, bool) or not (isinstance(seconds, int) and seconds > 0):
        raise _fail(path, where, "seconds", f"{fields['seconds']!r}: a whole number of seconds, more than 0")
    if do == "advance_clock":
        if ("by" in fields) == ("to" in fields):
            raise _fail(path, where, "by", 'give one of by ("8d", "2h") or to ("2027-01-02 09:00")')
        try:
            parse_duration(fields["by"]) if "by" in fields else parse_time(fields["to"])
        except ValueError as exc:
            raise _fail(path, where, "by" if "by" in fields else "to", str(exc)) from None
    for field in ("stay", "voucher"):
        if field in fields and fields[field] not in names:
            raise _fail(path, where, field, f"{fields[field]!r} is not named (as = ...) by an earlier step")
    if do in ("stay_fees", "discharge", "settle_stay") and "stay" not in fields:
        raise _fail(path, where, "stay", "missing: the name (as = ...) of the admit step")
    for flag in ("acct_used", "final"):
        if flag in fields and not isinstance(fields[flag], bool):
            raise _fail(path, where, flag, f"{fields[flag]!r}: true or false")
    for text in ("med_type", "diagnosis", "pin"):
        if text in fields and not isinstance(fields[text], str):
            raise _fail(path, where, text, f"{fields[text]!r}: a text")


def _check_items(path: Path, where: str, items: Any) -> None:
    if not isinstance(items, list) or not items:
        raise _fail(path, where, "items", "a list of { code, price, count } tables, at least one")
    for n, item in enumerate(items, 1):
        field = f"items[{n}]"
        if not isinstance(item, dict):
            raise _fail(path, where, field, 'a table { code = "...", price = "12.50", count = 2 }')
        extra = sorted(set(item) - {"code", "price", "count"})
        if extra:
            raise _fail(path, where, f"{field}.{extra[0]}", "unknown field: code, price, count")
        if not isinstance(item.get("code"), str) or not item["code"]:
            raise _fail(path, where, f"{field}.code", "missing: the catalogue code")
        if not (isinstance(item.get("price"), str) and re.fullmatch(r"\d+(\.\d{1,4})?", item["price"])):
            raise _fail(path, where, f"{field}.price", f'{item.get("price")!r}: yuan as text, "12.50"')
        if not (isinstance(item.get("count"), int) and not isinstance(item["count"], bool) and item["count"] > 0):
            raise _fail(path, where, f"{field}.count", f"{item.get('count')!r}: a whole number, more than 0")
