"""End to end on the wire: raw JSON-RPC lines to a real server, as FluidMCP sends them.

FluidMCP writes one request line and reads exactly one line back, and it speaks
protocol 2024-11-05; these tests hold the server to that, line by line. One server in file
order (tests/support/life.py); the last test ends it with the end of its input.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.life import Life
from tests.support.models import serve_env
from tests.support.servers import RawServer

pytestmark = pytest.mark.engine


def handshake(env: dict[str, str]) -> RawServer:
    """A server started as FluidMCP starts one: initialize with 2024-11-05 first."""
    server = RawServer(env)
    server.handshake = server.initialize("2024-11-05")  # type: ignore[attr-defined]
    return server


@pytest.fixture(scope="module")
def life(tiny_model: Any) -> Iterator[Life[RawServer]]:
    # The last test's call may still wait for the model on a busy machine: a grace to match.
    env = serve_env(tiny_model, VLLM_MCP_SHUTDOWN_GRACE="300")
    life: Life[RawServer] = Life(lambda: handshake(env))
    yield life
    life.close()


@pytest.fixture
def raw(life: Life[RawServer]) -> RawServer:
    return life.ready()


def chat_params(content: str, **arguments: Any) -> dict[str, Any]:
    return {
        "name": "chat_completion",
        "arguments": {"messages": [{"role": "user", "content": content}], **arguments},
    }


def test_fluidmcp_handshake_2024_11_05(raw: RawServer) -> None:
    reply = raw.handshake  # type: ignore[attr-defined]
    assert reply["result"]["protocolVersion"] == "2024-11-05"
    assert reply["result"]["serverInfo"]["name"] == "vllm-mcp"
    assert "tools" in reply["result"]["capabilities"]


def test_every_request_gets_exactly_one_line(raw: RawServer) -> None:
    before = len(raw.lines)
    raw.send({"jsonrpc": "2.0", "id": 10, "method": "tools/list"})
    raw.send({"jsonrpc": "2.0", "id": 11, "method": "ping"})
    raw.send({"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": chat_params("hi", max_tokens=3)})
    raw.response(12)
    new = raw.messages()[before:]
    # No progress was asked for, so nothing but the three responses.
    assert sorted(m["id"] for m in new) == [10, 11, 12]
    assert all("method" not in m for m in new)
    tools = {t["name"] for t in raw.response(10)["result"]["tools"]}
    assert tools == {"chat_completion", "complete", "model_info", "end_session"}
    assert raw.response(11)["result"] == {}


def test_parse_and_request_errors_use_json_rpc_codes(raw: RawServer) -> None:
    raw.send(b"{not json")
    assert raw.wait_for(lambda m: m.get("error", {}).get("code") == -32700)["id"] is None
    raw.send({"jsonrpc": "2.0", "id": 20, "method": "no/such/method"})
    assert raw.response(20)["error"]["code"] == -32601
    raw.send({"jsonrpc": "2.0", "id": 21, "method": "tools/call", "params": {"arguments": {}}})
    assert raw.response(21)["error"]["code"] == -32602
    raw.send({"jsonrpc": "2.0", "id": 22})
    assert raw.response(22)["error"]["code"] == -32600


def test_progress_only_for_calls_that_ask(raw: RawServer) -> None:
    params = chat_params("stream", max_tokens=24, min_tokens=24)
    params["_meta"] = {"progressToken": "tok-1"}
    raw.send({"jsonrpc": "2.0", "id": 30, "method": "tools/call", "params": params})
    result = raw.response(30)["result"]["structuredContent"]
    notes = [m for m in raw.messages() if m.get("method") == "notifications/progress"]
    mine = [n["params"] for n in notes if n["params"]["progressToken"] == "tok-1"]
    assert mine and "".join(n["message"] for n in mine) == result["text"]
    assert mine[-1]["progress"] == 24 and mine[-1]["total"] == 24


def test_cancelled_call_gets_no_response_and_frees_the_engine(raw: RawServer) -> None:
    params = chat_params("long", max_tokens=2000, min_tokens=2000)
    params["_meta"] = {"progressToken": "tok-c"}
    raw.send({"jsonrpc": "2.0", "id": 40, "method": "tools/call", "params": params})
    raw.wait_for(lambda m: m.get("params", {}).get("progressToken") == "tok-c")
    raw.send(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 40, "reason": "test"}}
    )
    deadline = time.monotonic() + 10
    info: dict[str, Any] = {}
    rid = 41
    while time.monotonic() < deadline:
        info = raw.request(rid, "tools/call", {"name": "model_info", "arguments": {}})["result"][
            "structuredContent"
        ]
        rid += 1
        if info["engine_unfinished_requests"] == 0:
            break
        time.sleep(0.2)
    assert info["engine_unfinished_requests"] == 0
    time.sleep(0.5)
    assert not [m for m in raw.messages() if m.get("id") == 40]


def test_stdout_carries_only_json_rpc(raw: RawServer) -> None:
    for line in raw.lines:
        message = json.loads(line)
        assert message["jsonrpc"] == "2.0"
        assert ("id" in message) != ("method" in message) or message.get("method")


def test_end_of_input_lets_calls_finish_then_exits_0(life: Life[RawServer]) -> None:
    server = life.last()
    params = chat_params("bye", max_tokens=200, min_tokens=200)
    params["_meta"] = {"progressToken": "bye"}
    server.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    server.wait_for(lambda m: m.get("params", {}).get("progressToken") == "bye")  # generating
    code = server.close(timeout=360)  # stdin closed while the call streams
    assert code == 0
    result = server.response(1, timeout=1)["result"]
    assert result["structuredContent"]["usage"]["completion_tokens"] == 200
