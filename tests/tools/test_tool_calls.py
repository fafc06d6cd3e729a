"""Tool calls as data: definitions in, calls out, the tool's result sent back.

``auto`` runs vLLM's own ``hermes`` parser on the tiny thinking model's tokenizer over the
``FakeEngine`` double (its reply is what a tool-calling model writes); ``required`` and one
named function constrain the reply to JSON, which the double's sampling record shows.
The real engine steered into a call by a grammar: tests/e2e/test_models.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.engine.parsers import Parsers
from vllm_mcp.protocol.server import _ok
from vllm_mcp.tools import handlers as tools
from vllm_mcp.tools import tool_calls

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = 'Let me look.<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'


@pytest.fixture(scope="module")
def parsers(tiny_thinking_model: Path) -> Parsers:
    from transformers import AutoTokenizer

    return Parsers.load(None, "hermes", AutoTokenizer.from_pretrained(tiny_thinking_model))


def chat(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER], **extra}


def test_a_call_comes_back_as_data(parsers: Parsers) -> None:
    engine = FakeEngine(reply=CALL, loaded=True, parsers=parsers)
    result = asyncio.run(tools_over(engine).chat_completion(chat()))
    assert result.finish_reason == "tool_calls" and result.text == "Let me look."
    [call] = result.tool_calls or []
    assert (call.name, call.arguments, call.arguments_invalid) == ("get_weather", {"city": "Paris"}, False)
    assert call.id
    assert engine.tokenizer.template_kwargs[-1]["tools"] == [WEATHER]
    data = _ok(result).structured_content
    assert data["tool_calls"][0]["arguments"] == {"city": "Paris"}


def test_a_plain_answer_has_no_calls(parsers: Parsers) -> None:
    engine = FakeEngine(reply="It is sunny", loaded=True, parsers=parsers)
    result = asyncio.run(tools_over(engine).chat_completion(chat()))
    assert (result.tool_calls, result.finish_reason, result.text) == (None, "stop", "It is sunny")


def test_the_tool_result_turn_is_accepted_in_a_session(parsers: Parsers) -> None:
    engine = FakeEngine(reply=CALL, loaded=True, parsers=parsers)
    t = tools_over(engine)

    async def scenario() -> Any:
        first = await t.chat_completion(chat(session_id="s"))
        call_id = first.tool_calls[0].id
        engine.reply = "It is 18 C in Paris"
        tool_turn = [{"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 18}'}]
        return call_id, await t.chat_completion(chat(session_id="s", messages=tool_turn))

    call_id, second = asyncio.run(scenario())
    assert second.text == "It is 18 C in Paris" and second.tool_calls is None
    history = asyncio.run(t.sessions.history("s"))
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"]
    assert history[1]["tool_calls"][0]["id"] == call_id
    assert json.loads(history[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_a_caller_sends_its_own_history_with_calls() -> None:
    engine = FakeEngine(reply="Done", loaded=True)
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    result = asyncio.run(tools_over(engine).chat_completion({"messages": messages}))
    assert result.text == "Done"
    assert engine.tokenizer.texts[-1] == "<user>Weather?<assistant><tool>sunny<assistant>"


def test_required_and_named_choices_constrain_the_reply_to_json() -> None:
    engine = FakeEngine(reply='{"city":"Oslo"}', loaded=True)
    t = tools_over(engine)
    named = {"type": "function", "function": {"name": "get_weather"}}
    result = asyncio.run(t.chat_completion(chat(tool_choice=named)))
    constraint = engine.sampling[engine.started[-1]].constraint
    assert constraint is not None and constraint.value == WEATHER["function"]["parameters"]
    assert result.finish_reason == "tool_calls" and result.tool_calls[0].arguments == {"city": "Oslo"}
    engine.reply = '[{"name":"get_weather","parameters":{"city":"Rome"}}]'
    result = asyncio.run(t.chat_completion(chat(tool_choice="required")))
    constraint = engine.sampling[engine.started[-1]].constraint
    assert constraint is not None and constraint.value["minItems"] == 1
    assert [(c.name, c.arguments) for c in result.tool_calls or []] == [("get_weather", {"city": "Rome"})]


def test_tool_choice_none_leaves_the_tools_out(parsers: Parsers) -> None:
    engine = FakeEngine(reply=CALL, loaded=True, parsers=parsers)
    result = asyncio.run(tools_over(engine).chat_completion(chat(tool_choice="none")))
    assert result.tool_calls is None and "tools" not in engine.tokenizer.template_kwargs[-1]


def test_arguments_that_are_not_json_come_back_raw_and_flagged() -> None:
    call = tool_calls.call("get_weather", '{"city": Paris')
    assert (call.arguments, call.arguments_invalid) == ('{"city": Paris', True)
    assert tool_calls.call("f", "[1, 2]").arguments_invalid  # JSON, but not an arguments object
    assert tool_calls.as_message([call])[0]["function"]["arguments"] == '{"city": Paris'


def test_auto_without_a_parser_is_refused() -> None:
    t = tools_over(FakeEngine(loaded=True))
    with pytest.raises(tools.InvalidArguments, match="VLLM_MCP_TOOL_CALL_PARSER"):
        asyncio.run(t.chat_completion(chat()))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (chat(tools=None, tool_choice="auto"), "tool_choice: applies only with tools"),
        (
            chat(tool_choice={"type": "function", "function": {"name": "nope"}}),
            "tool_choice: names 'nope', which is not among tools",
        ),
        (chat(tools=[WEATHER, WEATHER]), "tools: function 'get_weather' is defined twice"),
        (chat(tool_choice="always"), "tool_choice"),
        (chat(tool_choice="required", regex="a+"), "cannot be combined with regex"),
        (chat(tools=[{"type": "function", "function": {"name": "bad name"}}]), "tools[0].function.name"),
        (
            chat(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]),
            "tools[0].function.parameters: parameters.type",
        ),
        (chat(tools=[{"type": "retrieval"}]), "tools[0].type: Input should be 'function'"),
        (
            {"messages": [{"role": "tool", "content": "x"}]},
            "a 'tool' message needs tool_call_id",
        ),
        (
            {"messages": [{"role": "user", "content": "x", "tool_call_id": "c"}]},
            "tool_call_id: only a 'tool' message has one",
        ),
        (
            {"messages": [{"role": "user", "tool_calls": []}]},
            "tool_calls: only an assistant message has them",
        ),
        (
            {"messages": [{"role": "assistant"}]},
            "content: required (only an assistant message with tool_calls",
        ),
    ],
)
def test_bad_tool_arguments_are_named(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(tools.InvalidArguments, match="invalid arguments: ") as e:
        tools.parse_arguments(tools.ChatArguments, arguments)
    assert expected in str(e.value)


def test_a_base_model_refuses_tools() -> None:
    engine = FakeEngine(loaded=True)
    engine.tokenizer.chat_template = None  # type: ignore[assignment]  # a base model's tokenizer
    with pytest.raises(tools.InvalidArguments, match="no chat template"):
        asyncio.run(tools_over(engine).chat_completion(chat(tool_choice="required")))
