"""A chat message as a tool call gives it: a role, and content as a string or OpenAI-style parts.

Many agents send ``content`` as ``[{"type": "text", "text": ...}]``. Text parts alone are joined
in order, so the chat template, the content limit and the session see one string. Image parts
(OpenAI's ``image_url``, MCP's ``image``: media.py) keep the content a list of parts, in order;
a part of any other type (audio, a file) is refused by name.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vllm_mcp.tools.media import ImageUrlPart, McpImagePart

_PART_SHAPE = "{'type': 'text', 'text': ...}"
_IMAGE_SHAPES = (
    "{'type': 'image_url', 'image_url': {'url': 'data:image/png;base64,...'}} or "
    "{'type': 'image', 'data': '<base64>', 'mimeType': 'image/png'}"
)
_IMAGE_MODELS: dict[str, type[BaseModel]] = {"image_url": ImageUrlPart, "image": McpImagePart}


class TextPart(BaseModel):
    """One OpenAI-style text part."""

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
    content: str | list[TextPart | ImageUrlPart | McpImagePart] | None = Field(
        None,
        description="The message text, or parts in order: text [{'type': 'text', 'text': ...}] "
        "(joined as given) and, for a multimodal model (model_info's input_modalities), images "
        f"{_IMAGE_SHAPES}. May be left out only by an assistant message with tool_calls.",
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
        """As the session sees it: content a string (or parts, with images), unset fields left out."""
        content = self.content
        if isinstance(content, list):
            return self.model_dump(exclude_none=True, mode="json")
        return self.model_dump(exclude_none=True, mode="json") | {"content": content or ""}

    def text(self) -> str:
        """The text of the content, images left out (what the content limit counts)."""
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content if isinstance(p, TextPart))
        return self.content or ""

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, v: Any) -> Any:
        """One clear sentence per mistake (an image part, a part without text), not a union error."""
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list):
            raise ValueError(f"must be a string or a list of {_PART_SHAPE} parts, got {type(v).__name__}")
        v = list(v)
        for i, part in enumerate(v):
            if not isinstance(part, dict):
                raise ValueError(f"part [{i}] must be an object {_PART_SHAPE}, got {type(part).__name__}")
            kind = part.get("type")
            if kind in _IMAGE_MODELS:
                v[i] = _image_part(i, kind, part)
                continue
            if kind != "text":
                raise ValueError(
                    f"part [{i}] has type {kind!r}, which this server does not take; send text "
                    f"parts {_PART_SHAPE} or images {_IMAGE_SHAPES}"
                )
            if not isinstance(part.get("text"), str):
                raise ValueError(f"part [{i}] (type 'text') needs 'text', a string")
            unknown = sorted(set(part) - {"type", "text"})
            if unknown:
                raise ValueError(f"part [{i}]: unknown key {unknown[0]!r}; a text part has 'type' and 'text'")
        return v

    @field_validator("content", mode="after")
    @classmethod
    def _joined(cls, v: Any) -> Any:
        # Text alone is stored, counted (VLLM_MCP_MAX_CONTENT_CHARS) and templated as one string.
        if v is None or isinstance(v, str) or not all(isinstance(p, TextPart) for p in v):
            return v
        return "".join(part.text for part in v)


def _image_part(i: int, kind: str, part: dict[str, Any]) -> BaseModel:
    """The part as its model, or a ValueError naming the part and the field that is wrong."""
    try:
        return _IMAGE_MODELS[kind].model_validate(part)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = {"missing": "required", "extra_forbidden": "unknown key"}.get(err["type"], err["msg"])
        raise ValueError(
            f"part [{i}] (type {kind!r}): {where}: {msg}; an image part is {_IMAGE_SHAPES}"
        ) from None
