"""End to end: an HTTP server without tokens through its life, from its start to its SIGTERM.

While the model loads: ``/healthz`` says the phase, a call hears progress while it waits and a
call whose budget ends first is an error; loaded: clients other than ours (the MCP Inspector
CLI and the official conformance suite, which cannot send a token; authentication is tested
in test_http.py); then SIGTERM drains the call in flight and refuses new ones. One server in
file order (tests/support/life.py), on an OS-chosen loopback port.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.support import nodetools
from tests.support.httpserver import ACCEPT, HttpServer, initialize_body, mcp_client
from tests.support.life import LOADING_PHASES, Heard, Life
from tests.support.nodetools import BIN
from tests.support.proctree import kill_all, tree, wait_gone

pytestmark = pytest.mark.engine

BASELINE = Path(__file__).with_name("conformance-baseline.yml")


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


@pytest.fixture(scope="module")
def life(tiny_model: Path) -> Iterator[Life[HttpServer]]:
    life: Life[HttpServer] = Life(
        lambda: HttpServer(tiny_model, VLLM_DEFAULT_MAX_TOKENS="8", VLLM_MCP_SHUTDOWN_GRACE="90"),
        ready_within=240,
    )
    yield life
    life.close()


def test_healthz_says_the_phase_and_a_call_during_the_load_hears_it_or_ends_in_an_error(
    life: Life[HttpServer],
) -> None:
    server = life.fresh()
    # The transport answers before the model is ready: load balancers see "not yet".
    health = server.health()
    body = health.json()
    assert health.status_code == 503 and body["state"] == "loading", body
    assert body["phase"] in LOADING_PHASES and body["load_s"] >= body["phase_s"] >= 0

    async def calls() -> tuple[Any, Any, Heard]:
        heard = Heard()
        async with mcp_client(server.url, None) as client:

            async def progress(p: float, total: float | None, message: str | None) -> None:
                heard(p, total, message)

            waiting = asyncio.ensure_future(
                client.call_tool(
                    "chat_completion",
                    {"messages": user("hi")},
                    read_timeout_seconds=600,
                    progress_callback=progress,
                )
            )
            short = await client.call_tool("chat_completion", {"messages": user("hi"), "timeout_s": 1})
            return short, await waiting, heard

    short, result, heard = asyncio.run(calls())
    assert short.is_error and short.content[0].text.startswith("the model is still loading: ")
    assert not result.is_error, result.content[0].text
    heard.check()
    done = server.health().json()
    assert done["state"] == "ready" and done["phase"] == "ready" and done["load_s"] > 0
    # One log line per phase change, in order.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(r.get("phase") == "ready" for r in server.log):
        time.sleep(0.2)
    phases = [r["phase"] for r in server.log if str(r.get("message", "")).startswith("load phase: ")]
    assert phases[0] == "starting_engine" and phases[-1] == "ready", phases
    assert "loading_weights" in phases and len(phases) == len(set(phases)), phases


def test_inspector_lists_the_tools(life: Life[HttpServer]) -> None:
    nodetools.require()
    served = life.ready()
    done = nodetools.run([str(BIN / "mcp-inspector"), "--cli", served.url, "--method", "tools/list"])
    assert done.returncode == 0, done.stderr
    tools = {t["name"]: t for t in json.loads(done.stdout)["tools"]}
    assert set(tools) == {"chat_completion", "complete", "model_info", "end_session"}
    assert "messages" in tools["chat_completion"]["inputSchema"]["properties"]


def test_inspector_calls_chat_completion(life: Life[HttpServer]) -> None:
    nodetools.require()
    served = life.ready()
    done = nodetools.run(
        [
            str(BIN / "mcp-inspector"),
            "--cli",
            served.url,
            "--method",
            "tools/call",
            "--tool-name",
            "chat_completion",
            "--tool-arg",
            'messages=[{"role": "user", "content": "hello"}]',
            "max_tokens=6",
            "min_tokens=6",
        ]
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["isError"] is False
    assert result["structuredContent"]["usage"]["completion_tokens"] == 6


def test_conformance_suite_fails_only_where_the_baseline_says(life: Life[HttpServer], tmp_path: Path) -> None:
    nodetools.require()
    served = life.ready()
    done = nodetools.run(
        [
            str(BIN / "conformance"),
            "server",
            "--url",
            served.url,
            "--expected-failures",
            str(BASELINE),
            "-o",
            str(tmp_path),
        ]
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    for scenario in ("server-initialize", "ping", "tools-list", "dns-rebinding-protection"):
        assert f"✓ {scenario}:" in done.stdout
    assert "Baseline check passed" in done.stdout


def test_sigterm_drains_the_call_in_flight_refuses_new_ones_and_exits_0(life: Life[HttpServer]) -> None:
    server = life.last()
    processes = tree(server.proc.pid)  # the server with its engine core and workers
    assert len(processes) > 1
    try:

        async def main() -> None:
            async with mcp_client(server.url, None, "legacy") as client:
                await client.list_tools()
                generating = anyio.Event()

                async def progress(p: float, total: float | None, message: str | None) -> None:
                    generating.set()

                async def call() -> None:
                    result = await client.call_tool(
                        "chat_completion",
                        {"messages": user("x"), "max_tokens": 300, "min_tokens": 300},
                        progress_callback=progress,
                    )
                    assert not result.is_error, result.content
                    assert result.structured_content["usage"]["completion_tokens"] == 300
                    done.append(time.monotonic())

                done: list[float] = []
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    with anyio.fail_after(120):
                        await generating.wait()
                    server.proc.send_signal(signal.SIGTERM)
                    async with httpx2.AsyncClient(timeout=30) as http:
                        with anyio.fail_after(30):
                            while (await http.get(server.base + "/healthz")).status_code == 200:
                                await anyio.sleep(0.05)
                        health = await http.get(server.base + "/healthz")
                        assert health.status_code == 503 and health.json()["state"] == "stopping"
                        refused = await http.post(server.url, json=initialize_body(), headers=ACCEPT)
                        assert refused.status_code == 503
                        assert "shutting down" in refused.json()["error"]["message"]
                assert done, "the call in flight did not finish"

        asyncio.run(main())
        assert server.proc.wait(120) == 0
        assert wait_gone(processes, 30) == []
    finally:
        server.kill()
        kill_all(processes)
