"""The mix of a load run: which flows its bills are, in what shares, and which counters speak them.

A mix file is TOML with one table, ``[mix]``, of flow names (:data:`.flows.FLOWS`, the built-in ones or a
user's) and their shares, any non-negative numbers (they are normalised)::

    [mix]
    pharmacy_sale = 55
    outpatient_visit = 33

Counters are split between pharmacies and hospitals in proportion to their places' shares (at least one
counter of each place that has a share); a counter draws each bill's flow among its place's flows.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .flows import FLOWS, Place

# A weekday at a city's counters, as bills: most are pharmacy sales and outpatient visits; a few are cancelled
# at the counter (a patient changes their mind, a wrong line); inpatient final settlements are rare.
DEFAULT_MIX: Mapping[str, float] = {  # ok-float: shares
    "pharmacy_sale": 52.0,
    "pharmacy_cancel": 2.0,
    "outpatient_visit": 40.0,
    "outpatient_cancel": 2.0,
    "inpatient_stay": 4.0,
}


class MixError(ValueError):
    """A mix file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Mix:
    """Normalised shares of flows (summing to 1)."""

    shares: Mapping[str, float]  # ok-float: shares

    def place_share(self, place: Place) -> float:  # ok-float: a share
        """The share of bills spoken at counters of ``place``."""
        return sum(s for name, s in self.shares.items() if FLOWS[name].place == place)

    def at(self, place: Place) -> dict[str, float]:  # ok-float: shares
        """The shares among ``place``'s flows (summing to 1), for a counter there to draw from."""
        total = self.place_share(place)
        return {n: s / total for n, s in self.shares.items() if FLOWS[n].place == place and s > 0} if total else {}

    def counters(self, n: int) -> dict[Place, int]:
        """How many of ``n`` counters stand at each place: in proportion, at least one per place in use."""
        places: list[Place] = [p for p in ("pharmacy", "hospital") if self.place_share(p) > 0]
        if n < len(places):
            raise MixError(f"--counters {n}: this mix needs at least {len(places)} counters (one per place)")
        split: dict[Place, int] = {p: max(1, round(n * self.place_share(p))) for p in places}
        biggest = max(places, key=lambda p: split[p])
        split[biggest] += n - sum(split.values())
        return split


def make_mix(shares: Mapping[str, object], where: str = "mix") -> Mix:
    """A Mix of raw shares; MixError naming the flow that is unknown or the share that is wrong."""
    clean: dict[str, float] = {}  # ok-float: shares
    for name, share in shares.items():
        if name not in FLOWS:
            raise MixError(f"{where}: unknown flow {name!r} (known: {', '.join(sorted(FLOWS))})")
        if isinstance(share, bool) or not isinstance(share, int | float) or share < 0:
            raise MixError(f"{where}: mix.{name} must be a non-negative number, not {share!r}")
        clean[name] = float(share)  # ok-float: a share
    total = sum(clean.values())
    if total <= 0:
        raise MixError(f"{where}: the shares add up to nothing; give at least one flow a positive share")
    return Mix({n: s / total for n, s in clean.items() if s > 0})


def load_mix(path: str | Path | None) -> Mix:
    """The mix of a file (or the default day's without one); MixError naming what is wrong."""
    if path is None:
        return make_mix(DEFAULT_MIX, "default mix")
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MixError(f"--mix {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MixError(f"--mix {path}: cannot read it: {exc}") from None
    table = data.get("mix")
    if not isinstance(table, dict):
        raise MixError(f"--mix {path}: needs a [mix] table of flow = share")
    return make_mix(table, f"--mix {path}")
