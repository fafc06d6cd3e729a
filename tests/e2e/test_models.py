"""End to end: a reasoning model's thinking kept apart, and tool calls, on the real engine.

One real ``vllm-mcp serve`` of the tiny thinking model (tests/support/models.py: a Qwen3-like
template, ``<think>`` and ``<tool_call>`` tokens) with vLLM's ``qwen3`` reasoning parser and
``hermes`` tool-call parser, through the official MCP client. The model is random, so a regex
(vLLM's structured output) steers it into the shape a real model would write; what is checked
is what the server makes of it, and that the call's template arguments reached the template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.models import serve_env
from tests.support.servers import McpClient

pytestmark = pytest.mark.engine

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TOOL_CALL_REGEX = r'<tool_call>\{"name": "get_weather", "arguments": \{"city": "[a-z]{2,6}"\}\}</tool_call>'
NO_THINKING = {"enable_thinking": False}


@pytest.fixture(scope="module")
def client(tiny_thinking_model: Path) -> Any:
    env = serve_env(
        tiny_thinking_model,
        VLLM_MCP_REASONING_PARSER="qwen3",
        VLLM_MCP_TOOL_CALL_PARSER="hermes",
        VLLM_DEFAULT_MAX_TOKENS="48",
    )
    c = McpClient(env)
    c.wait_ready(timeout=600)
    yield c
    c.close()


def ok(client: McpClient, **arguments: Any) -> tuple[str, dict[str, Any]]:
    result = client.call("chat_completion", arguments)
    assert not result.is_error, result.content[0].text
    return result.content[0].text, dict(result.structured_content)


def test_thinking_off_reaches_the_template_and_the_reply_is_all_answer(client: McpClient) -> None:
    shown, data = ok(
        client,
        messages=[{"role": "user", "content": "hi"}],
        chat_template_kwargs=NO_THINKING,
        regex="Hello [a-z]{3}",
        temperature=0,
    )
    assert data["text"].startswith("Hello ") and data["reasoning"] is None and shown == data["text"]


def test_a_steered_tool_call_comes_back_as_data_and_its_result_is_accepted(client: McpClient) -> None:
    _, first = ok(
        client,
        messages=[{"role": "user", "content": "weather?"}],
        tools=[WEATHER],
        chat_template_kwargs=NO_THINKING,
        regex=TOOL_CALL_REGEX,
        temperature=0,
        max_tokens=128,  # room for the whole call, however the tokenizer splits it
        session_id="weather",
    )
    assert first["finish_reason"] == "tool_calls", first
    [call] = first["tool_calls"]
    assert call["name"] == "get_weather" and set(call["arguments"]) == {"city"}
    assert not call["arguments_invalid"]
    _, second = ok(
        client,
        messages=[{"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 18}'}],
        tools=[WEATHER],
        chat_template_kwargs=NO_THINKING,
        regex="It is [a-z]{2,5}",
        temperature=0,
        session_id="weather",
    )
    assert second["text"].startswith("It is ") and second["tool_calls"] is None


def test_thinking_on_goes_to_reasoning(client: McpClient) -> None:
    # Structured output waits for the end of the thinking (vllm serve's way), which this random
    # model never writes: the whole reply is thinking, none of it answer.
    shown, data = ok(client, messages=[{"role": "user", "content": "hi"}], max_tokens=8, temperature=0)
    assert data["reasoning"] and data["text"] == "" and shown == ""


def test_a_bad_tool_argument_is_named_over_the_wire(client: McpClient) -> None:
    result = client.call(
        "chat_completion",
        {"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"},
    )
    assert result.is_error and "tool_choice: applies only with tools" in result.content[0].text


def test_an_image_to_this_text_only_model_is_refused_naming_it(
    client: McpClient, tiny_thinking_model: Path
) -> None:
    image = {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}
    result = client.call("chat_completion", {"messages": [{"role": "user", "content": [image]}]})
    assert result.is_error and result.content[0].text == (
        f"invalid arguments: messages[0].content[0] is an image, and {tiny_thinking_model} is a text-only "
        "model (model_info's input_modalities: text); send text, or serve a multimodal model"
    )
    assert client.info()["input_modalities"] == ["text"]
