"""Fault profiles: for each kind of fault, the probability that it happens at each chance it has.

A request to the centre has a chance at each network fault; a step of the world (one patient at one counter)
has a chance at a centre crash, a partition of its counter, a power loss at one of its crash points and an
equipment failure. ``none`` injects nothing: the baseline a run's cost is compared with.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from ..errors import MedsettleError

NETWORK_FAULTS = ("request_lost", "answer_lost", "duplicated", "delayed", "reordered")
STEP_FAULTS = ("centre_crash", "partition", "power_loss", "disk_full", "reader_dead", "psam_failed", "card_pulled")
FAULT_KINDS = NETWORK_FAULTS + STEP_FAULTS


class UnknownProfile(MedsettleError):
    code = "BAD_OPTION"


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named set of fault probabilities, the day's length in patients per counter, and where the clock
    starts (a profile that crosses the year end starts on 31 December)."""

    name: str
    faults: dict[str, float]
    patients_per_counter: int = 65
    start: dt.datetime = dt.datetime(2026, 6, 1, 8, 0)
    description: str = ""

    def chance(self, kind: str) -> float:
        return self.faults.get(kind, 0.0)


_NETWORK = {"request_lost": 0.03, "answer_lost": 0.03, "duplicated": 0.03, "delayed": 0.05, "reordered": 0.02}
# About one centre crash a simulated day of 10 counters (each restart replays the journal: the crashes profile has more)
_STEPS = {"centre_crash": 0.0015, "partition": 0.01, "power_loss": 0.03, "disk_full": 0.003}
# A counter's card reader stops answering, or its PSAM does, for a while; a patient pulls the card during its read
_EQUIPMENT = {"reader_dead": 0.004, "psam_failed": 0.003, "card_pulled": 0.02}

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("none", {}, description="no faults: the baseline"),
        Profile("default", {**_NETWORK, **_STEPS, **_EQUIPMENT}, description="every fault, each now and then"),
        Profile(
            "network",
            {k: 4 * v for k, v in _NETWORK.items()} | {"partition": 0.04},
            description="a poor network: requests and answers lost, duplicated, delayed, reordered; partitions",
        ),
        Profile(
            "crashes",
            {"centre_crash": 0.03, "power_loss": 0.15, "answer_lost": 0.05},
            description="the centre crashes and counters lose power at their crash points",
        ),
        Profile(
            "equipment",
            {"disk_full": 0.05, "power_loss": 0.05, "answer_lost": 0.05}
            | {"reader_dead": 0.04, "psam_failed": 0.03, "card_pulled": 0.1},
            description="counter disks full, card readers and PSAMs dead, cards pulled, power cuts",
        ),
        Profile(
            "partitions",
            {"partition": 0.2},
            patients_per_counter=30,
            description="counters often cut off from the centre: store-and-forward counters settle provisionally",
        ),
        Profile(
            "lost_answers",
            {"answer_lost": 0.2},
            patients_per_counter=30,
            description="answers often lost: settles resent, and reversed by 2601 when the patient cannot wait",
        ),
        Profile(
            "year_end",
            {**_NETWORK, **_STEPS, **_EQUIPMENT},
            start=dt.datetime(2026, 12, 31, 16, 0),
            description="every fault, across midnight and the year end",
        ),
    )  # fmt: skip
}


def profile_named(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"--profile: no profile {name!r}; one of {', '.join(PROFILES)}") from None
