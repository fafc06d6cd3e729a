"""The engine's process helpers that need no vLLM (engine/process.py)."""

from __future__ import annotations

import os

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.process import explain_failure, visible_devices


def test_a_models_devices_are_what_its_processes_see_during_its_load_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    with visible_devices((4, 5)):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with visible_devices((0,)):
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    with visible_devices(None):  # no devices given: the environment as it is
        assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_an_out_of_memory_failure_names_the_models_own_keys(tmp_path: object) -> None:
    settings = Settings.load(environ={})
    error = RuntimeError("Engine core initialization failed. See root cause above.")
    lines = ["ValueError: No available memory for the cache blocks. Try increasing KV cache"]
    single = explain_failure(error, lines, settings, None)
    assert "(root cause: ValueError: No available memory" in single
    assert "reduce VLLM_GPU_MEMORY_UTILIZATION (current: 0.9)" in single
    named = explain_failure(error, lines, settings, "fast")
    assert "reduce model 'fast''s gpu_memory_utilization (current: 0.9) or max_model_len" in named
    assert "in VLLM_MCP_MODELS" in named and "VLLM_GPU_MEMORY_UTILIZATION" not in named
