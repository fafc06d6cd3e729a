"""The quick start, for real: `vllm-mcp chat` on the embedded SmolLM2, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.engine


def test_chat_answers_a_factual_question_with_the_embedded_model() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    env.update(
        {
            # The default model, "embedded", converted once into this cache and kept.
            "VLLM_MCP_CACHE_DIR": str(ROOT / ".cache" / "vllm-mcp"),
            "VLLM_MAX_MODEL_LEN": "2048",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_MCP_ENGINE_ARGS": json.dumps({"enforce_eager": True}),
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "chat", "What is the capital of France?", "--temperature", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout
    # stdout is the answer only; the summary line and any log go to stderr.
    assert "{" not in proc.stdout and "SmolLM2-135M-Instruct" in proc.stderr
