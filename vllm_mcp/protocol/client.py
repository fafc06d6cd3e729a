"""The MCP client behind ``vllm-mcp chat``: one question, the answer streamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types


class ChatFailed(RuntimeError):
    """The server answered with an error; the message is for the user."""


async def chat_once(
    question: str,
    server_command: list[str],
    env: dict[str, str],
    on_text: Callable[[str], None],
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Start ``vllm-mcp serve`` as a child, ask one question, stream the reply to ``on_text``."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=server_command[0], args=server_command[1:], env=env)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    arguments: dict[str, Any] = {"messages": messages}
    for key, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed)):
        if value is not None:
            arguments[key] = value
    streamed: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if message:
            streamed.append(message)
            on_text(message)

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(
            "chat_completion",
            arguments,
            read_timeout_seconds=timeout,
            progress_callback=progress,
        )
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise ChatFailed(text)
    data = dict(result.structured_content or {})
    full = data.get("text", text)
    seen = "".join(streamed)
    if full.startswith(seen) and len(full) > len(seen):
        on_text(full[len(seen) :])  # whatever the last notification did not carry
    return data
