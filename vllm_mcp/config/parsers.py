"""The reasoning and tool-call parser settings: a name from vLLM's registry, checked early.

The names are read from vLLM's source (``vllm_mcp.config.vllm_names``), never by importing vLLM, so
``serve``, ``config validate`` and ``doctor`` refuse a misspelt name at once. Where vLLM's
layout changed and no name can be read, the name passes here and the engine refuses it when it
starts (``vllm_mcp.engine.parsers``).
"""

from __future__ import annotations

from vllm_mcp.config import vllm_names as names

SETTING = {"reasoning": "VLLM_MCP_REASONING_PARSER", "tool": "VLLM_MCP_TOOL_CALL_PARSER"}
REGISTRY = {"reasoning": "vllm.reasoning", "tool": "vllm.tool_parsers"}


def check_parser_name(kind: str, value: str | None) -> str | None:
    """``value`` stripped (empty: unset), or ``ValueError`` naming the registry's names."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    known = names.parser_names(kind)
    if known and value not in known:
        raise ValueError(
            f"unknown parser {value!r}: not in vLLM's registry {REGISTRY[kind]}; "
            f"known: {', '.join(sorted(known))}"
        )
    return value
