"""Unit tests of the shared generation arguments (both generating tools) and their mapping to Sampling."""

from __future__ import annotations

from typing import Any

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.lora import Adapter
from vllm_mcp.engine.structured import Constraint
from vllm_mcp.tools import generation
from vllm_mcp.tools import handlers as tools


def parse(model: type, **arguments: Any) -> Any:
    return tools.parse_arguments(model, arguments)


@pytest.mark.parametrize("model", [tools.ChatArguments, tools.CompleteArguments])
def test_both_tools_share_the_generation_arguments(model: type) -> None:
    shared = set(generation.GenerationArguments.model_fields)
    assert shared <= set(model.model_fields)
    schema = tools.schema(model, "validation")
    assert shared <= set(schema["properties"])


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"stop": ["a"] * 5}, "stop: at most 4 stop strings, got 5"),
        ({"stop": [""]}, "stop: a stop string cannot be empty"),
        (
            {"stop": 3},
            "stop.str: Input should be a valid string; stop.list[str]: Input should be a valid list",
        ),
        ({"logprobs": 21}, "logprobs: Input should be less than or equal to 20"),
        ({"logprobs": -1}, "logprobs: Input should be greater than or equal to 0"),
        ({"choice": []}, "choice: List should have at least 1 item"),
        ({"regex": ""}, "regex: String should have at least 1 character"),
        ({"json_schema": "{}"}, "json_schema: Input should be a valid dictionary"),
        ({"choice": ["a"], "regex": "a"}, "invalid arguments: choice and regex cannot be combined"),
        ({"adapter": ""}, "adapter: String should have at least 1 character"),
    ],
)
def test_bad_generation_arguments_are_named(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(tools.InvalidArguments) as e:
        parse(tools.CompleteArguments, prompt="x", **arguments)
    assert expected in str(e.value)


def test_complete_needs_a_prompt_and_takes_no_messages() -> None:
    with pytest.raises(tools.InvalidArguments, match="prompt: required argument is missing"):
        parse(tools.CompleteArguments)
    with pytest.raises(tools.InvalidArguments, match="messages: unknown argument"):
        parse(tools.CompleteArguments, prompt="x", messages=[])


def test_sampling_carries_stop_constraint_logprobs_and_adapter() -> None:
    settings = Settings.load(environ={"VLLM_MCP_LORA_MODULES": "a=/x b=/y"})
    args = parse(tools.CompleteArguments, prompt="x", stop="END", choice=["p", "q"], logprobs=2, adapter="b")
    s = generation.sampling(args, settings, max_tokens=9)
    assert (s.max_tokens, s.stop, s.logprobs) == (9, ("END",), 2)
    assert s.constraint == Constraint("choice", ["p", "q"])
    assert s.adapter == Adapter("b", 2, "/y")
    plain = generation.sampling(parse(tools.CompleteArguments, prompt="x"), settings, max_tokens=9)
    assert (plain.stop, plain.logprobs, plain.constraint, plain.adapter) == ((), None, None, None)


def test_an_unknown_adapter_lists_the_known_ones() -> None:
    args = parse(tools.CompleteArguments, prompt="x", adapter="c")
    with pytest.raises(generation.UnknownAdapter, match="unknown adapter 'c'; known adapters: a, b"):
        generation.sampling(args, Settings.load(environ={"VLLM_MCP_LORA_MODULES": "a=/x b=/y"}), 4)
    with pytest.raises(generation.UnknownAdapter, match="none are configured"):
        generation.sampling(args, Settings.load(environ={}), 4)


def test_result_serializes_the_parsed_json_under_json() -> None:
    result = tools.CompleteResult(
        text='{"a":1}',
        finish_reason="stop",
        model="m",
        usage=generation.Usage(prompt_tokens=1, completion_tokens=3),
        timings=generation.Timings(time_to_first_token_s=0.1, total_s=0.2, queued_s=0.0),
        json_value={"a": 1},
    )
    data = result.model_dump(mode="json", by_alias=True)
    assert data["json"] == {"a": 1} and "json_value" not in data
    assert "json" in tools.schema(tools.CompleteResult, "serialization")["properties"]


def _stream_with(on_text: Any, deadline: float | None) -> generation.Sampling:
    import asyncio
    import time

    from tests.support.doubles import FakeEngine

    fake = FakeEngine(loaded=True)
    params = generation.Sampling(max_tokens=8, temperature=0.0, top_p=1.0, top_k=-1)
    out = asyncio.run(generation.stream(fake, [1, 2], params, "r1", time.monotonic(), on_text, deadline))
    assert out.text == "the fake engine says hello"
    return fake.sampling["r1"]


def test_engine_deltas_are_coalesced_only_when_nobody_streams_and_no_deadline_cuts() -> None:
    async def on_text(text: str, tokens: int) -> None:
        pass

    assert _stream_with(None, None).stream_interval == generation.COALESCE_TOKENS
    # Progress reads every delta; a deadline keeps the text so far, so both keep one per step.
    assert _stream_with(on_text, None).stream_interval == 1
    assert _stream_with(None, 1e12).stream_interval == 1
