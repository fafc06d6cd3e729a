"""An HTTP server's life: /healthz while the model loads, then a SIGTERM that drains calls."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from tests.e2e.httpserver import ACCEPT, HttpServer, initialize_body, mcp_client
from tests.e2e.proctree import kill_all, tree, wait_gone

pytestmark = pytest.mark.engine


def test_healthz_while_loading_then_sigterm_drains_and_exits_0(tiny_model: Path) -> None:
    server = HttpServer(tiny_model, VLLM_MCP_SHUTDOWN_GRACE="90")
    processes = tree(server.proc.pid)
    try:
        # The transport answers before the model is ready: load balancers see "not yet".
        first = server.health()
        body = first.json()
        assert first.status_code == 503 and body["state"] == "loading" and body["phase"] != "ready"
        server.wait_ready()
        processes = tree(server.proc.pid)  # now with the engine core and its workers
        assert len(processes) > 1

        async def main() -> None:
            async with mcp_client(server.url, None, "legacy") as client:
                await client.list_tools()
                generating = anyio.Event()

                async def progress(p: float, total: float | None, message: str | None) -> None:
                    generating.set()

                async def call() -> None:
                    result = await client.call_tool(
                        "chat_completion",
                        {
                            "messages": [{"role": "user", "content": "x"}],
                            "max_tokens": 300,
                            "min_tokens": 300,
                        },
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
