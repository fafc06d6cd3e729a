"""`vllm-mcp doctor --smoke` starts the real engine and generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.models import serve_env
from vllm_mcp.engine.load_phase import vllm_info_line

pytestmark = pytest.mark.engine


def test_smoke_generates_with_the_real_engine(tiny_model: Path, tmp_path: Path) -> None:
    env = serve_env(tiny_model, HF_HOME=str(tmp_path / "hf"))
    proc = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "doctor", "--smoke", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    smoke = next(c for c in report["checks"] if c["name"] == "smoke")
    assert smoke["status"] == "ok", smoke
    assert smoke["details"]["tokens"] == 8
    assert proc.returncode == 0
    # The wait is shown (stderr is no terminal here: a plain line per phase), vLLM's INFO lines not.
    lines = proc.stderr.splitlines()
    assert "vllm-mcp: loading the weights" in proc.stderr and "vllm-mcp: model ready after" in proc.stderr
    assert not [line for line in lines if vllm_info_line(line)]
