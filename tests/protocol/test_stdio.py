"""``StdioTransport`` over real pipes in this process, with the ``FakeEngine`` double behind it.

Framing (one line per reply, -32700/-32600, oversized lines, silent notifications), ids,
and back-pressure from a slow reader. Fast: no engine, no child process. The same
behaviour against the real engine is in tests/e2e/test_hostile.py and test_protocol.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.doubles import FakeEngine
from tests.support.pipes import StdioPeer
from vllm_mcp.config.settings import Settings
from vllm_mcp.metrics import Metrics
from vllm_mcp.protocol import build_server
from vllm_mcp.protocol.stdio import StdioTransport
from vllm_mcp.sessions import MemorySessionStore
from vllm_mcp.tools.handlers import Tools

PARSE_ERROR, INVALID_REQUEST = -32700, -32600


@contextlib.asynccontextmanager
async def serving(engine: FakeEngine | None = None, **env: str) -> AsyncIterator[StdioPeer]:
    """The app's wiring (tools, SDK server, stdio transport) around ``engine``, over pipes.

    Settings come from ``env`` only, never from the caller's environment.
    """
    settings = Settings.load(environ=env)
    engine = engine or FakeEngine(settings)
    engine.settings = engine.settings or settings
    await engine.start()
    tools = Tools(settings, engine, MemorySessionStore(10, 10), Metrics(engine.model_name, None, 60))  # type: ignore[arg-type]
    peer = StdioPeer()
    transport = StdioTransport(settings.max_message_bytes, in_fd=peer.server_in, out_fd=peer.server_out)
    task = asyncio.create_task(transport.serve(build_server(tools)))
    try:
        yield peer
    finally:
        peer.close_input()
        transport.close()
        await asyncio.wait_for(task, 5)
        peer.close()


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 20))


async def next_is_reply_to_a_fresh_ping(peer: StdioPeer) -> None:
    """Nothing else was written before: the next line answers a ping sent now."""
    rid = await peer.request("ping")
    message = await peer.recv()
    assert message == {"jsonrpc": "2.0", "id": rid, "result": {}}


# --- framing -----------------------------------------------------------------------------------


def test_one_reply_line_per_request_in_the_order_written() -> None:
    async def scenario() -> None:
        async with serving() as peer:
            init = await peer.initialize()
            assert init["result"]["serverInfo"]["name"] == "vllm-mcp"
            ids = [await peer.request("ping") for _ in range(5)]
            ids.append(await peer.request("tools/list"))
            replies = [await peer.recv() for _ in ids]
            assert sorted(r["id"] for r in replies) == sorted(ids)
            tools = next(r for r in replies if r["id"] == ids[-1])["result"]["tools"]
            assert [t["name"] for t in tools] == ["chat_completion", "complete", "model_info", "end_session"]
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


@pytest.mark.parametrize(
    "line",
    [
        b'{"jsonrpc": "2.0", "id": 1, "method": ',
        b"\xff\xfe not utf-8",
        b"{'single': 'quotes'}",
        # Python's json reads these; JSON has no such values (were accepted):
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"n": NaN}}}',
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"n": -Infinity}}}',
        # past Python's 4300-digit limit for int() (was a -32603 internal error):
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": {"n": ' + b"9" * 5000 + b"}}}",
        # a line that starts with a NUL byte (one such line ended the server, exit 1):
        b"\x00\xc3\xaa\xc2\xb2>",
        b"\x0042",
        b"\x00",
    ],
)
def test_unparseable_line_gets_a_parse_error_and_the_session_goes_on(line: bytes) -> None:
    async def scenario() -> None:
        async with serving() as peer:
            await peer.initialize()
            await peer.send_raw(line + b"\n")
            reply = await peer.recv()
            assert reply["id"] is None and reply["error"]["code"] == PARSE_ERROR
            assert reply["error"]["message"].startswith("Parse error: ")
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


@pytest.mark.parametrize(
    ("message", "rid", "expected"),
    [
        ([], None, "expected a JSON object, got a batch"),
        (5, None, "expected a JSON object, got a number"),
        ("x", None, "expected a JSON object, got a string"),
        ({"jsonrpc": "1.0", "id": 3, "method": "ping"}, 3, "'jsonrpc' must be \"2.0\""),
        ({"jsonrpc": "2.0", "id": 4, "method": "ping", "result": {}}, 4, "cannot carry 'result'"),
        ({"jsonrpc": "2.0", "id": 5}, 5, "not a JSON-RPC 2.0 request"),
        (
            {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": []},
            6,
            "'params' must be an object, got a list",
        ),
        (
            {"jsonrpc": "2.0", "id": 7, "method": "ping", "params": "x"},
            7,
            "'params' must be an object, got a string",
        ),
    ],
)
def test_invalid_request_gets_invalid_request(message: Any, rid: Any, expected: str) -> None:
    async def scenario() -> None:
        async with serving() as peer:
            await peer.initialize()
            await peer.send(message)
            reply = await peer.recv()
            assert reply["id"] == rid and reply["error"]["code"] == INVALID_REQUEST
            assert expected in reply["error"]["message"]
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


def test_notifications_get_no_reply() -> None:
    async def scenario() -> None:
        async with serving() as peer:
            await peer.initialize()
            await peer.notify("notifications/initialized")
            await peer.notify("notifications/no-such-thing", {"x": 1})
            await peer.notify("notifications/cancelled", {"requestId": 999})
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


def test_oversized_line_is_refused_and_the_limit_is_exact() -> None:
    """The limit and the size reported count the message, not its newline (was off by one)."""
    limit = 1024

    def ping_of(size: int, rid: int) -> bytes:
        head = b'{"jsonrpc": "2.0", "id": %d, "method": "ping", "params": {"_meta": {"pad": "' % rid
        tail = b'"}}}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    async def scenario() -> None:
        async with serving(VLLM_MCP_MAX_MESSAGE_BYTES=str(limit)) as peer:
            await peer.initialize()
            await peer.send_raw(ping_of(limit, 41) + b"\n")  # exactly the limit: accepted
            assert (await peer.recv())["id"] == 41
            await peer.send_raw(ping_of(limit + 1, 42) + b"\n")
            reply = await peer.recv()
            assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST
            assert reply["error"]["message"] == (
                f"message of {limit + 1} bytes exceeds VLLM_MCP_MAX_MESSAGE_BYTES ({limit}); it was discarded"
            )
            await peer.send_raw(ping_of(200_000, 43) + b"\n")  # read in pieces, never whole
            assert "of 200000 bytes" in (await peer.recv())["error"]["message"]
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


# --- ids ---------------------------------------------------------------------------------------


def test_string_and_integer_ids_come_back_as_sent() -> None:
    async def scenario() -> None:
        async with serving() as peer:
            await peer.initialize()
            for rid in ["abc", "7", 7, 0, -3, 2**53 + 1, "", "ünïcode"]:
                await peer.request("ping", rid=rid)
                reply = await peer.recv()
                assert reply["id"] == rid and type(reply["id"]) is type(rid)

    run(scenario)


@pytest.mark.parametrize("rid", [None, 1.5, True, {"a": 1}, [1]])
def test_ids_that_are_not_string_or_integer_are_refused_with_a_null_id(rid: Any) -> None:
    async def scenario() -> None:
        async with serving() as peer:
            await peer.initialize()
            await peer.send({"jsonrpc": "2.0", "id": rid, "method": "ping"})
            reply = await peer.recv()
            assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST
            assert "'id' must be a string or an integer" in reply["error"]["message"]
            await next_is_reply_to_a_fresh_ping(peer)

    run(scenario)


# --- cancellation ------------------------------------------------------------------------------


def test_notifications_cancelled_aborts_the_engine_request() -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with serving(engine) as peer:
            await peer.initialize()
            engine.hold()
            rid = await peer.call_tool("chat_completion", {"messages": [{"role": "user", "content": "hi"}]})
            while not engine.started:
                await asyncio.sleep(0.001)
            await peer.notify("notifications/cancelled", {"requestId": rid, "reason": "user gave up"})
            while not engine.aborted:
                await asyncio.sleep(0.001)
            assert engine.aborted == engine.started and engine.finished == []
            await next_is_reply_to_a_fresh_ping(peer)  # and no reply to the cancelled call

    run(scenario)


# --- back-pressure -----------------------------------------------------------------------------


def test_a_slow_reader_loses_nothing_and_each_stream_stays_in_order() -> None:
    words = 300
    reply = " ".join(f"word{i:04d}-" + "x" * 200 for i in range(words))  # ~100 KB of progress per call
    engine = FakeEngine(reply=reply)

    async def scenario() -> None:
        async with serving(engine, VLLM_MCP_PROGRESS_INTERVAL="0", VLLM_MCP_PROGRESS_MAX_RATE="0") as peer:
            await peer.initialize()
            chat = {"messages": [{"role": "user", "content": "go"}], "max_tokens": words}
            peer.pause_reading()
            calls = {
                await peer.call_tool("chat_completion", chat, progress_token=f"p{i}"): f"p{i}"
                for i in range(2)
            }
            await asyncio.sleep(0.2)  # nobody reads: ~200 KB of progress meet a 64 KB pipe
            # The generations wait for the reader (nothing is dropped or buffered without bound).
            assert len(engine.finished) < 2 and len(peer.received) == 1  # the initialize reply
            peer.resume_reading()
            results = {rid: await peer.reply(rid, timeout=10) for rid in calls}
            for rid, token in calls.items():
                progress = [
                    m["params"]
                    for m in peer.received
                    if m.get("method") == "notifications/progress" and m["params"]["progressToken"] == token
                ]
                assert [p["progress"] for p in progress] == list(range(1, words + 1))
                assert "".join(p["message"] for p in progress) == reply
                assert results[rid]["result"]["structuredContent"]["text"] == reply
                answered = peer.received.index(results[rid])
                assert all(
                    peer.received.index(m) < answered for m in peer.received if m.get("params") in progress
                )

    run(scenario)


def test_writes_go_out_at_once_while_the_pipe_has_room_and_the_rest_is_left_for_the_thread() -> None:
    import os
    import select

    from vllm_mcp.protocol import stdio

    r, w = os.pipe()
    try:
        assert stdio._write_now(w, b'{"jsonrpc":"2.0"}\n') == b""
        assert os.read(r, 100) == b'{"jsonrpc":"2.0"}\n'
        long = bytes(range(256)) * (3 * select.PIPE_BUF // 256)  # several pieces, all fit
        assert stdio._write_now(w, long) == b""
        got = b""
        while len(got) < len(long):
            got += os.read(r, 1 << 16)
        assert got == long
        os.set_blocking(w, False)
        with contextlib.suppress(BlockingIOError):
            while True:  # fill the pipe
                os.write(w, b"y" * 4096)
        os.set_blocking(w, True)
        assert stdio._write_now(w, b"z\n") == b"z\n"  # full: nothing written, the thread waits instead
    finally:
        os.close(r)
        os.close(w)


def _fluidmcp_main_readline(pipe: Any, timeout: float, wake_up: float) -> str:
    """FluidMCP main's readline_with_timeout: select() on the pipe, then readline() on the
    buffered text file over it; ``wake_up`` is how late its thread gets to run (a loaded machine)."""
    import select
    import time

    ready, _, _ = select.select([pipe], [], [], timeout)
    if not ready:
        return ""
    time.sleep(wake_up)
    line: str = pipe.readline()
    return line


@pytest.mark.parametrize(("client", "in_step"), [("fluidmcp-client", True), ("another-client", False)])
def test_a_line_at_a_time_client_reads_each_result_after_its_progress(client: str, in_step: bool) -> None:
    """FluidMCP main's /sse reads lines until one holds "result". Lines that reach it in one read
    wait in its buffer while select() sees an empty pipe, so a result written together with the
    last progress notification is lost to the call (the negative case shows the reader really
    does that); for this client the server writes one line at a time and the result 50 ms later."""
    import json
    import os

    async def scenario() -> tuple[Any, list[Any], Any]:
        async with serving() as peer:
            pipe = os.fdopen(os.dup(peer._from_server), "r")  # as subprocess.Popen(text=True) gives it
            try:
                info = {"name": client, "version": "2.0.0"}
                await peer.request(
                    "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": info}
                )
                assert '"result"' in await asyncio.to_thread(_fluidmcp_main_readline, pipe, 5, 0)
                await peer.notify("notifications/initialized")
                chat = {"messages": [{"role": "user", "content": "go"}], "max_tokens": 8}
                rid = await peer.call_tool("chat_completion", chat, progress_token="t")
                stream = []  # what the /sse endpoint streams for this call
                while line := await asyncio.to_thread(_fluidmcp_main_readline, pipe, 0.5, 0.01):
                    stream.append(json.loads(line))
                    if "result" in stream[-1]:
                        break
                ping = await peer.request("ping")  # the next request reads one line, as /mcp does
                after = json.loads(await asyncio.to_thread(_fluidmcp_main_readline, pipe, 5, 0))
                return rid, stream, {"ping": ping, "got": after}
            finally:
                pipe.close()

    rid, stream, nxt = run(scenario)
    assert stream[0]["method"] == "notifications/progress"
    if in_step:  # the call's own result ends its stream; the ping gets its own reply
        assert stream[-1]["id"] == rid and stream[-1]["result"]["structuredContent"]["text"]
        assert nxt["got"] == {"jsonrpc": "2.0", "id": nxt["ping"], "result": {}}
    else:  # the stream ended without the result (select timed out); the ping was handed it
        assert all("result" not in m for m in stream)
        stale = nxt["got"]
        assert stale.get("id") == rid or stale.get("method") == "notifications/progress", stale
