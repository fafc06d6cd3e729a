"""Helpers shared by the doctor tests (tests/doctor/): recorded nvidia-smi output,
a runner that replays it, settings from a given environment, a local checkpoint, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from click.testing import CliRunner, Result

from tests.support import ROOT
from vllm_mcp.cli import cli
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor import CommandResult, gpu

FIXTURES = ROOT / "tests" / "fixtures" / "nvidia-smi"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def replay(outputs: dict[tuple[str, ...], CommandResult | BaseException]):
    """A runner that answers each argv with a recorded result (or raises)."""
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], timeout: float) -> CommandResult:
        calls.append(tuple(argv))
        answer = outputs[tuple(argv)]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    run.calls = calls  # type: ignore[attr-defined]
    return run


def settings(**env: str) -> Settings:
    return Settings.load(environ=env)


def a800_runner():
    return replay(
        {
            gpu.SMI_QUERY: CommandResult(0, fixture("a800-x8-query.csv"), ""),
            ("nvidia-smi",): CommandResult(0, fixture("a800-x8-table.txt"), ""),
        }
    )


def local_model(directory: Path, context: int = 2048, weight_bytes: int = 4096) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"max_position_embeddings": context}))
    (directory / "model.safetensors").write_bytes(b"\0" * weight_bytes)
    return directory


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """``vllm-mcp ARGS`` in this process (the imports of torch and vLLM are paid once per session)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m vllm_mcp ARGS`` as a user runs it, in a fresh process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **(env or {})},
        cwd=ROOT,
    )
