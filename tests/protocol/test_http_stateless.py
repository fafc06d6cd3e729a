"""Unit tests of ``VLLM_MCP_HTTP_STATELESS`` and of ``session_id``'s ``Mcp-Param`` header, over
the HTTP transport (vllm_mcp/protocol/http.py) around a bare SDK ``Server`` (no engine), with the
official SDK client: what stateless mode keeps (progress, hang-up cancel, drain) and gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from tests.support.httpserver import ACCEPT
from tests.support.served import INIT, Recorder, ServedDouble, chat, wait_listening
from vllm_mcp.protocol.server import SESSION_HEADER

PARAM_HEADER = f"mcp-param-{SESSION_HEADER.lower()}"


@pytest.fixture
def stateless(tmp_path):  # type: ignore[no-untyped-def]
    recorder = Recorder()
    served = ServedDouble(tmp_path, recorder.server(), VLLM_MCP_HTTP_STATELESS="true")
    served.recorder = recorder  # type: ignore[attr-defined]
    wait_listening(served.base + "/healthz")
    yield served
    served.close()


def test_stateless_initialize_opens_no_session_and_any_request_stands_alone(stateless: ServedDouble) -> None:
    r = httpx2.post(stateless.url, json=INIT, headers=ACCEPT)
    assert r.status_code == 200 and "mcp-session-id" not in r.headers
    # No initialize before it, no session header: another replica could have answered it.
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    r = httpx2.post(stateless.url, json=listing, headers={**ACCEPT, "mcp-protocol-version": "2025-11-25"})
    assert r.status_code == 200 and '"chat_completion"' in r.text


def test_a_stateful_server_still_opens_sessions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    served = ServedDouble(tmp_path, Recorder().server())
    try:
        wait_listening(served.base + "/healthz")
        assert httpx2.post(served.url, json=INIT, headers=ACCEPT).headers["mcp-session-id"]
    finally:
        served.close()


async def legacy_calls(url: str) -> dict[str, Any]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    progress: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with streamable_http_client(url) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool("chat_completion", chat("c1"), progress_callback=on_progress)
    return {"text": result.content[0].text, "progress": progress}


def test_stateless_keeps_progress_within_the_calls_response(stateless: ServedDouble) -> None:
    report = asyncio.run(asyncio.wait_for(legacy_calls(stateless.url), 60))
    assert report == {"text": "c1", "progress": ["part 1", "part 2"]}


def test_stateless_keeps_hang_up_cancel(stateless: ServedDouble) -> None:
    recorder: Recorder = stateless.recorder  # type: ignore[attr-defined]
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "end_session"}}
    headers = {**ACCEPT, "mcp-protocol-version": "2025-11-25"}
    with httpx2.Client(timeout=30) as http, http.stream("POST", stateless.url, json=call, headers=headers):
        assert recorder.started.wait(30)
    assert recorder.cancelled.wait(10), "the call ran on after its client hung up"


def test_stateless_keeps_the_drain(stateless: ServedDouble) -> None:
    stateless.transport.stop_intake()
    r = httpx2.post(stateless.url, json=INIT, headers=ACCEPT)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"


async def modern_calls(url: str) -> list[Any]:
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url)) as client:
        assert client.protocol_version == "2026-07-28"
        return [
            await client.call_tool("chat_completion", chat("conv-7")),
            await client.call_tool("chat_completion", chat("a conversation/é")),
            await client.call_tool("chat_completion", chat()),
        ]


@pytest.mark.parametrize("mode", ["stateless", "stateful"])
def test_a_modern_client_sends_session_id_as_an_mcp_param_header(tmp_path, mode: str) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    env = {"VLLM_MCP_HTTP_STATELESS": "true"} if mode == "stateless" else {}
    served = ServedDouble(tmp_path, recorder.server(), **env)
    try:
        wait_listening(served.base + "/healthz")
        results = asyncio.run(asyncio.wait_for(modern_calls(served.url), 60))
    finally:
        served.close()
    assert [r.content[0].text for r in results] == ["conv-7", "a conversation/é", "none"]
    sent = [h.get(PARAM_HEADER) for h in recorder.headers]
    # A non-token value travels base64-wrapped; the same id always gives the same header.
    assert sent == ["conv-7", "=?base64?YSBjb252ZXJzYXRpb24vw6k=?=", None]


def test_a_header_that_disagrees_with_session_id_is_refused(stateless: ServedDouble) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 4,
        "method": "tools/call",
        "params": {
            "name": "chat_completion",
            "arguments": chat("mine"),
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }
    headers = {
        **ACCEPT,
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/call",
        "mcp-name": "chat_completion",
        PARAM_HEADER: "someone-elses",
    }
    r = httpx2.post(stateless.url, json=call, headers=headers)
    assert r.status_code == 400
    assert "Mcp-Param-Session-Id header does not match" in r.json()["error"]["message"]
    assert stateless.recorder.headers == []  # type: ignore[attr-defined]


async def cancel_after(url: str, mode: str, recorder: Recorder, wait: float) -> bool:
    """Start the slow call and give up on it (the SDK client then cancels it), then see, while
    still connected (a hang-up would cancel it anyway), whether the call stopped."""
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with Client(streamable_http_client(url), mode=mode) as client:  # type: ignore[arg-type]
        call = asyncio.ensure_future(client.call_tool("end_session", {"session_id": "x"}))
        assert await asyncio.to_thread(recorder.started.wait, 30), "the slow call never started"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        return await asyncio.to_thread(recorder.cancelled.wait, wait)


@pytest.mark.parametrize(("mode", "stops"), [("auto", True), ("legacy", False)])
def test_what_a_client_side_cancel_does_in_stateless_mode(tmp_path, mode: str, stops: bool) -> None:  # type: ignore[no-untyped-def]
    """2026-07-28 cancels by closing the call's response; the 2025 era sends a separate
    ``notifications/cancelled`` POST, which in stateless mode reaches a fresh transport that
    never saw the call (or another replica): the call runs on to its end (docs/scaling.md)."""
    recorder = Recorder()
    served = ServedDouble(tmp_path, recorder.server(), VLLM_MCP_HTTP_STATELESS="true")
    try:
        wait_listening(served.base + "/healthz")
        stopped = asyncio.run(
            asyncio.wait_for(cancel_after(served.url, mode, recorder, 5 if stops else 2), 60)
        )
        assert stopped is stops
    finally:
        served.close()
