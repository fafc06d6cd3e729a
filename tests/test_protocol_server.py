"""The SDK server mapping, over the SDK's in-memory client and an engine double.

Gateway-injected ``arguments.headers`` (FluidMCP main sends every HTTP request header,
``Authorization: Bearer <token>`` included) must be dropped before anything sees them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from mcp.client.client import Client

from tests.doubles import FakeEngine, tools_over
from vllm_mcp.protocol import build_server
from vllm_mcp.protocol.server import drop_gateway_arguments

TOKEN = "gw-token-6f1d0c2a"
HEADERS = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json", "host": "127.0.0.1:8099"}


def run_calls(calls: list[tuple[str, dict[str, Any]]]) -> tuple[list[Any], FakeEngine, Any]:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True)
    tools = tools_over(engine)

    async def scenario() -> list[Any]:
        async with Client(build_server(tools)) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(scenario()), engine, tools


def test_calls_carrying_gateway_headers_are_served_and_the_token_goes_nowhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    results, engine, tools = run_calls(
        [
            ("chat_completion", {**chat, "session_id": "s", "headers": HEADERS}),
            ("model_info", {"headers": HEADERS}),
            ("chat_completion", {**chat, "temperature": 9, "headers": HEADERS}),
            ("end_session", {"session_id": "nope", "headers": HEADERS}),
        ]
    )
    chat_result, info, bad, ended = results
    assert not chat_result.is_error and chat_result.structured_content["text"] == "xxx"
    assert not info.is_error and info.structured_content["model_name"] == "double"
    assert not ended.is_error and ended.structured_content["ended"] is False
    # A real error still names the real problem, and nothing about headers.
    assert bad.is_error
    assert "temperature:" in bad.content[0].text and "headers" not in bad.content[0].text
    seen = [
        *(r.model_dump_json() for r in results),
        json.dumps(asyncio.run(tools.sessions.history("s"))),
        json.dumps(engine.tokenizer.texts),
        caplog.text,
    ]
    for text in seen:
        assert TOKEN not in text and "authorization" not in text.lower()
    assert engine.tokenizer.texts and all("hi" in t for t in engine.tokenizer.texts)


def test_only_gateway_arguments_are_dropped() -> None:
    arguments = {"messages": [], "headers": HEADERS, "session_id": "a"}
    drop_gateway_arguments(arguments)
    assert arguments == {"messages": [], "session_id": "a"}
    drop_gateway_arguments(None)  # no arguments at all is fine


def test_an_unknown_argument_is_still_refused() -> None:
    results, _, _ = run_calls(
        [("chat_completion", {"messages": [{"role": "user", "content": "x"}], "hdrs": 1})]
    )
    assert results[0].is_error and "hdrs: unknown argument" in results[0].content[0].text


def test_every_tool_carries_all_five_annotations() -> None:
    """Connector directories (Claude's among them) refuse a tool without these hints."""
    engine = FakeEngine(reply="x", model_name="double", loaded=True)

    async def listed() -> dict[str, Any]:
        async with Client(build_server(tools_over(engine))) as client:
            tools = (await client.list_tools()).tools
            return {t.name: t.model_dump(by_alias=True)["annotations"] for t in tools}

    annotations = asyncio.run(listed())
    assert set(annotations) == {"chat_completion", "complete", "model_info", "end_session"}
    keys = {"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
    for name, hints in annotations.items():
        assert hints is not None and keys <= {k for k, v in hints.items() if v is not None}, name
        assert hints["openWorldHint"] is False, name  # nothing outside this server is reached
    assert annotations["model_info"]["readOnlyHint"] and annotations["model_info"]["idempotentHint"]
    assert annotations["end_session"]["destructiveHint"] and not annotations["end_session"]["readOnlyHint"]
    assert not annotations["chat_completion"]["readOnlyHint"]  # it appends a session turn
    assert annotations["complete"]["readOnlyHint"] and not annotations["complete"]["idempotentHint"]
