"""Shared pieces of the card and reader tests: personalised profiles from the default population, and the
stack fixtures (a real pcscd with vpcd readers; virtual cards in this process so faults are one call away)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest

from medsettle.centre.registry import Registry
from medsettle.engine import Population
from medsettle.hardware.card import VirtualCard
from medsettle.hardware.personalise import profile_for
from medsettle.policy import load_default_policy

# Fixed directories, so a run killed half-way leaves a pid file the next run finds and stops.
STACK_DIR = Path(tempfile.gettempdir()) / "medsettle-test-pcsc"
DAEMON_DIR = Path(tempfile.gettempdir()) / "medsettle-test-hardware"
COUNTERS = ("Counter A", "Counter B")


@functools.cache
def registry() -> Registry:
    policy = load_default_policy()
    return Registry.generate(Population.generate(policy, 10_000, seed=0))  # the centre's default


def profiles(n: int):
    """n profiles from the default population: both regions, both sexes, one-, two- and three-character names."""
    reg = registry()
    return [profile_for(reg, psn_no) for psn_no in reg.population.psn_nos[:n]]


def genuine_card(index: int = 0) -> VirtualCard:
    return VirtualCard.issue(profiles(index + 1)[index])


def skip_without_pcsc() -> None:
    from medsettle.hardware.stack import unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"no PC/SC stack on this machine: {reason}")
