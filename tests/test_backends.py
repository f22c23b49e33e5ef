"""The twin's one seam (engine/backends.py): the compiled modules are imported there and nowhere else,
both engines keep the Engine interface, and a build missing half of the compiled pair is not used."""

import ast
import inspect
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from medsettle.engine import backends
from medsettle.engine.backends import Engine
from medsettle.engine.bounds import COMPILED_BOUNDS
from medsettle.engine.core import CoreEngine, build_mismatch
from medsettle.engine.reference import ReferenceEngine

SRC = Path(__file__).resolve().parent.parent / "src" / "medsettle"
COMPILED = {"_core", "_plain"}


def _is_compiled(name: object) -> bool:
    return str(name).split(".")[-1] in COMPILED


def _imports_compiled(node: ast.AST) -> bool:
    """``node`` imports medsettle._core or medsettle._plain, in any spelling."""
    if isinstance(node, ast.ImportFrom):
        module = node.module or ""
        return _is_compiled(module) or (module in ("", "medsettle") and any(_is_compiled(a.name) for a in node.names))
    if isinstance(node, ast.Import):
        return any(_is_compiled(alias.name) for alias in node.names)
    if isinstance(node, ast.Call):
        called = getattr(node.func, "attr", getattr(node.func, "id", ""))
        return called in ("import_module", "__import__") and any(
            isinstance(a, ast.Constant) and _is_compiled(a.value) for a in node.args
        )
    return False


def _imports_of_compiled(tree: ast.AST) -> list[int]:
    """Lines of ``tree`` that import a compiled module."""
    return [node.lineno for node in ast.walk(tree) if _imports_compiled(node)]


def test_only_backends_imports_the_compiled_modules():
    found = {}
    for path in SRC.rglob("*.py"):
        lines = _imports_of_compiled(ast.parse(path.read_text(), str(path)))
        if lines:
            found[str(path.relative_to(SRC))] = lines
    assert set(found) == {"engine/backends.py"}, found


def _members(protocol: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(value)
        for name, value in vars(protocol).items()
        if callable(value) and not name.startswith("_")
    }


@pytest.mark.parametrize("engine_class", [CoreEngine, ReferenceEngine])
def test_both_engines_keep_the_engine_interface(engine_class):
    for name, signature in _members(Engine).items():
        method = getattr(engine_class, name, None)
        assert method is not None, f"{engine_class.__name__} has no {name}"
        assert list(inspect.signature(method).parameters) == list(signature.parameters), name
        for p_name, param in signature.parameters.items():
            assert inspect.signature(method).parameters[p_name].kind == param.kind, (name, p_name)
    assert isinstance(engine_class.name, str)


def test_the_settler_holds_an_engine_of_the_interface(engine):
    from medsettle.engine import Population, Settler
    from medsettle.policy import load_default_policy

    policy = load_default_policy()
    settler = Settler(policy, Population.generate(policy, 5), engine=engine)
    assert settler.engine.name == engine
    for attribute in ("policy", "compiled", "population"):
        assert getattr(settler.engine, attribute) is getattr(settler, attribute)


def _python(code: str, tmp_path: Path, site: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter whose sitecustomize runs ``site`` first (as a broken build would be)."""
    (tmp_path / "sitecustomize.py").write_text(site)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MEDSETTLE_NO_EXTENSIONS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_a_core_without_its_quick_route_is_not_used_and_says_why(tmp_path):
    code = (
        "from medsettle.engine.backends import resolve_engine_name, core_module, plain_module\n"
        "print(resolve_engine_name('auto'), core_module(), plain_module())\n"
        "from medsettle.engine import Settler, Population\n"
        "from medsettle.policy import load_default_policy\n"
        "p = load_default_policy()\n"
        "try:\n"
        "    Settler(p, Population.generate(p, 3), engine='core')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    r = _python(code, tmp_path, "import sys\nsys.modules['medsettle._plain'] = None\n")
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first == "reference None None"
    assert second.startswith("CoreUnavailable the core engine was asked for") and "medsettle._plain" in second
    said = [line for line in r.stderr.splitlines() if line.startswith("medsettle: ")]
    assert len(said) == 1 and "medsettle._plain" in said[0] and "pip install -e ." in said[0], r.stderr


def test_a_build_with_other_bounds_is_not_used():
    core, plain = backends.core_module(), backends.plain_module()
    assert core is not None and plain is not None, backends.core_problem()
    assert build_mismatch(core, plain) is None
    other = types.ModuleType("medsettle._plain")
    other.BOUNDS = {**COMPILED_BOUNDS, "MAX_LINES": 999}
    assert "medsettle._plain's bounds differ" in build_mismatch(core, other)
