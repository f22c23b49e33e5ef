"""Scenario files (docs/scenarios.md): declarative TOML steps and expectations, run in the simulator's
deterministic world, reported per step and as JUnit XML."""

from __future__ import annotations

from .format import Scenario, ScenarioFileError, Step, load
from .junit import junit_xml, write_junit
from .runner import ScenarioResult, StepResult, run

__all__ = [
    "Scenario",
    "ScenarioFileError",
    "ScenarioResult",
    "Step",
    "StepResult",
    "junit_xml",
    "load",
    "run",
    "write_junit",
]
