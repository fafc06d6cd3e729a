"""The parser settings: names from vLLM's registries, read from its source without importing it."""

from __future__ import annotations

import pytest

from vllm_mcp.config import vllm_names as names
from vllm_mcp.config.settings import ConfigError, Settings


def test_the_registries_are_read_without_importing_vllm() -> None:
    assert {"deepseek_r1", "qwen3", "openai_gptoss"} <= names.parser_names("reasoning")
    assert {"hermes", "llama3_json", "qwen3_coder"} <= names.parser_names("tool")


def test_known_names_are_settings() -> None:
    s = Settings.load(environ={"VLLM_MCP_REASONING_PARSER": "qwen3", "VLLM_MCP_TOOL_CALL_PARSER": " hermes "})
    assert (s.reasoning_parser, s.tool_call_parser) == ("qwen3", "hermes")
    assert Settings.load(environ={"VLLM_MCP_REASONING_PARSER": ""}).reasoning_parser is None


@pytest.mark.parametrize(
    ("name", "value", "registry"),
    [
        ("VLLM_MCP_REASONING_PARSER", "qwen", "vllm.reasoning"),
        ("VLLM_MCP_TOOL_CALL_PARSER", "hermez", "vllm.tool_parsers"),
    ],
)
def test_an_unknown_name_is_refused_with_the_known_ones(name: str, value: str, registry: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(environ={name: value})
    message = str(e.value)
    assert name in message and f"unknown parser {value!r}" in message and registry in message
    assert ("qwen3" if "REASONING" in name else "hermes") in message
