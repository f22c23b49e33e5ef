"""JUnit XML of scenario runs, for CI systems: one testsuite, one testcase per scenario file, a failure
naming the step (its index and ``do``) and what was expected."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .runner import ScenarioResult


def junit_xml(results: list[ScenarioResult]) -> bytes:
    """The report of ``results``: a testcase per file (``name`` the file, ``classname`` the scenario's name)."""
    failed = sum(not r.ok for r in results)
    total = sum(r.seconds for r in results)
    suites = ET.Element("testsuites", tests=str(len(results)), failures=str(failed), time=f"{total:.3f}")
    suite = ET.SubElement(
        suites, "testsuite", name="medsettle scenarios", tests=str(len(results)), failures=str(failed),
        errors="0", time=f"{total:.3f}",
    )  # fmt: skip
    for r in results:
        case = ET.SubElement(
            suite, "testcase", classname=r.scenario.name, name=str(r.scenario.path), time=f"{r.seconds:.3f}"
        )
        if not r.ok:
            first = r.failures()[0] if r.failures() else None
            message = f"step {first.index} ({first.do}): {first.detail}" if first else r.stopped
            failure = ET.SubElement(case, "failure", message=message, type="ScenarioFailure")
            failure.text = "\n".join([s.line() for s in r.steps] + ([f"stopped: {r.stopped}"] if r.stopped else []))
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(s.line() for s in r.steps)
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True)


def write_junit(path: Path, results: list[ScenarioResult]) -> None:
    path.write_bytes(junit_xml(results))
