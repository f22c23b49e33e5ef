"""``medsettle bench all``: every layer's two numbers, its yardstick and the ratio, in one run
(docs/load.md 'bench all'). The layers are measured one after the other (never two at once: each takes
the machine), each in :mod:`.layers`; a layer that cannot run here is reported as skipped with the reason,
one that fails as failed with its error, and the others still run.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .layers import LAYERS, LayerSkipped, Size, layer_module

FORMAT = "medsettle-bench-all/1"


def parse_only(text: str | None) -> list[str]:
    """The layers of ``--only a,b`` in the run's order (all of them without it); ValueError naming an unknown one."""
    if text is None:
        return list(LAYERS)
    asked = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in asked if name not in LAYERS]
    if unknown or not asked:
        raise ValueError(
            f"--only {text}: no layer {', '.join(unknown) or '(none given)'}; the layers: {', '.join(LAYERS)}"
        )
    return [name for name in LAYERS if name in asked]


def run_all(names: Sequence[str], size: Size, say: Callable[[str], None]) -> dict[str, Any]:
    """Measure ``names`` in turn, saying a progress line before and after each; the JSON document of the run."""
    layers: dict[str, Any] = {}
    started = time.perf_counter()
    for n, name in enumerate(names, 1):
        began = time.perf_counter()
        entry: dict[str, Any]
        try:
            module = layer_module(name)
        except ImportError as exc:  # a module of an optional part is missing
            entry = {"status": "skipped", "layer": name, "title": name, "reason": f"cannot import {exc.name}: {exc}"}
        else:
            say(f"[{n}/{len(names)}] {name}: {module.TITLE} ...")
            entry = _measure(name, module, size)
        entry["seconds"] = round(time.perf_counter() - began, 2)
        layers[name] = entry
        say(f"[{n}/{len(names)}] {name}: {_progress_end(entry)} ({entry['seconds']:.1f} s)")
    return {
        "format": FORMAT,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": size.quick,
        "scale": size.scale,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "seconds": round(time.perf_counter() - started, 2),
        "layers": layers,
    }


def _measure(name: str, module: Any, size: Size) -> dict[str, Any]:
    title = module.TITLE
    try:
        return dict(module.measure(size).to_json())
    except LayerSkipped as exc:
        return {"status": "skipped", "layer": name, "title": title, "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001  (one layer's failure is reported; the others still run)
        last = traceback.extract_tb(exc.__traceback__)[-1]
        where = f"{os.path.basename(last.filename)}:{last.lineno}"
        return {"status": "failed", "layer": name, "title": title, "reason": f"{exc!r} at {where}"}


def _progress_end(entry: dict[str, Any]) -> str:
    if entry["status"] != "measured":
        return f"{entry['status']}: {entry['reason']}"
    return f"{_rate(entry['throughput'], entry['throughput_unit'])}, ratio {_ratio(entry)}"


def _ratio(entry: dict[str, Any]) -> str:
    return "-" if entry.get("ratio") is None else f"{entry['ratio']:.3g}"


def _number(value: float) -> str:  # ok-float: a figure
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _rate(value: float | None, unit: str) -> str:  # ok-float: a rate
    return "-" if value is None else f"{_number(value)} {unit}"


def table(document: dict[str, Any]) -> list[str]:
    """The readable table of a run: a row a layer, then what each yardstick is and the notes."""
    rows = [("layer", "throughput", "p99 or median", "yardstick", "ratio")]
    notes = []
    for name, entry in document["layers"].items():
        if entry["status"] != "measured":
            rows.append((name, entry["status"], "", "", ""))
            notes.append(f"  {name}: {entry['status']}: {entry['reason']}")
            continue
        latency = f"{entry['latency_kind']}: {_number(entry['latency_ms'])} ms"
        yardstick = _rate(entry["yardstick_throughput"], entry["yardstick_unit"])
        rows.append((name, _rate(entry["throughput"], entry["throughput_unit"]), latency, yardstick, _ratio(entry)))
        notes.append(f"  {name}: yardstick: {entry['yardstick']}" + (f"; {entry['note']}" if entry["note"] else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    how = "quick" if document["quick"] else "full"
    return [
        *lines,
        "",
        f"ratio: the layer's throughput / its yardstick's, measured in the same run ({how} sizes)",
        *notes,
    ]
