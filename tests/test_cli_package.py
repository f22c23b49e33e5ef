"""The command's shape: ``python -m medsettle`` works, and the command modules of ``medsettle.cli`` import shared
helpers from below (the private modules: ``_common``, ``_errors``, a group's own such as ``_terminal_common``),
never each other, so there is no import circle to trip over. A group split over part modules named after it
(``persons_agency``, ``terminal_sales``) imports its parts, and they, too, import only shared helpers."""

import ast
import subprocess
import sys
from pathlib import Path

import medsettle.cli

CLI_DIR = Path(medsettle.cli.__file__).parent
# Shared helpers are the private modules (a leading underscore): _common and _errors, and a group's own.
SHARED = {p.stem for p in CLI_DIR.glob("_*.py")} - {"__init__", "__main__"}


def sibling_imports(path: Path) -> set[str]:
    """The sibling modules of medsettle.cli that ``path`` imports (relative ``from .x import`` or absolute)."""
    siblings = {p.stem for p in CLI_DIR.glob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                found.add(node.module.split(".")[0] if node.module else "__init__")
            elif node.level == 0 and node.module and node.module.startswith("medsettle.cli"):
                rest = node.module.removeprefix("medsettle.cli").lstrip(".")
                found.add(rest.split(".")[0] if rest else "__init__")
    return found & (siblings | {"__init__"})


def test_python_dash_m_medsettle_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "medsettle", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: medsettle" in result.stdout
    for command in ("demo", "settle", "serve", "persons", "bills", "policy", "hardware", "card", "terminal"):
        assert command in result.stdout


def test_command_modules_import_only_shared_helpers_from_the_package():
    assert {"_common", "_errors"} <= SHARED
    modules = [p for p in CLI_DIR.glob("*.py") if p.stem not in {"__init__", "__main__"} | SHARED]
    assert len(modules) >= 8  # one per command or group
    for path in modules:
        wrong = sibling_imports(path) - SHARED
        # A group may split its commands over part modules named after it, which it alone imports and registers
        # (persons_agency; terminal_day, terminal_sales, terminal_stays).
        wrong -= {p for p in wrong if p.startswith(path.stem + "_")}
        assert not wrong, f"{path.name} imports {sorted(wrong)}: command modules must not import each other"
    for path in sorted(CLI_DIR / f"{name}.py" for name in SHARED):
        assert not sibling_imports(path) - SHARED, f"{path.name} must import nothing from the command modules"
