"""A chat message as a tool call gives it: a role, and content as a string or OpenAI-style parts.

Many agents send ``content`` as ``[{"type": "text", "text": ...}]``. The parts are joined in
order, so the chat template, the content limit and the session see one string; a part of any
other type (an image, audio) is refused by name, since the served models take text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PART_SHAPE = "{'type': 'text', 'text': ...}"


class TextPart(BaseModel):
    """One OpenAI-style content part; only text, since the served models take text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]
    text: str


class CalledFunction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)
    arguments: str | dict[str, Any] = Field(description="A JSON object, or its text (OpenAI's way).")


class MessageToolCall(BaseModel):
    """A tool call of an earlier assistant turn, as OpenAI's API gives it back."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = Field(
        None,
        description="The message text, or OpenAI-style parts [{'type': 'text', 'text': ...}] "
        "joined in order (concatenated, as given). May be left out only by an assistant "
        "message with tool_calls.",
    )
    tool_calls: list[MessageToolCall] | None = Field(
        None, description="An assistant turn's tool calls (as a result's 'tool_calls' returned them)."
    )
    tool_call_id: str | None = Field(
        None, min_length=1, max_length=256, description="role 'tool': the id of the call this answers."
    )

    @model_validator(mode="after")
    def _role_fields(self) -> ChatMessage:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError(f"tool_calls: only an assistant message has them, not a {self.role!r} one")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a 'tool' message needs tool_call_id, the id of the call it answers")
        if self.tool_call_id is not None and self.role != "tool":
            raise ValueError(f"tool_call_id: only a 'tool' message has one, not a {self.role!r} one")
        if self.content is None and not self.tool_calls:
            raise ValueError("content: required (only an assistant message with tool_calls may omit it)")
        return self

    def as_dict(self) -> dict[str, Any]:
        """As the chat template and the session see it: content a string, unset fields left out."""
        return self.model_dump(exclude_none=True, mode="json") | {"content": self.content or ""}

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, v: Any) -> Any:
        """One clear sentence per mistake (an image part, a part without text), not a union error."""
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list):
            raise ValueError(f"must be a string or a list of {_PART_SHAPE} parts, got {type(v).__name__}")
        for i, part in enumerate(v):
            if not isinstance(part, dict):
                raise ValueError(f"part [{i}] must be an object {_PART_SHAPE}, got {type(part).__name__}")
            kind = part.get("type")
            if kind != "text":
                raise ValueError(
                    f"part [{i}] has type {kind!r}: this model takes text only; send a string "
                    f"or parts {_PART_SHAPE}"
                )
            if not isinstance(part.get("text"), str):
                raise ValueError(f"part [{i}] (type 'text') needs 'text', a string")
            unknown = sorted(set(part) - {"type", "text"})
            if unknown:
                raise ValueError(f"part [{i}]: unknown key {unknown[0]!r}; a text part has 'type' and 'text'")
        return v

    @field_validator("content", mode="after")
    @classmethod
    def _joined(cls, v: str | list[TextPart] | None) -> str | None:
        # Stored, counted (VLLM_MCP_MAX_CONTENT_CHARS) and templated as one string.
        return v if v is None or isinstance(v, str) else "".join(part.text for part in v)
