"""A bare SDK server that answers with the caller, and the requests the OAuth tests make to it."""

from __future__ import annotations

from typing import Any

import httpx


def whoami_server() -> Any:
    """A bare SDK Server whose one tool answers with the caller the transport authenticated."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from vllm_mcp.protocol.auth import caller_of

    async def call(ctx: Any, params: Any) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=str(caller_of(ctx)))])

    async def tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="whoami", input_schema={"type": "object"})])

    return Server("whoami", on_call_tool=call, on_list_tools=tools)


def write_secret(directory: Any, secret: str) -> Any:
    path = directory / "client-secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def post(served: Any, token: str | None) -> httpx.Response:
    from tests.support.httpserver import ACCEPT
    from tests.support.served import INIT

    headers = {**ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(served.url, json=INIT, headers=headers, timeout=30)
