"""The HTTP transport in the test's own process, around a bare SDK ``Server`` (no engine).

``ServedDouble`` serves a stand-in for vllm-mcp's server with the real ``HttpTransport`` on a
thread; ``Recorder`` is such a stand-in with vllm-mcp's tool list, whose calls report progress
and record their ``Mcp-*`` headers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import mcp_types as types
from mcp.server.lowlevel import Server

from vllm_mcp.protocol.server import TOOLS, _progress_token


class ServedDouble:
    """HttpTransport serving a bare SDK ``Server`` (a stand-in for vllm-mcp's) on a thread."""

    def __init__(self, tmp_path, server=None, **env: str) -> None:  # type: ignore[no-untyped-def]
        from vllm_mcp.config.settings import Settings
        from vllm_mcp.protocol.http import HttpTransport
        from vllm_mcp.protocol.transport import ServerHooks

        settings = Settings.load(environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_PORT": "0", **env})
        self.state = "loading"
        self.load_status: dict[str, Any] = {}
        hooks = ServerHooks(health=lambda: self.state, load_status=lambda: self.load_status)
        self.transport = HttpTransport(settings, hooks)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.transport.startup())  # binds: the port is known from here
        self.thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self.transport.serve(server or Server("double")),),
            daemon=True,
        )
        self.thread.start()
        self.url = self.transport.url
        self.base = self.url.removesuffix("/mcp")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.transport.close)
        self.thread.join(30)


def wait_listening(url: str) -> None:
    """Until ``url`` answers at all (the transport binds its socket on its thread)."""
    import httpx2

    for _ in range(100):
        try:
            httpx2.get(url, timeout=5)
            return
        except httpx2.TransportError:
            time.sleep(0.05)


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


class Recorder:
    """A Server with vllm-mcp's tool list whose calls report progress and record their headers;
    ``end_session`` stands in for a slow generation: it runs until released or cancelled."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.release = threading.Event()  # ends a slow call

    def server(self) -> Server[Any]:
        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            # vllm-mcp's input schemas; no output schemas, as these calls return text only.
            return types.ListToolsResult(tools=[t.model_copy(update={"output_schema": None}) for t in TOOLS])

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
            request = ctx.request
            self.headers.append({k: v for k, v in request.headers.items() if k.startswith("mcp-")})
            if params.name == "end_session":
                self.started.set()
                try:
                    while not self.release.is_set():
                        await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    self.cancelled.set()
                    raise
            if _progress_token(ctx) is not None:
                for i in (1, 2):
                    await ctx.session.report_progress(i, 2, f"part {i}")
            text = (params.arguments or {}).get("session_id") or "none"
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

        return Server("recorder", on_list_tools=list_tools, on_call_tool=call_tool)


def chat(session_id: str | None = None) -> dict[str, Any]:
    """``chat_completion`` arguments: one user message, and ``session_id`` when given."""
    args: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    if session_id is not None:
        args["session_id"] = session_id
    return args
