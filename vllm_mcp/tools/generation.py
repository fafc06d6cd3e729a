"""What every generating tool shares: its sampling arguments, its result, and the stream loop.

``chat_completion`` (messages through the chat template) and ``complete`` (a raw prompt) take
the same sampling, stop, structured-output, adapter and log-probability arguments: one base
model declares them once, so ``tools/list`` shows the same schema for both. No vLLM or MCP here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vllm_mcp.config.settings import Settings, check_top_k
from vllm_mcp.engine import lora, structured
from vllm_mcp.engine.core import Engine, Sampling
from vllm_mcp.errors import OutOfTime, RequestError
from vllm_mcp.tools.admission import COALESCE_TOKENS as COALESCE_TOKENS  # tests read it here
from vllm_mcp.tools.admission import ProgressRate, output_interval

MAX_LOGPROBS = 20  # vllm serve's default cap (max_logprobs)
MAX_STOP = 4  # as OpenAI's API and vllm serve
TIME_LIMIT = "time_limit"  # finish_reason of a reply cut by the call's time budget


class GenerationArguments(BaseModel):
    """Arguments of any generating tool; unset sampling values take the server defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str | None = Field(
        None,
        min_length=1,
        description="Which served model answers (model_info lists them); the first generative "
        "model if unset.",
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0-2; 0 is greedy.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (>= 1).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling, (0, 1].")
    top_k: int | None = Field(None, description="Top-k sampling: -1 (off) or >= 1.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed + same input = same output.")
    min_tokens: int | None = Field(
        None, ge=0, description="Generate at least this many tokens (ignores end of text)."
    )
    timeout_s: float | None = Field(
        None,
        gt=0.0,
        description="Seconds this call may take, queueing included; then the text so far is "
        "returned with finish_reason 'time_limit'. Capped at the server's VLLM_MCP_MAX_CALL_SECONDS.",
    )
    stop: str | list[str] | None = Field(
        None,
        description=f"Up to {MAX_STOP} strings; the reply ends before the first one generated "
        "(stop_reason says which).",
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        description="A JSON Schema object: the reply is constrained to JSON valid against it, and "
        "the result's 'json' holds the parsed value. Excludes choice and regex.",
    )
    json_whitespace: bool | None = Field(
        None,
        description="With json_schema: let the reply put spaces and newlines between JSON tokens. "
        "By default it is compact JSON, which a small model cannot fill with whitespace until "
        "max_tokens.",
    )
    choice: list[str] | None = Field(
        None, min_length=1, description="The reply is exactly one of these strings."
    )
    regex: str | None = Field(
        None, min_length=1, description="The reply matches this regular expression (whole reply)."
    )
    adapter: str | None = Field(
        None,
        min_length=1,
        description="Name of a LoRA adapter to generate with (model_info lists them); the base "
        "model if unset.",
    )
    logprobs: int | None = Field(
        None,
        ge=0,
        le=MAX_LOGPROBS,
        description=f"Return each generated token's log-probability and the top N (0-{MAX_LOGPROBS}) "
        "alternatives in the result's 'logprobs'.",
    )

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int | None) -> int | None:
        return v if v is None else check_top_k(v)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: str | list[str] | None) -> list[str] | None:
        if v is None:
            return None
        strings = [v] if isinstance(v, str) else v
        if len(strings) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop strings, got {len(strings)}")
        if any(not s for s in strings):
            raise ValueError("a stop string cannot be empty")
        return strings

    @model_validator(mode="after")
    def _one_constraint(self) -> GenerationArguments:
        # ValueError naming the mistake; the schema itself is checked later, once, off the loop.
        structured.constraint(self.json_schema, self.choice, self.regex)
        if self.json_whitespace is not None and self.json_schema is None:
            raise ValueError("json_whitespace: applies only with json_schema")
        return self

    def constraint(self) -> structured.Constraint | None:
        found = structured.constraint(self.json_schema, self.choice, self.regex)
        if found is not None and found.kind == "json" and not self.json_whitespace:
            return dataclasses.replace(found, compact=True)
        return found


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    time_to_first_token_s: float | None = Field(description="Seconds until the first token.")
    total_s: float = Field(description="Seconds for the whole call, queueing included.")
    queued_s: float = Field(description="Seconds spent waiting for a generation slot.")


class Alternative(BaseModel):
    token: str
    token_id: int
    logprob: float


class TokenLogprob(BaseModel):
    token: str = Field(description="The generated token, decoded.")
    token_id: int
    logprob: float = Field(description="Its log-probability (before any sampling filter).")
    top: list[Alternative] = Field(description="The N most likely tokens at this step, best first.")


