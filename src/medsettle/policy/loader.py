"""Loading policy files: TOML for the rules, CSV (or inline TOML) for the catalogues.

A policy file is a TOML document with one ``[[regions]]`` table per pooling region. A catalogue may
be inline (``items = [...]``) or name a CSV file beside the policy file (``file = "x.csv"``).
Numbers are parsed as Decimal (never float) so ``4.52`` is exactly 452 fen.
A bad file fails with :class:`PolicyError` naming the file, the field and the reason.
"""

from __future__ import annotations

import csv
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import PolicyError
from .codes import PSN_TYPES
from .models import Policy

DEFAULT_POLICY_NAME = "default.toml"

CATALOGUE_COLUMNS = ("med_list_codg", "name", "chrgitm_lv", "selfpay_prop", "pric_uplmt_amt", "lmt_used_flag")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f, parse_float=Decimal)
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from None
    return policy_from_dict(raw, source=path)


def load_default_policy() -> Policy:
    """The shipped default: two illustrative regions with employee and resident schemes."""
    ref = resources.files("medsettle.policy") / "data" / DEFAULT_POLICY_NAME
    with resources.as_file(ref) as path:
        return load_policy(path)


def default_policy_path() -> Path:
    return Path(str(resources.files("medsettle.policy") / "data" / DEFAULT_POLICY_NAME))


def policy_from_dict(raw: dict[str, Any], *, source: Path | str = "<dict>") -> Policy:
    """Validate a policy given as plain data; catalogue ``file`` entries resolve beside ``source``."""
    base = Path(source).parent if isinstance(source, Path) else Path(".")
    for r_i, region in enumerate(raw.get("regions", []) or []):
        if not isinstance(region, dict):
            continue
        for c_i, cat in enumerate(region.get("catalogues", []) or []):
            if isinstance(cat, dict) and "file" in cat:
                csv_path = base / str(cat.pop("file"))
                cat["items"] = _read_catalogue_csv(csv_path, where=f"regions[{r_i}].catalogues[{c_i}].file")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source}: " + _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def _read_catalogue_csv(path: Path, *, where: str) -> list[dict[str, Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CATALOGUE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PolicyError(f"{path}: {where}: missing columns {missing}")
            items = []
            for line_no, row in enumerate(reader, start=2):
                item: dict[str, Any] = {
                    "med_list_codg": row["med_list_codg"],
                    "name": row["name"],
                    "chrgitm_lv": row["chrgitm_lv"],
                    "selfpay_prop": row["selfpay_prop"] or "0",
                    "pric_uplmt_amt": row["pric_uplmt_amt"] or None,
                    "lmt_used_flag": row["lmt_used_flag"] in ("1", "true", "True"),
                }
                overrides = {p: row[f"selfpay_prop_{p}"] for p in PSN_TYPES
                             if row.get(f"selfpay_prop_{p}")}
                if overrides:
                    item["selfpay_prop_by_psn_type"] = overrides
                items.append(item)
            return items
    except FileNotFoundError:
        raise PolicyError(f"{path}: {where}: no such catalogue file") from None
