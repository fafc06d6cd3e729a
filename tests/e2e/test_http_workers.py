"""VLLM_MCP_HTTP_WORKERS=2: two real front-end processes on one real engine core, one socket.

Which worker served a call is read from each worker's own metrics textfile (every series
labelled ``worker``), not from anything a client sees.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.httpserver import ACCEPT, HttpServer, initialize_body, mcp_client
from tests.support.proctree import kill_all, tree, wait_gone

pytestmark = pytest.mark.engine

WORKERS = 2


def served(textfile: Path) -> dict[str, float]:
    """Successful chat_completion calls per worker, from the workers' textfiles."""
    out: dict[str, float] = {}
    for index in range(WORKERS):
        path = textfile.with_name(f"{textfile.stem}-worker{index}{textfile.suffix}")
        if not path.exists():
            continue
        for family in text_string_to_metric_families(path.read_text()):
            for sample in family.samples:
                labels = sample.labels
                if sample.name != "vllm_mcp_requests_total" or labels.get("outcome") != "ok":
                    continue
                if labels.get("tool") == "chat_completion":
                    out[labels["worker"]] = out.get(labels["worker"], 0) + sample.value
    return out


def wait_served(textfile: Path, total: int) -> dict[str, float]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = served(textfile)
        if sum(counts.values()) >= total:
            return counts
        time.sleep(0.1)
    raise AssertionError(f"the textfiles never counted {total} calls: {served(textfile)}")


def start(tiny_model: Path, tmp_path: Path) -> tuple[HttpServer, Path]:
    textfile = tmp_path / "vllm-mcp.prom"
    server = HttpServer(
        tiny_model,
        VLLM_MCP_HTTP_WORKERS=str(WORKERS),
        VLLM_MCP_SESSION_STORE=str(tmp_path / "sessions.db"),
        VLLM_MCP_METRICS_TEXTFILE=str(textfile),
        VLLM_MCP_METRICS_INTERVAL="0.1",
        VLLM_MCP_SHUTDOWN_GRACE="60",
    )
    return server, textfile


def test_two_workers_share_conversations_serve_concurrent_calls_and_drain(
    tiny_model: Path, tmp_path: Path
) -> None:
    server, textfile = start(tiny_model, tmp_path)
    processes = tree(server.proc.pid)
    try:
        server.wait_ready()
        processes = tree(server.proc.pid)
        listening = [r for r in server.log if r.get("message") == "serving MCP over HTTP"]
        assert sorted(r["worker"] for r in listening) == [0, 1]  # logs name the worker
        assert len({r["url"] for r in listening}) == 1  # one socket, bound by the parent

        async def turn(k: int, session: str) -> int:
            # A new SDK client each turn: a new HTTP connection, accepted by either worker.
            async with mcp_client(server.url, None) as client:
                result = await client.call_tool(
                    "chat_completion",
                    {
                        "messages": [{"role": "user", "content": f"turn {k}"}],
                        "session_id": session,
                        "max_tokens": 4,
                    },
                )
                assert not result.is_error, result.content
                return int(result.structured_content["usage"]["prompt_tokens"])

        # One conversation until both workers have served some of its turns; every turn is kept:
        # each prompt is the whole history so far, so it grows whichever worker took the turn.
        prompts: list[int] = []
        counts: dict[str, float] = {}
        while len(counts) < WORKERS and len(prompts) < 24:
            prompts.append(asyncio.run(turn(len(prompts), "shared")))
            counts = wait_served(textfile, len(prompts))
        assert set(counts) == {"0", "1"}, f"one worker took all {len(prompts)} turns: {counts}"
        assert all(b > a for a, b in itertools.pairwise(prompts)), prompts

        async def concurrent() -> None:
            async with mcp_client(server.url, None) as client:
                results = await asyncio.gather(
                    *(
                        client.call_tool("complete", {"prompt": f"p{i}", "max_tokens": 16, "min_tokens": 16})
                        for i in range(8)
                    )
                )
                for result in results:
                    assert not result.is_error, result.content
                    assert result.structured_content["usage"]["completion_tokens"] == 16

        asyncio.run(concurrent())

        async def drain() -> None:
            async with mcp_client(server.url, None) as client:
                # Listed now: the SDK client lists the tools after a call of an unlisted one (to
                # check its output schema), which the draining server would refuse.
                await client.list_tools()
                generating = anyio.Event()

                async def progress(p: float, total: float | None, message: str | None) -> None:
                    generating.set()

                async def call() -> None:
                    result = await client.call_tool(
                        "complete",
                        {"prompt": "x", "max_tokens": 300, "min_tokens": 300},
                        progress_callback=progress,
                    )
                    assert not result.is_error, result.content
                    assert result.structured_content["usage"]["completion_tokens"] == 300
                    finished.append(True)

                finished: list[bool] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    with anyio.fail_after(120):
                        await generating.wait()
                    server.proc.send_signal(signal.SIGTERM)
                    # Both workers refuse new work now: new connections land on either.
                    async with httpx2.AsyncClient(timeout=30) as http:
                        with anyio.fail_after(30):
                            while True:
                                health = await http.get(server.base + "/healthz")
                                if health.status_code == 503:
                                    break
                                await anyio.sleep(0.05)
                    for _ in range(4):  # a new connection each, so either worker may take it
                        async with httpx2.AsyncClient(timeout=30) as fresh:
                            refused = await fresh.post(server.url, json=initialize_body(), headers=ACCEPT)
                        assert refused.status_code == 503
                assert finished == [True]

        asyncio.run(drain())
        assert server.proc.wait(90) == 0
        assert wait_gone(processes, 30) == []  # the engine core and both workers are gone
    finally:
        kill_all(processes)
        server.kill()


def test_a_worker_that_dies_takes_the_service_down_with_exit_1(tiny_model: Path, tmp_path: Path) -> None:
    server, _ = start(tiny_model, tmp_path)
    processes = tree(server.proc.pid)
    try:
        server.wait_ready()
        processes = tree(server.proc.pid)
        ready = next(r for r in server.log if r.get("message") == "engine core ready")
        worker_pid = ready["pids"]["ApiServer_1"]
        os.kill(worker_pid, signal.SIGKILL)
        assert server.proc.wait(90) == 1
        assert wait_gone(processes, 30) == []
        gone = [r for r in server.log if r.get("message", "").startswith("a server process exited")]
        assert gone and gone[0]["pid"] == worker_pid, server.log[-5:]
    finally:
        kill_all(processes)
        server.kill()
