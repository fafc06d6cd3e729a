"""A chat message as a tool call gives it: a role, and content as a string or OpenAI-style parts.

Many agents send ``content`` as ``[{"type": "text", "text": ...}]``. The parts are joined in
order, so the chat template, the content limit and the session see one string; a part of any
other type (an image, audio) is refused by name, since the served models take text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_PART_SHAPE = "{'type': 'text', 'text': ...}"


class TextPart(BaseModel):
    """One OpenAI-style content part; only text, since the served models take text."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart] = Field(
        description="The message text, or OpenAI-style parts [{'type': 'text', 'text': ...}] "
        "joined in order (concatenated, as given)."
    )

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, v: Any) -> Any:
        """One clear sentence per mistake (an image part, a part without text), not a union error."""
        if isinstance(v, str):
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
    def _joined(cls, v: str | list[TextPart]) -> str:
        # Stored, counted (VLLM_MCP_MAX_CONTENT_CHARS) and templated as one string.
        return v if isinstance(v, str) else "".join(part.text for part in v)
