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

from tests.support.doubles import FakeEngine, tools_over
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


@pytest.mark.parametrize(("mode", "label"), [(None, ""), ("off", ""), ("token-file", "alice")])
def test_the_metrics_caller_label_is_off_or_the_token_files_names(
    tmp_path: Any, mode: str | None, label: str
) -> None:
    """Over HTTP with a token file: the label is what VLLM_MCP_METRICS_CALLER_LABEL says."""
    from prometheus_client import generate_latest

    from tests.support.httpserver import mcp_client
    from tests.support.served import ServedDouble, wait_listening

    tokens = tmp_path / "tokens"
    tokens.write_text("alice:" + "a" * 32 + "\n")
    tokens.chmod(0o600)
    env = {"VLLM_MCP_METRICS_CALLER_LABEL": mode} if mode else {}
    tools = tools_over(FakeEngine(endless="x", model_name="double", loaded=True), **env)
    served = ServedDouble(tmp_path, server=build_server(tools), VLLM_MCP_HTTP_TOKEN_FILE=str(tokens))
    try:
        wait_listening(served.base + "/healthz")

        async def call() -> None:
            async with mcp_client(served.url, "a" * 32) as client:
                assert not (await client.call_tool("model_info", {})).is_error

        asyncio.run(call())
    finally:
        served.close()
    text = generate_latest(tools.metrics.registry).decode()
    assert (
        f'vllm_mcp_requests_total{{caller="{label}",model="double",outcome="ok",tool="model_info"}} 1.0'
        in text
    )


def test_an_oauth_caller_is_never_a_metrics_label_of_its_own() -> None:
    from types import SimpleNamespace

    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    from vllm_mcp.protocol.server import metrics_caller

    def ctx(**token: Any) -> Any:
        user = AuthenticatedUser(AccessToken(token="[redacted]", scopes=[], **token))
        return SimpleNamespace(request=SimpleNamespace(scope={"user": user}))

    oauth = ctx(client_id="carol@example.org", claims={"iss": "https://auth.example.org"})
    token_file = ctx(client_id="ops")
    assert [metrics_caller(c, "token-file") for c in (oauth, token_file)] == ["oauth", "ops"]
    assert [metrics_caller(c, "off") for c in (oauth, token_file)] == ["", ""]
    assert metrics_caller(SimpleNamespace(request=None), "token-file") == ""  # stdio


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
