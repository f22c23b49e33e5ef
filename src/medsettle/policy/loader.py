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
from pydantic_core import ErrorDetails

from ..errors import PolicyError
from .codes import PSN_TYPES
from .models import Policy

DEFAULT_POLICY_NAME = "default.toml"

CATALOGUE_COLUMNS = ("med_list_codg", "name", "chrgitm_lv", "selfpay_prop", "pric_uplmt_amt", "lmt_used_flag")
# Columns a catalogue file may leave out (older files do): what 2204/2301 answer about an item, read by no
# engine. An absent column or an empty cell is the model's default (docs/settlement.md 'Catalogues').
OPTIONAL_FLAG_COLUMNS = (
    "bas_medn_flag",
    "hi_nego_drug_flag",
    "chld_medc_flag",
    "list_sp_item_flag",
    "drt_reim_flag",
)
OPTIONAL_CATALOGUE_COLUMNS = ("med_chrgitm_type",) + OPTIONAL_FLAG_COLUMNS
TRUE_CELLS = ("1", "true", "True")


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f, parse_float=Decimal)
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file (medsettle policy path shows the shipped default to copy)") from None
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not UTF-8 text (byte {exc.start}): a policy file is TOML in UTF-8") from None
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
    csv_files: dict[tuple[int, int], Path] = {}  # (region, catalogue) -> the CSV its items came from
    for r_i, region in enumerate(_list(raw.get("regions")) if isinstance(raw, dict) else []):
        if not isinstance(region, dict):
            continue
        for c_i, cat in enumerate(_list(region.get("catalogues"))):
            if isinstance(cat, dict) and "file" in cat:
                csv_path = base / str(cat.pop("file"))
                where = f"{source}: regions[{r_i}].catalogues[{c_i}].file"
                cat["items"] = _read_catalogue_csv(csv_path, where=where)
                csv_files[r_i, c_i] = csv_path
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(f"{source}: " + _describe(exc, raw, csv_files)) from None


def _list(value: Any) -> list:
    """``value`` when it is a list; anything else is left for the models to refuse with its field named."""
    return value if isinstance(value, list) else []


def _describe(exc: ValidationError, raw: Any, csv_files: dict[tuple[int, int], Path]) -> str:
    """The first errors as 'path (region ..., rule set ...): reason', the path as the file writes it."""
    lines = []
    for err in exc.errors()[:10]:
        lines.append(f"{_field_path(err['loc'], raw, csv_files)}: {_reason(err)}")
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "; ".join(lines)


def _field_path(loc: tuple, raw: Any, csv_files: dict[tuple[int, int], Path]) -> str:
    """``regions[0].rulesets[1].benefits[0].tiers.1.ratio (region 130100, rule set 130100-2026.1)``:
    TOML arrays of tables have no names, so the region and version they belong to are added, and for
    a catalogue read from a CSV file, that file and line."""
    path, context, node = "", [], raw
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(part, int) and isinstance(node, dict):
            if isinstance(node.get("admdvs"), str):
                context.append(f"region {node['admdvs']}")
            elif isinstance(node.get("version"), str):
                kind = "catalogue" if "items" in node else "rule set"
                context.append(f"{kind} {node['version']}")
    if len(loc) >= 6 and loc[0] == "regions" and loc[2] == "catalogues" and loc[4] == "items":
        csv_path = csv_files.get((loc[1], loc[3]))
        if csv_path is not None and isinstance(loc[5], int):
            context.append(f"{csv_path} line {loc[5] + 2}")  # line 1 is the header
    path = path or "(top level)"
    return f"{path} ({', '.join(context)})" if context else path


def _reason(err: ErrorDetails) -> str:
    """pydantic's message without its 'Value error, ' prefix (our validators already say what is wrong)."""
    msg = err["msg"]
    if err["type"] == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


def _read_catalogue_csv(path: Path, *, where: str) -> list[dict[str, Any]]:
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in CATALOGUE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise PolicyError(
                    f"{where}: the catalogue file {path} lacks the columns {', '.join(missing)} "
                    f"(line 1 must name {', '.join(CATALOGUE_COLUMNS)})"
                )
            items = []
            for row in reader:
                item: dict[str, Any] = {
                    "med_list_codg": row["med_list_codg"],
                    "name": row["name"],
                    "chrgitm_lv": row["chrgitm_lv"],
                    "selfpay_prop": row["selfpay_prop"] or "0",
                    "pric_uplmt_amt": row["pric_uplmt_amt"] or None,
                    "lmt_used_flag": row["lmt_used_flag"] in TRUE_CELLS,
                }
                if row.get("med_chrgitm_type"):
                    item["med_chrgitm_type"] = row["med_chrgitm_type"]
                for flag in OPTIONAL_FLAG_COLUMNS:
                    if row.get(flag):  # 1/0 (true/false, yes/no): anything else is refused naming the line
                        item[flag] = row[flag]
                overrides = {p: row[f"selfpay_prop_{p}"] for p in PSN_TYPES if row.get(f"selfpay_prop_{p}")}
                if overrides:
                    item["selfpay_prop_by_psn_type"] = overrides
                items.append(item)
            return items
    except FileNotFoundError:
        raise PolicyError(
            f"{where}: no catalogue file {path} (catalogue files are named relative to the "
            "policy file; copy them along with it)"
        ) from None
    except OSError as exc:
        raise PolicyError(f"{where}: cannot read the catalogue file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{where}: the catalogue file {path} is not UTF-8 text (byte {exc.start})") from None