class GenerationResult(BaseModel):
    """What any generating tool returns; ``text`` is also the call's text content."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    text: str
    finish_reason: str | None = Field(
        description="'stop' (end of text or a stop string), 'length' (max_tokens), 'abort', or "
        "'time_limit' (the call's time budget ran out: the text so far)."
    )
    stop_reason: str | int | None = Field(
        None,
        description="The stop string (or stop token id) that ended the reply; null at end of "
        "text or max_tokens.",
    )
    model: str
    adapter: str | None = Field(None, description="The LoRA adapter used, if any.")
    usage: Usage
    timings: Timings
    json_value: Any = Field(
        None,
        alias="json",
        description="With json_schema: the reply parsed (it validates against the schema).",
    )
    logprobs: list[TokenLogprob] | None = Field(
        None, description="With logprobs: one entry per generated token."
    )


# --- turning arguments into a generation ------------------------------------------------


class UnknownAdapter(RequestError, ValueError):
    """An ``adapter`` argument that names no configured adapter (the tools say invalid)."""


def sampling(args: GenerationArguments, settings: Settings, max_tokens: int) -> Sampling:
    """The engine's ``Sampling`` for validated arguments; ``max_tokens`` is already fitted."""
    adapter = None
    if args.adapter is not None:
        known = lora.adapters(settings.lora_modules)
        if args.adapter not in known:
            names = ", ".join(known) or "none are configured (VLLM_MCP_LORA_MODULES)"
            raise UnknownAdapter(f"adapter: unknown adapter {args.adapter!r}; known adapters: {names}")
        adapter = known[args.adapter]
    s = settings
    return Sampling(
        max_tokens=max_tokens,
        temperature=s.default_temperature if args.temperature is None else args.temperature,
        top_p=args.top_p or s.default_top_p,
        top_k=s.default_top_k if args.top_k is None else args.top_k,
        seed=args.seed,
        min_tokens=min(args.min_tokens or 0, max_tokens),
        stop=tuple(args.stop or ()),
        logprobs=args.logprobs,
        constraint=args.constraint(),
        adapter=adapter,
    )


@dataclass
class Generated:
    text: str
    tokens: int
    finish_reason: str | None
    stop_reason: str | int | None
    first_token_s: float | None
    logprobs: list[dict[str, Any]] | None


async def stream(
    engine: Engine,
    prompt_ids: list[int],
    params: Sampling,
    request_id: str,
    started: float,
    on_text: Callable[[str, int], Awaitable[None]] | None,
    deadline: float | None = None,
    rate: ProgressRate | None = None,
    images: Sequence[Any] = (),
) -> Generated:
    """Run one request to its end or to ``deadline``, passing new text to ``on_text`` as it comes.

    At the deadline the request is aborted (closing the engine's stream does it) and the text so
    far is the reply, with finish_reason "time_limit"; ``OutOfTime`` if there was none yet.

    The engine coalesces tokens into one output per ``admission.output_interval`` (vLLM's
    ``stream_interval``): no more often than ``on_text``'s caller is told (``rate``'s pace),
    as finely as the deadline needs, per 64 tokens when neither; always the first token at
    once and the last with the finish. ``rate`` also learns this call's decode rate.
    """
    budget = None if deadline is None else deadline - time.monotonic()
    if rate is not None:
        tokens = rate.output_interval(on_text is not None, budget)
    else:
        tokens = output_interval(on_text is not None, 0.0, budget, None)
    params = dataclasses.replace(params, stream_interval=tokens)
    parts: list[str] = []
    logprobs: list[dict[str, Any]] | None = [] if params.logprobs is not None else None
    out = Generated("", 0, None, None, None, logprobs)
    first_at = last_at = 0.0
    first_tokens = 0

    async def consume() -> None:
        nonlocal first_at, last_at, first_tokens
        async for delta in engine.generate(prompt_ids, params, request_id, images):
            if delta.new_tokens:
                last_at = time.monotonic()
                if out.first_token_s is None:
                    out.first_token_s, first_at, first_tokens = last_at - started, last_at, delta.new_tokens
            parts.append(delta.text)
            out.tokens += delta.new_tokens
            if delta.finish_reason:
                out.finish_reason, out.stop_reason = delta.finish_reason, delta.stop_reason
            if logprobs is not None and delta.logprobs:
                logprobs.extend(delta.logprobs)
            # A token can decode to no text; its count still reaches the progress reports.
            if on_text and (delta.text or delta.new_tokens):
                await on_text(delta.text, out.tokens)

    try:
        if deadline is None:
            await consume()
        else:
            try:
                await asyncio.wait_for(consume(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                if not out.tokens:
                    raise OutOfTime from None  # nothing to keep: as if never started
                out.finish_reason, out.stop_reason = TIME_LIMIT, None
    finally:
        if rate is not None:
            rate.observe(out.tokens - first_tokens, last_at - first_at)
    out.text = "".join(parts)
    return out


def result_fields(args: GenerationArguments, model: str, out: Generated, max_tokens: int) -> dict[str, Any]:
    """The ``GenerationResult`` fields every tool fills the same way (usage/timings excepted).

    Raises ``structured.IncompleteJson`` when a schema-constrained reply was cut short.
    """
    fields: dict[str, Any] = {
        "text": out.text,
        "finish_reason": out.finish_reason,
        "stop_reason": out.stop_reason,
        "model": model,
        "adapter": args.adapter,
        "logprobs": out.logprobs,
    }
    if args.json_schema is not None:
        fields["json_value"] = structured.parse_reply(out.text, out.finish_reason, max_tokens)
    return fields
