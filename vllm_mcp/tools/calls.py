"""The tools' argument and result models: what a call sends and gets back.

The protocol package publishes their JSON schemas (``arguments.schema``) and validates calls
against them (``arguments.parse_arguments``); the handlers (handlers.py) take them. The
arguments every generating tool shares are ``generation.GenerationArguments``; reasoning.py and
tool_calls.py add theirs to ``ChatArguments``.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from vllm_mcp.engine import structured
from vllm_mcp.tools import limits, reasoning, tool_calls
from vllm_mcp.tools.generation import GenerationArguments, GenerationResult
from vllm_mcp.tools.messages import ChatMessage
from vllm_mcp.tools.tool_calls import ToolCall


class ChatArguments(tool_calls.ToolArguments, reasoning.ReasoningArguments, GenerationArguments):
    """Arguments of ``chat_completion``: the shared generation arguments plus the conversation,
    the reasoning arguments (reasoning.py) and tools (tool_calls.py)."""

    messages: list[ChatMessage] = Field(
        min_length=1, description="The new messages of this turn (system, user, assistant, tool)."
    )
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Keep the conversation under this id: earlier turns are prepended.",
    )

    @field_validator("session_id")
    @classmethod
    def _printable(cls, v: str | None) -> str | None:
        return v if v is None else limits.check_session_id(v)

    def constraint(self) -> structured.Constraint | None:
        """tool_choice 'required' or one function constrains the reply to the calls' JSON."""
        return self.forced_constraint() or super().constraint()


class CompleteArguments(GenerationArguments):
    """Arguments of ``complete``: a raw prompt, no chat template (base models, code, few-shot)."""

    prompt: str = Field(min_length=1, description="The text to continue, given to the model as is.")


class ChatResult(GenerationResult):
    session_id: str | None
    dropped_history_messages: int = Field(
        0, description="Oldest session messages left out so the prompt fits the context."
    )
    reasoning: str | None = Field(
        None,
        description="The model's thinking, apart from the answer in 'text' (with a reasoning parser, "
        "VLLM_MCP_REASONING_PARSER).",
    )
    tool_calls: list[ToolCall] | None = Field(
        None, description="The model's tool calls (with 'tools'); finish_reason is then 'tool_calls'."
    )
    _shown: str | None = PrivateAttr(None)

    def shown_text(self) -> str:
        """The text content: the answer, the thinking before it with include_reasoning, the calls."""
        text = self._shown if self._shown is not None else self.text
        if self.tool_calls:
            calls = [c.model_dump(mode="json") for c in self.tool_calls]
            text = f"{text}\n\ntool_calls: {json.dumps(calls)}".lstrip()
        return text


class CompleteResult(GenerationResult):
    pass


class EndSessionArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    session_id: str = Field(min_length=1, max_length=256)

    @field_validator("session_id")
    @classmethod
    def _printable(cls, v: str) -> str:
        return limits.check_session_id(v)


class EndSessionResult(BaseModel):
    session_id: str
    ended: bool = Field(description="False when no such session existed.")


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
