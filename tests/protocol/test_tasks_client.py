"""``vllm-mcp chat --task``'s client (protocol/tasks_client.py, the SDK's ``Client`` with its
``ResultClaim`` for ``resultType: "task"``) against the HTTP transport serving vllm-mcp's
``Server`` over the ``FakeEngine`` double: a call that becomes a task is followed to its result;
cancelled while it polls (as Ctrl-C does), it cancels the task and the engine request stops.
The server makes a task of a call at once here (``ANSWER_WITHIN_S = 0``) and suggests a short
poll interval, so no test waits on this machine's speed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.doubles import FakeEngine, tools_over
from tests.support.httpserver import ACCEPT
from tests.support.served import ServedDouble, wait_listening
from vllm_mcp.protocol import build_server, client, tasks_ext


@pytest.fixture
def fast_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks_ext, "ANSWER_WITHIN_S", 0)
    monkeypatch.setattr(tasks_ext, "POLL_INTERVAL_MS", 20)


def serve(tmp_path: Path, engine: FakeEngine) -> ServedDouble:
    served = ServedDouble(tmp_path, build_server(tools_over(engine)))
    wait_listening(served.base + "/healthz")
    return served


@pytest.fixture
def endless(tmp_path: Path, fast_tasks: None) -> Iterator[tuple[ServedDouble, FakeEngine]]:
    engine = FakeEngine(endless="x ", pace=0.01, loaded=True)
    served = serve(tmp_path, engine)
    yield served, engine
    served.close()


def test_a_question_run_as_a_task_is_followed_to_its_answer(tmp_path: Path, fast_tasks: None) -> None:
    engine = FakeEngine(reply="one two three", pace=0.05, loaded=True)
    served = serve(tmp_path, engine)
    states: list[dict[str, Any]] = []
    try:
        result = asyncio.run(
            asyncio.wait_for(
                client.chat_url("hi", served.url, None, lambda t: None, on_task=states.append), 30
            )
        )
    finally:
        served.close()
    assert result["text"] == "one two three" and result["usage"]["completion_tokens"] == 3
    assert states[0]["status"] == "working" and states[0]["resultType"] == "task"
    assert states[-1]["status"] == "completed" and states[-1]["statusMessage"] == "finished: 3 tokens"
    assert {s["taskId"] for s in states} == {states[0]["taskId"]}


def test_a_question_without_task_is_never_a_task(tmp_path: Path, fast_tasks: None) -> None:
    engine = FakeEngine(reply="direct", pace=0.05, loaded=True)
    served = serve(tmp_path, engine)
    try:
        result = asyncio.run(asyncio.wait_for(client.chat_url("hi", served.url, None, lambda t: None), 30))
    finally:
        served.close()
    assert result["text"] == "direct"


def test_cancelling_while_it_polls_cancels_the_task_and_the_generation(
    endless: tuple[ServedDouble, FakeEngine],
) -> None:
    served, engine = endless
    states: list[dict[str, Any]] = []

    async def scenario() -> None:
        generating = asyncio.Event()

        def on_task(task: dict[str, Any]) -> None:
            states.append(task)
            if (task.get("statusMessage") or "").startswith("generating"):
                generating.set()

        asking = asyncio.create_task(
            client.chat_url("go", served.url, None, lambda t: None, max_tokens=100_000, on_task=on_task)
        )
        await generating.wait()
        asking.cancel()  # what Ctrl-C does to `chat`'s asyncio.run
        with pytest.raises(asyncio.CancelledError):
            await asking

    asyncio.run(asyncio.wait_for(scenario(), 30))
    for _ in range(500):  # the server's loop runs on its own thread
        if engine.aborted:
            break
        asyncio.run(asyncio.sleep(0.01))
    assert engine.aborted == engine.started and not engine.finished
    got = task_state(served.url, states[0]["taskId"])
    assert got["status"] == "cancelled" and got["statusMessage"] == "cancelled by the client"


def task_state(url: str, task_id: str) -> dict[str, Any]:
    """``tasks/get`` as a declaring 2026-07-28 request of its own."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"taskId": task_id, "_meta": meta}}
    headers = {**ACCEPT, "mcp-protocol-version": "2026-07-28", "mcp-method": "tasks/get", "mcp-name": task_id}
    reply = httpx2.post(url, json=body, headers=headers, timeout=30).json()
    return reply["result"]  # type: ignore[no-any-return]
