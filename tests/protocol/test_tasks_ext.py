"""2026-07-28 tasks (the ``io.modelcontextprotocol/tasks`` extension) over stdio on real pipes,
with the ``FakeEngine`` double: raw JSON-RPC lines carrying the per-request ``_meta`` envelope.

The server decides when a call becomes a task (one still running after ``ANSWER_WITHIN_S``);
these tests hold the double's generation (``FakeEngine.hold``) so a call is still running when
that moment comes, and set the moment far off where a call must be answered directly: no test
depends on how fast this machine is. The same with the extension's published client on the
real engine: tests/e2e/test_tasks_ext_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from tests.support.pipes import StdioPeer
from vllm_mcp.protocol import build_server, tasks_ext
from vllm_mcp.protocol.stdio import StdioTransport
from vllm_mcp.sessions.tasks import TaskRecord

EXT = "io.modelcontextprotocol/tasks"
BASE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "pipes", "version": "0"},
}
DECLARING = {**BASE, "io.modelcontextprotocol/clientCapabilities": {"extensions": {EXT: {}}}}
SILENT = {**BASE, "io.modelcontextprotocol/clientCapabilities": {}}
LEGACY_INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "pipes", "version": "0"},
}
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@contextlib.asynccontextmanager
async def serving(engine: FakeEngine, **env: str) -> AsyncIterator[StdioPeer]:
    tools = tools_over(engine, **env)
    peer = StdioPeer()
    transport = StdioTransport(tools.settings.max_message_bytes, in_fd=peer.server_in, out_fd=peer.server_out)
    task = asyncio.create_task(transport.serve(build_server(tools)))
    try:
        yield peer
    finally:
        peer.close_input()
        transport.close()
        await asyncio.wait_for(task, 5)
        peer.close()


def run(scenario: Callable[[], Awaitable[Any]], monkeypatch: pytest.MonkeyPatch, answer_within: float) -> Any:
    monkeypatch.setattr(tasks_ext, "ANSWER_WITHIN_S", answer_within)
    return asyncio.run(asyncio.wait_for(scenario(), 30))


async def ask(peer: StdioPeer, method: str, params: dict[str, Any], meta: dict[str, Any] = DECLARING) -> Any:
    return await peer.reply(await peer.request(method, {**params, "_meta": meta}))


async def call(peer: StdioPeer, name: str, arguments: Any, meta: dict[str, Any] = DECLARING) -> Any:
    return await ask(peer, "tools/call", {"name": name, "arguments": arguments}, meta)


async def until_status(peer: StdioPeer, task_id: str, status: str) -> dict[str, Any]:
    while True:
        got = (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]
        if got["status"] == status:
            return got  # type: ignore[no-any-return]
        await asyncio.sleep(0.01)


def test_the_extension_is_offered_on_2026_07_28_only(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        async with serving(FakeEngine(loaded=True)) as peer:
            found = (await ask(peer, "server/discover", {}, SILENT))["result"]
            assert found["capabilities"]["extensions"] == {EXT: {}} and "tasks" not in found["capabilities"]
        async with serving(FakeEngine(loaded=True)) as peer:
            rid = await peer.request("initialize", LEGACY_INIT)
            legacy = (await peer.reply(rid))["result"]["capabilities"]
            assert "extensions" not in legacy and legacy["tasks"]["requests"] == {"tools": {"call": {}}}

    run(scenario, monkeypatch, 30)


def test_a_call_still_running_becomes_a_task_polled_to_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply="one two three", loaded=True)
        engine.hold()
        async with serving(engine) as peer:
            created = (await call(peer, "chat_completion", CHAT))["result"]
            assert created["resultType"] == "task" and created["status"] == "working"
            assert created["ttlMs"] == 3_600_000 and created["pollIntervalMs"] > 0
            task_id = created["taskId"]
            working = (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]
            assert working["resultType"] == "complete" and working["status"] == "working"
            assert "result" not in working and "error" not in working
            engine.release()
            done = await until_status(peer, task_id, "completed")
            result = done["result"]
            assert result["resultType"] == "complete" and result["isError"] is False
            assert result["structuredContent"]["text"] == "one two three"
            assert done["statusMessage"] == "finished: 3 tokens"
            assert len(engine.started) == 1  # the call that was running, handed over, not run again
            # Nothing of the 2025-11-25 shape was sent: no status notification, no related-task.
            assert not any(m.get("method") == "notifications/tasks/status" for m in peer.received)

    run(scenario, monkeypatch, 0)


def test_a_call_that_ends_in_time_and_a_client_that_does_not_declare_are_answered_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        async with serving(FakeEngine(reply="plain", loaded=True)) as peer:
            for meta in (DECLARING, SILENT):
                result = (await call(peer, "chat_completion", CHAT, meta))["result"]
                assert result["resultType"] == "complete" and result["structuredContent"]["text"] == "plain"
            counts = (await call(peer, "model_info", {}))["result"]["structuredContent"]["tasks"]
            assert sum(counts.values()) == 0

    run(scenario, monkeypatch, 30)


def test_a_client_that_does_not_declare_never_gets_a_task(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply="waited for", loaded=True)
        engine.hold()
        async with serving(engine) as peer:
            rid = await peer.request(
                "tools/call", {"name": "complete", "arguments": {"prompt": "go"}, "_meta": SILENT}
            )
            while not engine.started:  # a declaring call would be a task by now (ANSWER_WITHIN_S = 0)
                await asyncio.sleep(0.01)
            engine.release()
            result = (await peer.reply(rid))["result"]
            assert result["resultType"] == "complete" and result["structuredContent"]["text"] == "waited for"

    run(scenario, monkeypatch, 0)


def test_bad_arguments_get_the_plain_error_and_no_task(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(loaded=True)
        engine.hold()
        async with serving(engine) as peer:
            refused = (await call(peer, "chat_completion", {**CHAT, "temperature": 9}))["result"]
            assert refused["isError"] and refused["resultType"] == "complete"
            assert "temperature" in refused["content"][0]["text"]
            assert engine.started == []
            engine.release()
            counts = (await call(peer, "model_info", {}))["result"]["structuredContent"]["tasks"]
            assert sum(counts.values()) == 0

    run(scenario, monkeypatch, 0)


def test_cancel_aborts_the_engine_request(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(endless="x", pace=0.02, loaded=True)
        async with serving(engine) as peer:
            created = (await call(peer, "complete", {"prompt": "go", "max_tokens": 100_000}))["result"]
            task_id = created["taskId"]
            acked = (await ask(peer, "tasks/cancel", {"taskId": task_id}))["result"]
            assert acked["resultType"] == "complete" and set(acked) <= {"resultType", "_meta"}
            got = await until_status(peer, task_id, "cancelled")
            assert "result" not in got and "error" not in got
            while not engine.aborted:
                await asyncio.sleep(0.01)
            assert engine.aborted == engine.started and not engine.finished
            # Cancelling an ended task is acknowledged as well (cancelling is cooperative).
            again = await ask(peer, "tasks/cancel", {"taskId": task_id})
            assert again["result"]["resultType"] == "complete"

    run(scenario, monkeypatch, 0)


def test_unknown_tasks_undeclared_requests_and_update(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(loaded=True)
        engine.hold()
        async with serving(engine) as peer:
            for method, params in (
                ("tasks/get", {"taskId": "nope"}),
                ("tasks/cancel", {"taskId": "nope"}),
                ("tasks/update", {"taskId": "nope", "inputResponses": {}}),
            ):
                missing = await ask(peer, method, params)
                assert missing["error"]["code"] == -32602 and "no task 'nope'" in missing["error"]["message"]
                undeclared = (await ask(peer, method, params, SILENT))["error"]
                assert undeclared["code"] == -32021
                assert undeclared["data"] == {"requiredCapabilities": {"extensions": {EXT: {}}}}
            task_id = (await call(peer, "complete", {"prompt": "go"}))["result"]["taskId"]
            # No input is ever asked for: responses are acknowledged and ignored.
            update = {"taskId": task_id, "inputResponses": {"k": {"action": "accept"}}}
            assert (await ask(peer, "tasks/update", update))["result"]["resultType"] == "complete"
            assert (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]["status"] == "working"
            engine.release()
            await until_status(peer, task_id, "completed")

    run(scenario, monkeypatch, 0)


def test_a_caller_at_its_task_limit_gets_the_plain_answer_when_the_call_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply="later", loaded=True)
        engine.hold()
        async with serving(engine, VLLM_MCP_MAX_TASKS_PER_CALLER="1") as peer:
            first = (await call(peer, "complete", {"prompt": "go"}))["result"]
            assert first["resultType"] == "task"
            rid = await peer.request(
                "tools/call", {"name": "complete", "arguments": {"prompt": "go"}, "_meta": DECLARING}
            )
            while len(engine.started) < 2:
                await asyncio.sleep(0.01)
            engine.release()
            second = (await peer.reply(rid))["result"]
            assert second["resultType"] == "complete" and second["structuredContent"]["text"] == "later"
            await until_status(peer, first["taskId"], "completed")

    run(scenario, monkeypatch, 0)


def test_the_2025_methods_stay_on_older_connections_and_update_is_not_there() -> None:
    async def scenario() -> None:
        async with serving(FakeEngine(loaded=True)) as peer:
            rid = await peer.request("initialize", LEGACY_INIT)
            await peer.reply(rid)
            await peer.notify("notifications/initialized")
            got = await peer.reply(await peer.request("tasks/get", {"taskId": "nope"}))
            assert got["error"]["code"] == -32602
            rid = await peer.request("tasks/update", {"taskId": "n", "inputResponses": {}})
            update = await peer.reply(rid)
            assert update["error"]["code"] == -32601

    asyncio.run(asyncio.wait_for(scenario(), 30))


def record(status: str, result: dict[str, Any] | None, message: str | None) -> TaskRecord:
    return TaskRecord(
        task_id="t1",
        caller=None,
        status=status,  # type: ignore[arg-type]
        message=message,
        result=result,
        created=1_700_000_000.0,
        updated=1_700_000_001.5,
        ttl=60.0,
        owner="here",
    )


def test_the_detailed_task_a_tool_error_is_completed_and_a_lost_task_failed() -> None:
    error = {"content": [{"type": "text", "text": "the model is still loading"}], "isError": True}
    tool_error = tasks_ext.task_view(record("failed", error, "the model is still loading"))
    assert tool_error["status"] == "completed" and tool_error["result"]["isError"] is True
    assert tool_error["result"]["resultType"] == "complete" and "error" not in tool_error
    lost = tasks_ext.task_view(record("failed", None, "the server shut down before this task finished"))
    assert lost["status"] == "failed" and "result" not in lost
    assert lost["error"] == {"code": -32603, "message": "the server shut down before this task finished"}
    assert lost["ttlMs"] == 60_000 and lost["createdAt"] == "2023-11-14T22:13:20.000Z"
    assert lost["lastUpdatedAt"] == "2023-11-14T22:13:21.500Z"
