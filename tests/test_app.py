"""The process life cycle (``vllm_mcp.server.app``) over real pipes, with the ``FakeEngine`` double.

Shutdown is one path whatever the trigger: intake stops, in-flight calls get
``VLLM_MCP_SHUTDOWN_GRACE`` seconds, the rest are aborted and answered with an error,
the engine stops. The real engine's version of these is in tests/e2e/test_lifecycle.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from tests.doubles import FakeEngine
from tests.pipes import StdioPeer
from vllm_mcp.config.settings import Settings
from vllm_mcp.protocol.stdio import StdioTransport
from vllm_mcp.server import app

CHAT = {"messages": [{"role": "user", "content": "hi"}]}


class FakePump:
    """TEST DOUBLE of ``vllm_mcp.logging.LogPump``: no fd is redirected, nothing was logged."""

    dropped_lines = 0

    def __init__(self) -> None:
        self.observers: list[Any] = []

    def tail(self) -> list[str]:
        return []


@contextlib.asynccontextmanager
async def app_serving(
    monkeypatch: pytest.MonkeyPatch, engine: FakeEngine, **env: str
) -> AsyncIterator[tuple[StdioPeer, asyncio.Task[int]]]:
    """``app.Server`` as ``serve`` runs it, with the double for the engine and pipes for stdio."""
    settings = Settings.load(environ=env)
    peer = StdioPeer()
    monkeypatch.setattr(app, "Engine", lambda s, recent_log_lines=tuple: engine)
    monkeypatch.setattr(
        app,
        "make_transport",
        lambda s, hooks: StdioTransport(
            s.max_message_bytes, hooks, in_fd=peer.server_in, out_fd=peer.server_out
        ),
    )
    task = asyncio.create_task(app.Server(settings, FakePump()).serve())  # type: ignore[arg-type]
    try:
        yield peer, task
    finally:
        peer.close_input()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)
        peer.close()


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 15))


async def until(condition: Any, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def text_of(reply: dict[str, Any]) -> str:
    return reply["result"]["content"][0]["text"]


def test_end_of_input_lets_in_flight_calls_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(reply="all done")

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine) as (peer, task):
            await peer.initialize()
            engine.hold()
            calls = [await peer.call_tool("chat_completion", CHAT) for _ in range(2)]
            await until(lambda: len(engine.started) == 2)
            peer.close_input()
            await asyncio.sleep(0.05)
            assert not task.done()  # draining: waits for the two calls
            engine.release()
            for rid in calls:
                reply = await peer.reply(rid)
                assert reply["result"]["isError"] is False and text_of(reply) == "all done"
            assert await asyncio.wait_for(task, 5) == 0
            assert engine.closed and engine.aborted == []

    run(scenario)


def test_after_the_grace_unfinished_calls_are_aborted_and_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        env = {"VLLM_MCP_SHUTDOWN_GRACE": "0.1", "VLLM_MCP_MAX_CONCURRENCY": "1"}
        async with app_serving(monkeypatch, engine, **env) as (peer, task):
            await peer.initialize()
            engine.hold()  # never released
            generating = await peer.call_tool("chat_completion", CHAT)
            waiting = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: len(engine.started) == 1)
            peer.close_input()
            for rid in (generating, waiting):
                reply = await peer.reply(rid)
                assert reply["result"]["isError"] is True
                assert text_of(reply) == "server shut down before this call could finish"
            assert await asyncio.wait_for(task, 5) == 0
            assert engine.aborted == ["mcp-1"] and engine.closed

    run(scenario)


def test_a_signal_stops_intake_and_in_flight_calls_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(reply="finished anyway")

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine) as (peer, task):
            await peer.initialize()  # by now the app's signal handlers are installed
            engine.hold()
            in_flight = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.01)
            late = await peer.call_tool("chat_completion", CHAT)
            refused = await peer.reply(late)
            assert refused["error"] == {"code": -32000, "message": "server is shutting down; request refused"}
            engine.release()
            assert text_of(await peer.reply(in_flight)) == "finished anyway"
            assert await asyncio.wait_for(task, 5) == 0
            assert len(engine.started) == 1 and engine.closed

    run(scenario)


def test_the_engine_dying_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine) as (peer, task):
            await peer.initialize()
            engine.errored = True  # what AsyncLLM.errored says once its engine core died
            assert await asyncio.wait_for(task, 5) == app.EXIT_ENGINE_DIED == 1
            assert engine.failure == "the vLLM engine process died" and engine.closed

    run(scenario)


def test_a_second_signal_stops_waiting_for_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine, VLLM_MCP_SHUTDOWN_GRACE="60") as (peer, task):
            await peer.initialize()
            engine.hold()  # never released
            rid = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.05)
            assert not task.done()  # the first signal waits for the call
            os.kill(os.getpid(), signal.SIGINT)
            assert text_of(await peer.reply(rid)) == "server shut down before this call could finish"
            assert await asyncio.wait_for(task, 5) == 0
            assert engine.aborted == engine.started

    run(scenario)


def test_a_setting_that_only_limits_calls_is_logged_once_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        env = {"VLLM_MAX_MODEL_LEN": "512", "VLLM_DEFAULT_MAX_TOKENS": "512"}
        async with app_serving(monkeypatch, FakeEngine(), **env) as (peer, task):
            peer.close_input()
            assert await asyncio.wait_for(task, 5) == 0

    with caplog.at_level("WARNING", logger="vllm_mcp.server.app"):
        run(scenario)
    warnings = [r for r in caplog.records if r.getMessage() == "a setting limits what calls get"]
    assert len(warnings) == 1
    assert "VLLM_DEFAULT_MAX_TOKENS (512)" in warnings[0].warning  # type: ignore[attr-defined]


def test_a_failure_inside_a_task_group_is_logged_with_its_cause_and_place() -> None:
    async def fails() -> None:
        async with anyio.create_task_group() as tg:  # as the transports run their loops
            tg.start_soon(_raise_value_error)

    with pytest.raises(BaseException) as caught:  # the group itself is what is described
        asyncio.run(fails())
    text = app.describe_failure(caught.value)
    assert text.startswith("ValueError: invalid literal for int()"), text
    assert "(at test_app.py:" in text, text


async def _raise_value_error() -> None:
    int(b"\xc3\xaa")
