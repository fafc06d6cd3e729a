"""vLLM's reasoning and tool-call parsers behind an interface free of vLLM.

The tools split a reply into thinking and answer, and find tool calls in it, the way vLLM's
OpenAI server does: with the parser classes of its registries (``vllm.reasoning``,
``vllm.tool_parsers``) run on the generated text. ``Parsers.load`` builds them once the
tokenizer is known (a parser checks that its tokens are in the vocabulary); a name vLLM does
not know, or a tokenizer the parser cannot work with, fails the start with a clear reason.
A reasoning parser keeps state per request, so each call gets a fresh one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vllm_mcp.errors import SetupError

Split = Callable[[str], tuple[str | None, str | None]]
"""Text generated so far -> (reasoning, answer); either may be None."""


class ParserUnavailable(SetupError, ValueError):
    """The configured parser is unknown to vLLM or cannot work with this model's tokenizer."""


@dataclass(frozen=True)
class FoundToolCall:
    """One tool call as the parser found it: ``arguments`` is the model's text, maybe not JSON."""

    id: str
    name: str
    arguments: str


class Parsers:
    """The configured parsers of one engine; ``None`` names mean none is configured."""

    def __init__(self, reasoning: type | None, tool: type | None, tokenizer: Any) -> None:
        self._reasoning_cls = reasoning
        self._tool_cls = tool
        self._tokenizer = tokenizer

    @property
    def reasoning(self) -> bool:
        return self._reasoning_cls is not None

    @property
    def tool_calls(self) -> bool:
        return self._tool_cls is not None

    @classmethod
    def load(cls, reasoning: str | None, tool: str | None, tokenizer: Any) -> Parsers:
        """Look the names up in vLLM's registries and try each on ``tokenizer``."""
        reasoning_cls = tool_cls = None
        if reasoning:
            from vllm.reasoning import ReasoningParserManager

            reasoning_cls = _lookup(ReasoningParserManager.get_reasoning_parser, reasoning, "REASONING")
            _try(lambda: reasoning_cls(tokenizer), reasoning, "VLLM_MCP_REASONING_PARSER")
        if tool:
            from vllm.tool_parsers import ToolParserManager

            tool_cls = _lookup(ToolParserManager.get_tool_parser, tool, "TOOL_CALL")
            _try(lambda: tool_cls(tokenizer), tool, "VLLM_MCP_TOOL_CALL_PARSER")
        return cls(reasoning_cls, tool_cls, tokenizer)

    def reasoning_split(self, chat_template_kwargs: dict[str, Any] | None) -> Split | None:
        """A fresh splitter for one call (the parser sees the call's template arguments, as
        ``enable_thinking``), or None when no reasoning parser is configured."""
        if self._reasoning_cls is None:
            return None
        parser = self._reasoning_cls(self._tokenizer, chat_template_kwargs=chat_template_kwargs or {})

        def split(text: str) -> tuple[str | None, str | None]:
            reasoning, answer = parser.extract_reasoning(text, None)
            return reasoning, answer

        return split

    def find_tool_calls(
        self, text: str, tools: list[dict[str, Any]], tool_choice: Any
    ) -> tuple[str | None, list[FoundToolCall]]:
        """(the text around the calls, the calls) in ``text``; no calls if none is configured."""
        if self._tool_cls is None:
            return text, []
        parser = self._tool_cls(self._tokenizer)
        found = parser.extract_tool_calls(text, _request(tools, tool_choice))
        if not found.tools_called:
            return found.content if found.content is not None else text, []
        calls = [FoundToolCall(c.id, c.function.name, c.function.arguments) for c in found.tool_calls]
        return found.content, calls


def _lookup(get: Callable[[str], type], name: str, setting: str) -> type:
    try:
        return get(name)
    except Exception as e:
        message = f"VLLM_MCP_{setting}_PARSER={name!r}: vLLM has no such parser ({e})"
        raise ParserUnavailable(message) from None


def _try(make: Callable[[], Any], name: str, setting: str) -> None:
    try:
        make()
    except Exception as e:
        raise ParserUnavailable(
            f"{setting}={name!r} does not fit this model's tokenizer: {e}; pick the parser made for "
            "this model family (vLLM's docs list them) or unset it"
        ) from None


def _request(tools: list[dict[str, Any]], tool_choice: Any) -> Any:
    """A ``ChatCompletionRequest`` for parsers that read the tools from it (None if it cannot be built)."""
    with contextlib.suppress(Exception):
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

        return ChatCompletionRequest(
            model="", messages=[], tools=tools, tool_choice=tool_choice, skip_special_tokens=False
        )
    return None
