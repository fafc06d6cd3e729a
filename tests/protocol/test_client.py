"""Unit tests of the `chat` client's waiting: polling the load status, and which progress is text."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import mcp_types as types
import pytest

from vllm_mcp.protocol import client


def test_it_polls_until_the_model_is_no_longer_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client, "POLL_SECONDS", 0.0)
    answers = [{"state": "loading", "phase": p} for p in ("importing", "compiling")] + [{"state": "ready"}]
    answers.append({"state": "never asked"})
    seen: list[dict[str, Any]] = []

    async def status() -> dict[str, Any] | None:
        return answers.pop(0)

    asyncio.run(client.wait_until_loaded(status, seen.append, timeout=10))
    assert [s.get("phase", s["state"]) for s in seen] == ["importing", "compiling", "ready"]


def test_a_server_that_cannot_say_is_simply_asked() -> None:
    seen: list[dict[str, Any]] = []

    async def status() -> dict[str, Any] | None:
        return None

    asyncio.run(client.wait_until_loaded(status, seen.append, timeout=10))
    assert seen == []


def test_waiting_notifications_are_not_reply_text() -> None:
    shown: list[str] = []

    async def call_tool(name: str, arguments: dict[str, Any], **options: Any) -> types.CallToolResult:
        progress = options["progress_callback"]
        await progress(0.5, None, "waiting for the model to load: importing vLLM, 2 s so far")
        await progress(1, 16, "Par")
        await progress(2, 16, "is")
        text = types.TextContent(type="text", text="Paris.")
        return types.CallToolResult(content=[text], structured_content={"text": "Paris."})

    data = asyncio.run(client._ask(call_tool, {"messages": []}, shown.append, timeout=10))
    assert shown == ["Par", "is", "."] and data["text"] == "Paris."


def test_images_follow_the_questions_text_in_its_message() -> None:
    part = {"type": "image_url", "image_url": {"url": "https://img.example/c.png"}}
    with_image = client._arguments("What is it?", "Be brief.", 8, None, None, [part])
    assert with_image["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is it?"}, part]},
    ]
    assert with_image["max_tokens"] == 8 and "temperature" not in with_image
    plain = client._arguments("What is it?", None, None, None, None)
    assert plain["messages"] == [{"role": "user", "content": "What is it?"}]  # a string, as before


def test_the_tools_error_is_found_inside_the_sdks_task_groups() -> None:
    # Python 3.11's built-in; 3.10 has anyio's backport.
    group = getattr(builtins, "ExceptionGroup", None) or pytest.importorskip("exceptiongroup").ExceptionGroup
    failed = client.ChatFailed("invalid arguments: messages[0].content[1] is an image, ...")
    wrapped = group("unhandled errors in a TaskGroup", [group("inner", [failed])])
    assert client._chat_failure(wrapped) is failed
    assert client._chat_failure(failed) is failed
    assert client._chat_failure(group("other", [OSError("pipe closed")])) is None
