"""End to end: the SDK's high-level ``mcp.client.client.Client`` over stdio, in both its modes.

Its default ``mode="auto"`` probes ``server/discover`` and speaks the stateless 2026-07-28
protocol with us; ``mode="legacy"`` uses the initialize handshake. One server per mode.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.models import serve_env
from tests.support.servers import serve_command

pytestmark = pytest.mark.engine


async def session_through(mode: str, env: dict[str, str]) -> dict[str, Any]:
    from mcp.client.client import Client
    from mcp.client.stdio import StdioServerParameters

    command = serve_command()
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    streamed: list[tuple[float | None, str]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        streamed.append((total, message or ""))

    def ask(content: str, **extra: Any) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": content}], "max_tokens": 12, "seed": 3, **extra}

    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        report: dict[str, Any] = {"version": client.protocol_version}
        report["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        chat = await client.call_tool("chat_completion", ask("hi"), 300, progress)
        report["chat"], report["streamed"] = chat, list(streamed)
        report["turn1"] = await client.call_tool("chat_completion", ask("one", session_id="s"), 300)
        report["turn2"] = await client.call_tool("chat_completion", ask("two", session_id="s"), 300)
        report["info"] = await client.call_tool("model_info", {}, 60)
    return report


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
def test_the_sdk_client_lists_chats_streams_and_keeps_a_session(
    tiny_model: Path, mode: str, version: str
) -> None:
    report = asyncio.run(asyncio.wait_for(session_through(mode, serve_env(tiny_model)), 600))
    assert report["version"] == version
    assert report["tools"] == ["chat_completion", "complete", "end_session", "model_info"]
    chat = report["chat"]
    assert not chat.is_error, chat.content[0].text
    assert chat.structured_content["usage"]["completion_tokens"] == 12
    # The first call is made while the model loads: it hears "waiting for ..." notes (no total),
    # then the reply's own stream (total = max_tokens).
    reply = [m for total, m in report["streamed"] if total is not None]
    notes = [m for total, m in report["streamed"] if total is None]
    assert reply and "".join(reply) == chat.structured_content["text"]
    assert all(m.startswith("waiting for ") and "s so far" in m for m in notes)
    one, two = report["turn1"].structured_content, report["turn2"].structured_content
    assert one["session_id"] == two["session_id"] == "s"
    assert two["usage"]["prompt_tokens"] > one["usage"]["prompt_tokens"]  # the first turn is prepended
    assert report["info"].structured_content["active_sessions"] == 1
