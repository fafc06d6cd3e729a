"""Reasoning models: the thinking apart from the answer, and the chat template's own arguments.

A reasoning parser (``VLLM_MCP_REASONING_PARSER``, run by ``vllm_mcp.engine.parsers``) splits a
reply into its thinking and its answer. The answer is the result's ``text`` and what the session
keeps; the thinking is ``reasoning``, shown in the text content only with ``include_reasoning``.
While a reply streams, a progress notification carrying thinking starts with
``REASONING_TAG``; answer text comes untagged. No vLLM or MCP here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vllm_mcp.engine.parsers import Split
from vllm_mcp.tools.admission import ProgressSender

REASONING_TAG = "[reasoning] "
RESERVED_TEMPLATE_KEYS = frozenset(
    {
        "messages",
        "tools",
        "documents",
        "add_generation_prompt",
        "tokenize",
        "return_dict",
        "chat_template",
        "continue_final_message",
        "conversation",
        "tokenizer",
    }
)


class ReasoningArguments(BaseModel):
    """The reasoning arguments of ``chat_completion``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    include_reasoning: bool | None = Field(
        None,
        description="Also show the model's thinking in the text content (it is always in the "
        "result's 'reasoning' when the server has a reasoning parser).",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Extra arguments for the model's chat template, e.g. {'enable_thinking': false} "
        "to turn a Qwen3-style model's thinking off.",
    )
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = Field(
        None, description="Passed to the chat template as 'reasoning_effort' (gpt-oss and others)."
    )

    @field_validator("chat_template_kwargs")
    @classmethod
    def _free_keys(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        taken = sorted(set(v or ()) & RESERVED_TEMPLATE_KEYS)
        if taken:
            raise ValueError(
                f"{taken[0]!r} is set by the server, not by chat_template_kwargs (pass messages and "
                "tools as their own arguments)"
            )
        return v

    def template_kwargs(self) -> dict[str, Any]:
        """What the chat template receives besides messages and tools."""
        kwargs = dict(self.chat_template_kwargs or {})
        if self.reasoning_effort is not None:
            kwargs["reasoning_effort"] = self.reasoning_effort
        return kwargs


def split(text: str, splitter: Split | None) -> tuple[str, str | None]:
    """(answer, reasoning) of a whole reply; the reply itself without a reasoning parser."""
    if splitter is None:
        return text, None
    reasoning, answer = splitter(text)
    return answer or "", reasoning


def shown(answer: str, reasoning: str | None, include: bool | None) -> str:
    """The text content a client shows: the answer, after the thinking only if asked."""
    if include and reasoning:
        return f"<reasoning>\n{reasoning.strip()}\n</reasoning>\n\n{answer}"
    return answer


class PhasedProgress:
    """A ``ProgressSender`` that tells thinking from answer in what it forwards.

    Sits between the pacer and the caller: it re-splits the text streamed so far at each
    notification (the parser decides, as for the final result), tags thinking with
    ``REASONING_TAG`` and sends answer text as is. A notification whose text crosses the end
    of the thinking becomes two, the thinking first at a progress half a token lower.
    """

    def __init__(self, send: ProgressSender, splitter: Split) -> None:
        self._send = send
        self._split = splitter
        self._text = ""
        self._reasoning = ""
        self._answer = ""

    async def __call__(self, text: str, tokens: float, total: int | None) -> None:
        self._text += text
        reasoning, answer = self._split(self._text)
        reasoning, answer = reasoning or "", answer or ""
        new_reasoning = reasoning[len(self._reasoning) :] if reasoning.startswith(self._reasoning) else ""
        new_answer = answer[len(self._answer) :] if answer.startswith(self._answer) else answer
        self._reasoning, self._answer = reasoning, answer
        if new_reasoning and new_answer:
            await self._send(REASONING_TAG + new_reasoning, tokens - 0.5, total)
            await self._send(new_answer, tokens, total)
        elif new_reasoning:
            await self._send(REASONING_TAG + new_reasoning, tokens, total)
        else:
            await self._send(new_answer, tokens, total)
