"""Compare CI's full test run with the fresh-venv run (no pyscard) from their JUnit XML reports.

The full run (every part installed) must skip nothing. The fresh run must pass every test the full run passed,
except tests that skip there for want of pyscard, each naming pyscard in its reason; it must skip nothing else
and fail nothing. Exit status 1 with a line per difference otherwise.

Usage: python compare_runs.py FULL.xml FRESH.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def outcomes(path: str) -> dict[str, tuple[str, str]]:
    """Test id -> (outcome, message) for every test case in a JUnit XML report."""
    result = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test_id = f"{case.get('classname')}::{case.get('name')}"
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome, message = tag, node.get("message") or (node.text or "")
                break
        result[test_id] = (outcome, message)
    return result


def compare(full: dict, fresh: dict) -> list[str]:
    problems = []
    for test_id, (outcome, message) in sorted(full.items()):
        if outcome != "passed":
            problems.append(f"full run: {test_id} {outcome}: {message[:200]}")
    skipped_for_pyscard = set()
    for test_id, (outcome, message) in sorted(fresh.items()):
        if outcome == "skipped" and "pyscard" in message:
            skipped_for_pyscard.add(test_id)
        elif outcome != "passed":
            problems.append(f"fresh run: {test_id} {outcome}: {message[:200]}")
    full_passed = {t for t, (o, _) in full.items() if o == "passed"}
    fresh_passed = {t for t, (o, _) in fresh.items() if o == "passed"}
    for test_id in sorted(full_passed - fresh_passed - skipped_for_pyscard):
        problems.append(f"fresh run: {test_id} passed in the full run but is missing here")
    for test_id in sorted(skipped_for_pyscard - full_passed):
        problems.append(f"fresh run: {test_id} skipped for want of pyscard but did not pass in the full run")
    for test_id in sorted(fresh_passed - full_passed):
        problems.append(f"fresh run: {test_id} passed here but not in the full run")
    print(
        f"full run: {len(full_passed)} passed; fresh venv without pyscard: {len(fresh_passed)} passed, "
        f"{len(skipped_for_pyscard)} skipped for want of pyscard "
        f"({len(full_passed)} - {len(skipped_for_pyscard)} = {len(full_passed) - len(skipped_for_pyscard)})"
    )
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problems = compare(outcomes(argv[1]), outcomes(argv[2]))
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
