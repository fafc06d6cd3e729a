"""The tests' own house rules (issue #26): helpers live in tests/support, no test module imports
another, and the tests never import the benchmark (bench/ has its own tests in bench/tests)."""

from __future__ import annotations

import ast
import subprocess
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


def conflict_markers(text: str) -> list[int]:
    """Line numbers of a merge's conflict markers (the opening and closing ones git writes)."""
    return [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line in ("<<<<<<<", ">>>>>>>")
    ]


def test_no_tracked_file_keeps_a_merge_conflict() -> None:
    """A merge left both sides of a table in docs/settings-checks.md once; nothing caught it."""
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    found = {}
    for name in filter(None, tracked):
        path = ROOT / name
        if path.suffix not in (
            ".py",
            ".md",
            ".toml",
            ".yml",
            ".yaml",
            ".sh",
            ".cfg",
            ".txt",
            ".service",
            ".mjs",
        ):
            continue
        if path.is_file() and (lines := conflict_markers(path.read_text(encoding="utf-8", errors="replace"))):
            found[name] = lines
    assert found == {}


def test_conflict_markers_are_seen() -> None:
    text = "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> other\n"
    assert conflict_markers(text) == [2, 6]
    assert conflict_markers("a\n======= b\n<<<<<<<< not one\n") == []
