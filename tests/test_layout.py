"""The tests' own house rules (issue #26): helpers live in tests/support, no test module imports
another, and the tests never import the benchmark (bench/ has its own tests in bench/tests)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def offending(path: Path) -> list[str]:
    bad = []
    for name in imported_modules(path):
        parts = name.split(".")
        into_tests = parts[0] == "tests" and any(p.startswith("test_") for p in parts[1:])
        if parts[0] == "bench" or into_tests:
            bad.append(name)
    return bad


def test_no_test_module_imports_another_or_the_bench() -> None:
    found = {
        str(path.relative_to(ROOT)): offending(path)
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if offending(path)
    }
    assert found == {}, "move shared helpers into tests/support/"


def test_the_check_sees_both_kinds_of_import(tmp_path: Path) -> None:
    """Negative control: the walker finds a test-module import and a bench import, nested too."""
    sample = tmp_path / "test_sample.py"
    sample.write_text("def f():\n    from tests.protocol.test_http import x\n    import bench.stats\n")
    assert offending(sample) == ["tests.protocol.test_http", "tests.protocol.test_http.x", "bench.stats"]
