"""Unit tests of vllm_names: vLLM's names read from its files agree with the imported package."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_mcp.config import vllm_names


@pytest.mark.engine  # imports vLLM (3 s) to compare with what the source says
def test_engine_argument_names_from_the_source_are_the_dataclass_fields() -> None:
    from vllm.engine.arg_utils import AsyncEngineArgs

    assert vllm_names.engine_arg_names() == {f.name for f in dataclasses.fields(AsyncEngineArgs)}


@pytest.mark.engine  # imports vllm.envs (1.4 s)
def test_environment_names_from_envs_py_are_vllms_own() -> None:
    import vllm.envs

    assert vllm_names.env_names() == set(vllm.envs.environment_variables)


def test_both_are_read_without_importing_torch() -> None:
    """``config validate`` and ``doctor`` would otherwise wait for torch and vLLM (~12 s)."""
    code = (
        "import sys; from vllm_mcp.engine.core import engine_arg_names; "
        "from vllm_mcp.engine.environment import engine_env_names; "
        "assert 'enforce_eager' in engine_arg_names() and 'max_model_len' in engine_arg_names(); "
        "assert 'VLLM_CPU_KVCACHE_SPACE' in engine_env_names(); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_file_that_is_not_there_or_not_python_gives_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """engine.py then imports vLLM for the names instead."""
    monkeypatch.setattr(vllm_names, "vllm_file", lambda name: None)
    assert vllm_names.engine_arg_names() == frozenset() == vllm_names.env_names()
    broken = tmp_path / "arg_utils.py"
    broken.write_text("class EngineArgs(:\n")
    monkeypatch.setattr(vllm_names, "vllm_file", lambda name: broken)
    assert vllm_names.engine_arg_names() == frozenset() == vllm_names.env_names()
