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
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from tests.support.doubles import FakeEngine
from tests.support.pipes import StdioPeer
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


@dataclass
class Serving:
    """A ``Server`` being served in this test's loop: the client's pipes, the server, its task."""

    peer: StdioPeer
    server: app.Server
    task: asyncio.Task[int]


@contextlib.asynccontextmanager
async def app_serving(
    monkeypatch: pytest.MonkeyPatch, engine: FakeEngine, **env: str
) -> AsyncIterator[Serving]:
    """``app.Server`` as ``serve`` runs it, with the double for the engine and pipes for stdio."""
    settings = Settings.load(environ=env)
    peer = StdioPeer()

    def the_double(s: Settings, recent_log_lines: Any = tuple, **kw: Any) -> FakeEngine:
        engine.settings = engine.settings or s
        return engine

    monkeypatch.setattr(app, "Engine", the_double)
    monkeypatch.setattr(
        app,
        "make_transport",
        lambda s, hooks: StdioTransport(
            s.max_message_bytes, hooks, in_fd=peer.server_in, out_fd=peer.server_out
        ),
    )
    server = app.Server(settings, FakePump())  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve())
    try:
        yield Serving(peer, server, task)
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
        async with app_serving(monkeypatch, engine) as serving:
            peer, task = serving.peer, serving.task
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
        async with app_serving(monkeypatch, engine, **env) as serving:
            peer, task = serving.peer, serving.task
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
        async with app_serving(monkeypatch, engine) as serving:
            peer, task = serving.peer, serving.task
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
        async with app_serving(monkeypatch, engine) as serving:
            peer, task = serving.peer, serving.task
            await peer.initialize()
            engine.errored = True  # what AsyncLLM.errored says once its engine core died
            assert await asyncio.wait_for(task, 5) == app.EXIT_ENGINE_DIED == 1
            assert engine.failure == "the vLLM engine process died" and engine.closed

    run(scenario)


def test_a_second_signal_stops_waiting_for_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine, VLLM_MCP_SHUTDOWN_GRACE="60") as serving:
            peer, task = serving.peer, serving.task
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
        async with app_serving(monkeypatch, FakeEngine(), **env) as serving:
            peer, task = serving.peer, serving.task
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


# --- the Server's life cycle through its flags ---------------------------------------------------


def test_should_exit_refuses_new_calls_says_stopping_and_lets_in_flight_calls_finish(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine(reply="finished")

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine) as serving:
            peer, server, task = serving.peer, serving.server, serving.task
            await peer.initialize()
            assert (server.should_exit, server.force_exit, server.health()) == (False, False, "ready")
            engine.hold()
            in_flight = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            server.exit("asked by the test")
            assert (server.should_exit, server.force_exit, server.health()) == (True, False, "stopping")
            refused = await peer.reply(await peer.call_tool("chat_completion", CHAT))
            assert refused["error"]["code"] == -32000
            assert not task.done()  # the call in flight is waited for
            engine.release()
            assert text_of(await peer.reply(in_flight)) == "finished"
            assert await asyncio.wait_for(task, 5) == app.EXIT_OK
            assert engine.aborted == [] and engine.closed

    with caplog.at_level("INFO", logger="vllm_mcp.server.app"):
        run(scenario)
    stopped = [r for r in caplog.records if r.getMessage() == "stopped"]
    assert [r.reason for r in stopped] == ["asked by the test"]  # type: ignore[attr-defined]
    assert not any(r.getMessage().startswith("shutdown grace over") for r in caplog.records)


def test_force_exit_ends_the_grace_and_aborts_the_calls_in_flight(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine, VLLM_MCP_SHUTDOWN_GRACE="60") as serving:
            peer, server, task = serving.peer, serving.server, serving.task
            await peer.initialize()
            engine.hold()  # never released
            rid = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            server.handle_signal(signal.SIGTERM)
            assert server.should_exit and not server.force_exit
            server.handle_signal(signal.SIGTERM)
            assert server.force_exit
            assert text_of(await peer.reply(rid)) == "server shut down before this call could finish"
            assert await asyncio.wait_for(task, 5) == app.EXIT_OK
            assert engine.aborted == engine.started and engine.closed

    with caplog.at_level("INFO", logger="vllm_mcp.server.app"):
        run(scenario)
    assert [r.reason for r in caplog.records if r.getMessage() == "stopped"] == ["signal SIGTERM"]  # type: ignore[attr-defined]
    assert not any(r.getMessage().startswith("shutdown grace over") for r in caplog.records)


def test_the_first_trigger_decides_the_reason_and_the_exit_status(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine(reply="done")

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine) as serving:
            peer, server, task = serving.peer, serving.server, serving.task
            await peer.initialize()
            engine.hold()
            rid = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            peer.close_input()
            await until(lambda: server.should_exit)
            engine.errored = True  # the engine dies while the drain waits: exit stays 0
            await until(lambda: engine.failure is not None)
            engine.release()
            assert text_of(await peer.reply(rid)) == "done"
            assert await asyncio.wait_for(task, 5) == app.EXIT_OK
            assert (server.reason, server.exit_code) == ("end of input", app.EXIT_OK)
            assert not server.force_exit

    run(scenario)


def test_the_engine_dying_sets_should_exit_with_exit_1_and_a_short_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with app_serving(monkeypatch, engine, VLLM_MCP_SHUTDOWN_GRACE="60") as serving:
            peer, server, task = serving.peer, serving.server, serving.task
            await peer.initialize()
            engine.hold()  # never released: only the engine-death grace (2 s) ends the wait
            rid = await peer.call_tool("chat_completion", CHAT)
            await until(lambda: engine.started)
            engine.errored = True
            assert text_of(await peer.reply(rid)) == "server shut down before this call could finish"
            assert await asyncio.wait_for(task, 5) == app.EXIT_ENGINE_DIED
            assert (server.should_exit, server.reason) == (True, "engine died")
            assert server.health() == "stopping" and engine.failure == "the vLLM engine process died"

    run(scenario)
