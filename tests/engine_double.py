"""A named test double of ``vllm_mcp.engine.Engine`` for fast unit tests of the tool and protocol layers.

It is never used end to end: tests/e2e/ runs the real vLLM engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from vllm_mcp import tools
from vllm_mcp.config import Settings
from vllm_mcp.engine import Delta, EngineState, Sampling
from vllm_mcp.metrics import Metrics
from vllm_mcp.sessions import open_store

TOKEN_SECONDS = 0.01


class PlainTokenizerDouble:
    """A base-model tokenizer (no chat template) that remembers every text it encoded."""

    chat_template = None

    def __init__(self) -> None:
        self.texts: list[str] = []

    def encode(self, text: str) -> list[int]:
        self.texts.append(text)
        return [1] * max(1, len(text) // 4)


class SlowEngineDouble:
    """Stands in for ``Engine``: one token every ``TOKEN_SECONDS`` up to ``max_tokens``, an
    optional slow load; records aborted requests and the prompts it was given."""

    def __init__(self, load_seconds: float = 0.0) -> None:
        self.model_name = "double"
        self.dtype, self.device, self.version, self.failure = "float32", "cpu", "double", None
        self.state = EngineState.READY
        self.max_model_len = 100_000
        self.tokenizer = PlainTokenizerDouble()
        self.aborted: list[str] = []
        self.prompts: list[list[int]] = []
        self._load_seconds = load_seconds

    def unfinished_requests(self) -> int:
        return 0

    async def wait_ready(self) -> None:
        await asyncio.sleep(self._load_seconds)

    async def generate(
        self, token_ids: list[int], sampling: Sampling, request_id: str
    ) -> AsyncIterator[Delta]:
        self.prompts.append(list(token_ids))
        done = 0
        try:
            while done < sampling.max_tokens:
                await asyncio.sleep(TOKEN_SECONDS)
                done += 1
                last = done == sampling.max_tokens
                yield Delta(text="x", new_tokens=1, finish_reason="length" if last else None)
        finally:
            if done < sampling.max_tokens:
                self.aborted.append(request_id)


def make_tools(engine: SlowEngineDouble, **env: str) -> tools.Tools:
    """``Tools`` over the double, with settings from ``env`` only (whatever the caller exported)."""
    settings = Settings.load(environ=env)
    metrics = Metrics("double", None, 15.0)
    sessions = open_store(None, 10, 50)
    return tools.Tools(settings, engine, sessions, metrics)  # type: ignore[arg-type]
