"""Tool calls as data: OpenAI function definitions in, the model's calls out.

``tools`` are rendered through the model's chat template. ``tool_choice`` says what may come
back, as in vLLM's OpenAI server: ``auto`` lets the model answer or call (the tool-call parser,
``VLLM_MCP_TOOL_CALL_PARSER``, finds the calls in its text), ``none`` leaves the tools out,
``required`` and one named function constrain the reply to the calls' JSON (no parser needed).
Arguments that are not JSON come back as the model wrote them, flagged, never dropped. No vLLM
or MCP here.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vllm_mcp.engine import structured
from vllm_mcp.engine.parsers import FoundToolCall

TOOL_CALLS = "tool_calls"  # finish_reason of a reply that is tool calls


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="A JSON Schema of the arguments object.")
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _schema(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None and (problem := structured.schema_problem(v)):
            raise ValueError(problem.replace("json_schema", "parameters", 1))
        return v


class ToolDefinition(BaseModel):
    """An OpenAI tool: ``{"type": "function", "function": {"name", "description", "parameters"}}``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1)


class NamedToolChoice(BaseModel):
    """``{"type": "function", "function": {"name": ...}}``: the reply is a call of that function."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["function"]
    function: NamedFunction


class ToolArguments(BaseModel):
    """The tool-calling arguments of ``chat_completion``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tools: list[ToolDefinition] | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="OpenAI function definitions the model may call; its calls come back in "
        "'tool_calls'. Send each tool's result back as a {'role': 'tool', 'tool_call_id', "
        "'content'} message.",
    )
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = Field(
        None,
        description="'auto' (default with tools: answer or call), 'none' (no tools this turn), "
        "'required' (at least one call), or {'type': 'function', 'function': {'name': ...}}.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ToolArguments:
        if self.tools is not None:
            names = [t.function.name for t in self.tools]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"tools: function {twice[0]!r} is defined twice")
        if self.tool_choice is not None and self.tools is None:
            raise ValueError("tool_choice: applies only with tools")
        if isinstance(self.tool_choice, NamedToolChoice):
            name = self.tool_choice.function.name
            if name not in {t.function.name for t in self.tools or ()}:
                raise ValueError(f"tool_choice: names {name!r}, which is not among tools")
        forced = self.tool_choice == "required" or isinstance(self.tool_choice, NamedToolChoice)
        given = [k for k in ("json_schema", "choice", "regex") if getattr(self, k, None) is not None]
        if forced and given:
            raise ValueError(
                f"tool_choice {self.choice_name()!r} constrains the reply to tool calls; it cannot "
                f"be combined with {given[0]}"
            )
        return self

    def choice_name(self) -> str:
        c = self.tool_choice
        return (
            c.function.name if isinstance(c, NamedToolChoice) else (c or ("auto" if self.tools else "none"))
        )

    def active_tools(self) -> list[dict[str, Any]] | None:
        """The tools the template shows: none with tool_choice 'none'."""
        if self.tools is None or self.tool_choice == "none":
            return None
        return [t.model_dump(exclude_none=True) for t in self.tools]

    def forced_constraint(self) -> structured.Constraint | None:
        """For 'required' or a named function: the reply is the calls' JSON (vLLM's way)."""
        c = self.tool_choice
        if isinstance(c, NamedToolChoice):
            tool = next(t for t in self.tools or () if t.function.name == c.function.name)
            return structured.Constraint("json", _parameters(tool), compact=True)
        if c == "required":
            items = [
                {
                    "type": "object",
                    "properties": {"name": {"const": t.function.name}, "parameters": _parameters(t)},
                    "required": ["name", "parameters"],
                    "additionalProperties": False,
                }
                for t in self.tools or ()
            ]
            schema = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
            return structured.Constraint("json", schema, compact=True)
        return None


def _parameters(tool: ToolDefinition) -> dict[str, Any]:
    return tool.function.parameters or {"type": "object"}


class ToolCall(BaseModel):
    """One call the model made."""

    id: str
    type: Literal["function"] = "function"
    name: str
    arguments: Any = Field(description="The arguments object; the model's raw text if it is not JSON.")
    arguments_invalid: bool = Field(
        False, description="True when 'arguments' is the raw text because it is not a JSON object."
    )


def new_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def call(name: str, arguments: Any, call_id: str | None = None) -> ToolCall:
    """A ``ToolCall``; ``arguments`` as text is parsed, kept raw and flagged if not a JSON object."""
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            return ToolCall(id=call_id or new_id(), name=name, arguments=arguments, arguments_invalid=True)
        arguments = value
    return ToolCall(id=call_id or new_id(), name=name, arguments=arguments)


def from_found(found: list[FoundToolCall]) -> list[ToolCall]:
    return [call(f.name, f.arguments, f.id) for f in found]


def from_forced(args: ToolArguments, text: str) -> list[ToolCall]:
    """The calls of a reply constrained by 'required' or a named function (JSON already)."""
    value = json.loads(text, strict=False)
    c = args.tool_choice
    if isinstance(c, NamedToolChoice):
        return [call(c.function.name, value)]
    return [call(item["name"], item["parameters"]) for item in value]


def as_message(calls: list[ToolCall]) -> list[dict[str, Any]]:
    """OpenAI's assistant ``tool_calls`` (arguments as a JSON string), as a session stores them."""
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {
                "name": c.name,
                "arguments": c.arguments if c.arguments_invalid else json.dumps(c.arguments),
            },
        }
        for c in calls
    ]


def for_template(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as chat templates expect them: tool-call arguments as objects, as vllm serve does."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            m = {**m, "tool_calls": [_template_call(c) for c in m["tool_calls"]]}
        out.append(m)
    return out


def _template_call(c: dict[str, Any]) -> dict[str, Any]:
    function = dict(c.get("function") or {})
    if isinstance(function.get("arguments"), str):
        with contextlib.suppress(ValueError):  # else the model's raw text, as it wrote it
            function["arguments"] = json.loads(function["arguments"])
    return {**c, "function": function}
