"""What the engine takes and gives: no vLLM here, so the tools, the protocol and the test
double (tests/doubles.py) use them without importing vLLM. How it fails is in vllm_mcp.errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from vllm_mcp.engine.lora import Adapter
from vllm_mcp.engine.structured import Constraint


class EngineState(str, enum.Enum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Sampling:
    """What one generation asks for, already validated."""

    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int | None = None
    min_tokens: int = 0
    stop: tuple[str, ...] = ()
    logprobs: int | None = None
    constraint: Constraint | None = None
    adapter: Adapter | None = None
    stream_interval: int = 1
    """Tokens per delta after the first (vLLM's own coalescing); 1 = a delta per engine step."""


@dataclass(frozen=True)
class Delta:
    """New output of one request since the last delta."""

    text: str
    new_tokens: int
    finish_reason: str | None
    stop_reason: str | int | None = None
    logprobs: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class ImageInput:
    """How the served model's chat template takes an image (found by vLLM's rules once loaded).

    ``parts``: the template loops over content parts and writes its own image token for
    ``{"type": "image"}`` (vLLM's "openai" content format); else content is a string and the
    model's ``placeholder`` (its class says which) goes before the text, a line each (vLLM's
    "string" format).
    """

    parts: bool
    placeholder: str | None = None
