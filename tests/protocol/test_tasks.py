"""2025-11-25 tasks over the stdio transport on real pipes, with the ``FakeEngine`` double.

Raw JSON-RPC lines, as a client writes them: the capability, ``execution.taskSupport``,
``CreateTaskResult``, ``tasks/get``, ``tasks/result``, ``tasks/list``, ``tasks/cancel``
(the engine request is aborted), the related-task ``_meta`` on progress, and a client that
does not ask getting today's answers. The same against the real engine with the TypeScript
SDK's client: tests/e2e/test_tasks_ts_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from tests.support.pipes import StdioPeer
from vllm_mcp.protocol import build_server
from vllm_mcp.protocol.stdio import StdioTransport

RELATED = "io.modelcontextprotocol/related-task"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


@contextlib.asynccontextmanager
async def serving(engine: FakeEngine, version: str = "2025-11-25", **env: str) -> AsyncIterator[StdioPeer]:
    tools = tools_over(engine, **env)
    peer = StdioPeer()
    transport = StdioTransport(tools.settings.max_message_bytes, in_fd=peer.server_in, out_fd=peer.server_out)
    task = asyncio.create_task(transport.serve(build_server(tools)))
    try:
        rid = await peer.request(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "pipes", "version": "0"}},
        )
        peer.init = await peer.reply(rid)  # type: ignore[attr-defined]
        peer.tools = tools  # type: ignore[attr-defined]
        await peer.notify("notifications/initialized")
        yield peer
    finally:
        peer.close_input()
        transport.close()
        await asyncio.wait_for(task, 5)
        peer.close()


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 30))


async def ask(peer: StdioPeer, method: str, params: Any = None) -> dict[str, Any]:
    return await peer.reply(await peer.request(method, params))  # type: ignore[no-any-return]


async def start_task(peer: StdioPeer, name: str, arguments: Any, **extra: Any) -> dict[str, Any]:
    return await ask(
        peer, "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 60_000}, **extra}
    )


async def status_note(peer: StdioPeer, task_id: str) -> dict[str, Any]:
    """The ``notifications/tasks/status`` about ``task_id``, read earlier or now."""

    def about(m: dict[str, Any]) -> bool:
        return m.get("method") == "notifications/tasks/status" and m["params"]["taskId"] == task_id

    while not any(about(m) for m in peer.received):
        await peer.recv()
    await ask(peer, "ping")  # anything sent after it (a second one, wrongly) arrives before the pong
    found = [m for m in peer.received if about(m)]
    assert len(found) == 1, found
    return found[0]["params"]  # type: ignore[no-any-return]


def test_the_capability_and_task_support_are_offered_from_2025_11_25_only() -> None:
    async def scenario() -> None:
        engine = FakeEngine(loaded=True)
        async with serving(engine) as peer:
            caps = peer.init["result"]["capabilities"]  # type: ignore[attr-defined]
            assert caps["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
            tools = {t["name"]: t for t in (await ask(peer, "tools/list"))["result"]["tools"]}
            assert tools["chat_completion"]["execution"] == {"taskSupport": "optional"}
            assert tools["complete"]["execution"] == {"taskSupport": "optional"}
            assert "execution" not in tools["model_info"] and "execution" not in tools["end_session"]
        async with serving(engine, "2025-06-18") as peer:
            tools = {t["name"]: t for t in (await ask(peer, "tools/list"))["result"]["tools"]}
            assert all("execution" not in t for t in tools.values())

    run(scenario)


def test_a_task_is_created_at_once_polled_and_its_result_fetched() -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply="one two three", pace=0.01, loaded=True)
        async with serving(engine) as peer:
            created = await start_task(peer, "chat_completion", CHAT)
            task = created["result"]["task"]
            assert task["status"] == "working" and task["ttl"] == 60_000 and task["pollInterval"] > 0
            assert task["createdAt"].endswith("Z") and len(task["taskId"]) >= 32
            task_id = task["taskId"]
            result = await ask(peer, "tasks/result", {"taskId": task_id})
            payload = result["result"]
            assert payload["structuredContent"]["text"] == "one two three" and not payload.get("isError")
            assert payload["content"][0]["text"] == "one two three"
            assert payload["_meta"][RELATED] == {"taskId": task_id}
            assert "resultType" not in payload  # 2026-07-28 vocabulary: not on this connection
            got = (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]
            assert got["status"] == "completed" and got["taskId"] == task_id
            assert got["statusMessage"].startswith("finished: ")
            # The client that started it is told when it ends: the task as tasks/get shows it.
            note = await status_note(peer, task_id)
            assert note.pop("_meta") == {RELATED: {"taskId": task_id}} and note == got
            listed = (await ask(peer, "tasks/list"))["result"]
            assert [t["taskId"] for t in listed["tasks"]] == [task_id] and "nextCursor" not in listed
            again = await ask(peer, "tasks/cancel", {"taskId": task_id})
            assert again["error"]["code"] == -32602 and "already completed" in again["error"]["message"]
            info = await ask(peer, "tools/call", {"name": "model_info", "arguments": {}})
            counts = info["result"]["structuredContent"]["tasks"]
            assert counts == {"working": 0, "input_required": 0, "completed": 1, "failed": 0, "cancelled": 0}
            registry = peer.tools.metrics.registry  # type: ignore[attr-defined]
            assert (
                registry.get_sample_value("vllm_mcp_tasks", {"model": "fake-model", "status": "completed"})
                == 1
            )

    run(scenario)


def test_cancel_mid_generation_aborts_the_engine_request() -> None:
    async def scenario() -> None:
        engine = FakeEngine(endless="x", pace=0.02, loaded=True)
        async with serving(engine) as peer:
            created = await start_task(peer, "complete", {"prompt": "go", "max_tokens": 100_000})
            task_id = created["result"]["task"]["taskId"]
            while not engine.started:
                await asyncio.sleep(0.01)
            cancelled = (await ask(peer, "tasks/cancel", {"taskId": task_id}))["result"]
            assert cancelled["status"] == "cancelled"
            while not engine.aborted:  # the generation stops: vLLM's abort, as the double records it
                await asyncio.sleep(0.01)
            assert engine.aborted == engine.started and not engine.finished
            result = (await ask(peer, "tasks/result", {"taskId": task_id}))["result"]
            assert result["isError"] and "cancelled" in result["content"][0]["text"]
            assert (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]["status"] == "cancelled"
            note = await status_note(peer, task_id)
            assert note["status"] == "cancelled" and note["statusMessage"] == "cancelled by the client"

    run(scenario)


def test_progress_of_a_task_names_the_task() -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply="a b c d", pace=0.01, loaded=True)
        async with serving(engine) as peer:
            created = await start_task(peer, "chat_completion", CHAT, _meta={"progressToken": "p1"})
            task_id = created["result"]["task"]["taskId"]
            await ask(peer, "tasks/result", {"taskId": task_id})
            progress = [m for m in peer.received if m.get("method") == "notifications/progress"]
            assert progress and all(m["params"]["progressToken"] == "p1" for m in progress)
            assert all(m["params"]["_meta"][RELATED] == {"taskId": task_id} for m in progress)

    run(scenario)


def test_a_task_nobody_streams_is_generated_in_coarser_outputs_than_a_streamed_one() -> None:
    async def scenario() -> None:
        engine = FakeEngine(reply=" ".join(["w"] * 60), pace=0.002, loaded=True)
        async with serving(engine) as peer:
            long = {"prompt": "go", "max_tokens": 60}
            await ask(peer, "tools/call", {"name": "complete", "arguments": long})  # the decode rate
            for extra in ({"_meta": {"progressToken": "p"}}, {}):
                created = await start_task(peer, "complete", long, **extra)
                await ask(peer, "tasks/result", {"taskId": created["result"]["task"]["taskId"]})
            streamed, status_only = (engine.sampling[rid].stream_interval for rid in engine.started[1:])
            assert status_only > streamed  # vLLM hands over fewer, larger outputs

    run(scenario)


def test_an_error_found_while_the_task_runs_fails_it_and_its_result_says_why() -> None:
    async def scenario() -> None:
        # The prompt's length against the model's context is known once it is tokenized, in the task.
        async with serving(FakeEngine(loaded=True, max_model_len=8)) as peer:
            created = await start_task(peer, "complete", {"prompt": "far too long for eight tokens"})
            task_id = created["result"]["task"]["taskId"]
            result = (await ask(peer, "tasks/result", {"taskId": task_id}))["result"]
            assert result["isError"] and "VLLM_MAX_MODEL_LEN" in result["content"][0]["text"]
            got = (await ask(peer, "tasks/get", {"taskId": task_id}))["result"]
            assert got["status"] == "failed" and "VLLM_MAX_MODEL_LEN" in got["statusMessage"]
            note = await status_note(peer, task_id)
            assert note["status"] == "failed" and note["statusMessage"] == got["statusMessage"]

    run(scenario)


BAD_ARGUMENTS = [
    ("chat_completion", {**CHAT, "temperature": 9}, "temperature"),
    ("chat_completion", {**CHAT, "colour": "blue"}, "colour: unknown argument"),
    ("chat_completion", {"max_tokens": 5}, "messages: required argument is missing"),
    (
        "chat_completion",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "fake-model",
    ),
    ("complete", {"prompt": "go", "adapter": "nope"}, "unknown adapter 'nope'"),
    ("complete", {"prompt": "x" * 300_000}, "VLLM_MCP_MAX_CONTENT_CHARS"),
]


@pytest.mark.parametrize(("tool", "arguments", "named"), BAD_ARGUMENTS)
def test_bad_arguments_get_the_plain_calls_error_and_no_task(tool: str, arguments: Any, named: str) -> None:
    async def scenario() -> None:
        engine = FakeEngine(endless="x", pace=0.05, loaded=True)
        async with serving(engine, VLLM_MCP_MAX_TASKS_PER_CALLER="1") as peer:
            plain = (await ask(peer, "tools/call", {"name": tool, "arguments": arguments}))["result"]
            assert plain["isError"] and named in plain["content"][0]["text"]
            refused = await start_task(peer, tool, arguments)
            assert refused["error"] == {"code": -32602, "message": plain["content"][0]["text"]}
            assert (await ask(peer, "tasks/list"))["result"]["tasks"] == []
            # Nothing counted against the caller's limit (1): a good task still starts, and
            # with it running, bad arguments still get their own error, not the limit's.
            good = await start_task(peer, "complete", {"prompt": "go", "max_tokens": 100_000})
            assert good["result"]["task"]["status"] == "working"
            again = await start_task(peer, tool, arguments)
            assert again["error"]["message"] == plain["content"][0]["text"]
            listed = (await ask(peer, "tasks/list"))["result"]["tasks"]
            assert [t["taskId"] for t in listed] == [good["result"]["task"]["taskId"]]
            # The refusals are counted as the plain call's error is (outcome "invalid").
            registry = peer.tools.metrics.registry  # type: ignore[attr-defined]
            invalid = {"model": "fake-model", "tool": tool, "outcome": "invalid", "caller": ""}
            assert registry.get_sample_value("vllm_mcp_requests_total", invalid) == 3
            await ask(peer, "tasks/cancel", {"taskId": good["result"]["task"]["taskId"]})
            assert len(engine.started) == 1  # only the good task reached the engine

    run(scenario)


def test_unknown_tasks_tools_without_task_support_and_the_per_caller_limit() -> None:
    async def scenario() -> None:
        engine = FakeEngine(endless="x", pace=0.05, loaded=True)
        async with serving(engine, VLLM_MCP_MAX_TASKS_PER_CALLER="1") as peer:
            for method in ("tasks/get", "tasks/result", "tasks/cancel"):
                missing = await ask(peer, method, {"taskId": "nope"})
                assert missing["error"]["code"] == -32602 and "no task 'nope'" in missing["error"]["message"]
            refused = await start_task(peer, "model_info", {})
            assert (
                refused["error"]["code"] == -32601 and "cannot run as a task" in refused["error"]["message"]
            )
            first = await start_task(peer, "complete", {"prompt": "go", "max_tokens": 100_000})
            assert first["result"]["task"]["status"] == "working"
            second = await start_task(peer, "complete", {"prompt": "go"})
            assert "VLLM_MCP_MAX_TASKS_PER_CALLER=1" in second["error"]["message"]
            await ask(peer, "tasks/cancel", {"taskId": first["result"]["task"]["taskId"]})
            third = await start_task(peer, "complete", {"prompt": "go", "max_tokens": 2})
            assert third["result"]["task"]["status"] == "working"

    run(scenario)


def test_a_call_without_task_is_answered_as_before() -> None:
    async def scenario() -> None:
        async with serving(FakeEngine(reply="plain", loaded=True)) as peer:
            result = (await ask(peer, "tools/call", {"name": "chat_completion", "arguments": CHAT}))["result"]
            assert result["structuredContent"]["text"] == "plain" and "task" not in result
            assert (await ask(peer, "tasks/list"))["result"]["tasks"] == []

    run(scenario)


def test_a_session_turn_made_in_a_task_is_kept_when_it_completes() -> None:
    async def scenario() -> None:
        async with serving(FakeEngine(reply="remembered", loaded=True)) as peer:
            created = await start_task(peer, "chat_completion", {**CHAT, "session_id": "s1"})
            task_id = created["result"]["task"]["taskId"]
            await ask(peer, "tasks/result", {"taskId": task_id})
            history = await peer.tools.sessions.history("s1")  # type: ignore[attr-defined]
            assert history == [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "remembered"},
            ]

    run(scenario)


def test_tasks_belong_to_the_session_namespace_so_oauth_and_token_file_callers_never_meet() -> None:
    from types import SimpleNamespace

    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.shared.exceptions import MCPError

    from vllm_mcp.protocol.tasks import _owner

    def ctx(**token: Any) -> Any:
        user = AuthenticatedUser(AccessToken(token="[redacted]", scopes=[], **token))
        return SimpleNamespace(request=SimpleNamespace(scope={"user": user}))

    token_file = ctx(client_id="alice")
    oauth = ctx(client_id="web-app", claims={"iss": "https://auth.example.org", "caller": "alice"})
    assert _owner(token_file) == "alice" and _owner(oauth) != _owner(token_file)
    assert _owner(SimpleNamespace(request=None)) is None  # stdio: one caller, as for sessions
    with pytest.raises(MCPError, match="no task namespace"):
        _owner(ctx(client_id="web-app", claims={"iss": "https://auth.example.org", "caller": None}))
