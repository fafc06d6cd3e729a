"""End to end: MCP tasks (2025-11-25) from the TypeScript SDK's client, on the real engine.

``@modelcontextprotocol/sdk`` 1.32 (npm, pinned in .ci/run) is a client that uses tasks today:
tests/e2e/tasks_client.mjs drives its experimental tasks API (``callToolStream`` with
``task``, ``getTask``, ``getTaskResult``, ``cancelTask``, ``listTasks``) over stdio (it spawns
the server) and over Streamable HTTP (two callers, two tokens), and reports what it saw,
``notifications/tasks/status`` included (its notification handler). The 2026-07-28
extension's own client, npm ``@modelcontextprotocol/ext-tasks`` on the v2 SDK's ``Client``
(tests/e2e/tasks_ext_client.mjs), runs against the same HTTP server. One server start per
transport.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import nodetools
from tests.support.httpserver import HttpServer, write_tokens
from tests.support.models import serve_env
from tests.support.nodetools import require_ext_tasks, require_sdk
from tests.support.servers import serve_command

pytestmark = pytest.mark.engine

CLIENT = Path(__file__).parent / "tasks_client.mjs"
EXT_CLIENT = Path(__file__).parent / "tasks_ext_client.mjs"
EXT = "io.modelcontextprotocol/tasks"


def run_client(scenario: dict[str, Any], tmp_path: Path, client: Path = CLIENT) -> dict[str, Any]:
    require_sdk()
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario))
    done = subprocess.run(
        ["node", str(client), str(nodetools.TOOLS), str(path)],
        env=nodetools.node_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in report, json.dumps(report)[-4000:]
    return report


def check_common(report: dict[str, Any]) -> None:
    """What every transport must show: capability, create, poll, result, cancel mid-generation."""
    assert report["capabilities"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    assert report["task_support"] == {
        "chat_completion": "optional",
        "complete": "optional",
        "model_info": None,
        "end_session": None,
    }
    chat = report["chat"]
    assert chat[0]["type"] == "taskCreated" and chat[0]["status"] == "working" and chat[0]["ttl"] == 120_000
    assert [e["type"] for e in chat[1:-1]] and all(e["type"] == "taskStatus" for e in chat[1:-1])
    assert chat[-2]["status"] == "completed"
    final = chat[-1]
    assert final["type"] == "result", final
    text = final["result"]["structuredContent"]["text"]
    assert final["result"]["structuredContent"]["usage"]["completion_tokens"] == 16 and text
    assert report["chat_get"]["status"] == "completed"
    # tasks/result again gives the same stored result, marked as the task's.
    assert report["chat_result"]["structuredContent"]["text"] == text
    assert report["chat_result"]["_meta"]["io.modelcontextprotocol/related-task"] == {
        "taskId": report["ids"]["chat"]
    }
    # The long one: its status message said it was generating, the cancel took, the engine stopped.
    assert report["long_created"] == "working"
    assert report["long_messages"][-1].startswith("generating: ")
    assert report["cancel"]["status"] == "cancelled"
    assert report["long_rest"][-1]["type"] == "error" and "cancelled" in report["long_rest"][-1]["message"]
    assert report["long_get"]["status"] == "cancelled"
    assert "already cancelled" in report["cancel_again"]["message"]
    assert report["unfinished_after_cancel"] == 0  # the engine request was aborted, not left running
    assert report["ids"]["chat"] in report["listed"] and report["ids"]["long"] in report["listed"]
    # notifications/tasks/status on the connection that started them, once each, as they ended.
    notes = {n["taskId"]: n for n in report["status_notes"]}
    assert len(notes) == len(report["status_notes"]) == 2, report["status_notes"]
    for kind, status in (("chat", "completed"), ("long", "cancelled")):
        task_id = report["ids"][kind]
        assert notes[task_id]["status"] == status
        assert notes[task_id]["meta"] == {"io.modelcontextprotocol/related-task": {"taskId": task_id}}
    assert notes[report["ids"]["chat"]]["statusMessage"] == "finished: 16 tokens"


def test_the_typescript_client_runs_tasks_over_stdio(tiny_model: Path, tmp_path: Path) -> None:
    command = serve_command()
    env = serve_env(tiny_model, VLLM_MCP_SESSION_STORE=str(tmp_path / "store.db"))
    report = run_client(
        {"transport": "stdio", "command": command[0], "args": command[1:], "env": env}, tmp_path
    )
    check_common(report)


@pytest.fixture(scope="module")
def http_served(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """One HTTP server for the module's clients, each with callers of its own (tasks are per caller)."""
    root = tmp_path_factory.mktemp("tasks-http")
    tokens = write_tokens(root / "tokens", "alice", "bob", "carol", "dave")
    server = HttpServer(
        tiny_model,
        VLLM_MCP_HTTP_TOKEN_FILE=str(root / "tokens"),
        # Room for a generation that only the 5 s time budget ends (tasks_ext_client.mjs).
        VLLM_MAX_MODEL_LEN="8192",
        VLLM_ALLOW_LONG_MAX_MODEL_LEN="1",
    )
    try:
        server.wait_ready()
        yield server.url, tokens
    finally:
        server.close()


