"""Unit tests of the LoRA settings: the name=path syntax and the engine arguments they imply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_mcp.config.rules import parse_lora_modules
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import lora
from vllm_mcp.errors import ConfigError


def test_pairs_by_spaces_or_commas() -> None:
    assert parse_lora_modules(" sql=/m/sql,chat=org/chat-lora  x.y_z-1=./rel ") == {
        "sql": "/m/sql",
        "chat": "org/chat-lora",
        "x.y_z-1": "./rel",
    }
    assert parse_lora_modules("") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sql", "'sql' is not a name=path pair"),
        ("sql=", "'sql=' is not a name=path pair"),
        ("a=/x a=/y", "adapter name 'a' is given twice"),
        ("-a=/x", "adapter name '-a': use letters"),
    ],
)
def test_bad_pairs_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_lora_modules(text)
    with pytest.raises(ConfigError, match="invalid VLLM_MCP_LORA_MODULES="):
        Settings.load(environ={"VLLM_MCP_LORA_MODULES": text})


def test_setting_is_parsed_once_in_settings() -> None:
    s = Settings.load(environ={"VLLM_MCP_LORA_MODULES": "a=/x b=/y"})
    assert s.lora_modules == {"a": "/x", "b": "/y"}
    assert lora.adapters(s.lora_modules) == {"a": lora.Adapter("a", 1, "/x"), "b": lora.Adapter("b", 2, "/y")}
    assert Settings.load(environ={}).lora_modules == {}


def test_engine_arguments_fit_every_adapter(tmp_path: Path) -> None:
    assert lora.engine_kwargs({}) == {}
    for name, rank in (("small", 4), ("big", 24)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text(json.dumps({"r": rank}))
    kwargs = lora.engine_kwargs({"s": str(tmp_path / "small"), "b": str(tmp_path / "big")})
    # 24 is not a rank vLLM accepts; the next one up is.
    assert kwargs == {"enable_lora": True, "max_loras": 2, "max_lora_rank": 32}
    # An adapter not on this machine (a Hub id not yet fetched): vLLM's default rank.
    assert lora.engine_kwargs({"hub": "org/not-fetched"})["max_lora_rank"] == 16