def test_the_typescript_client_runs_tasks_over_http_and_another_caller_cannot_see_them(
    http_served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, tokens = http_served
    report = run_client(
        {"transport": "http", "url": url, "token": tokens["alice"], "other_token": tokens["bob"]}, tmp_path
    )
    check_common(report)
    assert report["other_get"] is not None and "no task" in report["other_get"]["message"]
    assert report["other_listed"] == []
    # A reconnect (a new MCP session with the same token) finds the task and its result.
    assert (
        report["reconnected_result"]["structuredContent"]["text"]
        == report["chat"][-1]["result"]["structuredContent"]["text"]
    )


def test_the_extension_client_runs_2026_07_28_tasks_over_http(
    http_served: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """npm @modelcontextprotocol/ext-tasks, the extension's own client, on the v2 SDK's Client."""
    require_ext_tasks()
    url, tokens = http_served
    scenario = {"url": url, "token": tokens["carol"], "other_token": tokens["dave"]}
    report = run_client(scenario, tmp_path, EXT_CLIENT)
    assert report["era"] == "modern" and report["extensions"] == {EXT: {}}
    # A generation that outlasts a second became a task, polled (its status message said how
    # far it was) to its result: the text so far when its 5 s budget ran out.
    assert report["long_kind"] == "task" and report["long_outcome"] == "completed"
    events = report["long_events"]
    assert events[0]["status"] == "working" and events[-1] == {"outcome": "completed"}
    assert any((e.get("statusMessage") or "").startswith("generating: ") for e in events)
    long_result = report["long_result"]
    assert long_result["isError"] is False
    assert long_result["structuredContent"]["usage"]["completion_tokens"] > 0
    assert long_result["content"][0]["text"] == long_result["structuredContent"]["text"]
    # A short one is answered at once; bad arguments get the plain call's error, no task.
    assert report["short_kind"] == "immediate"
    assert report["short_result"]["structuredContent"]["usage"]["completion_tokens"] == 2
    assert report["bad_kind"] == "immediate" and report["bad_result"]["isError"] is True
    assert "temperature" in report["bad_result"]["content"][0]["text"]
    # Cancelled while generating: the task ends cancelled and the engine request is aborted.
    assert report["endless_kind"] == "task" and report["endless_outcome"] == "cancelled"
    assert report["endless_get"]["result"]["status"] == "cancelled"
    assert report["unfinished_after_cancel"] == 0
    # The finished task on a request of its own; another caller and an undeclaring request.
    again = report["again"]["result"]
    assert again["status"] == "completed"
    assert again["result"]["structuredContent"] == long_result["structuredContent"]
    assert report["other"]["error"]["code"] == -32602 and "no task" in report["other"]["error"]["message"]
    assert report["undeclared"]["error"]["code"] == -32021
