"""The MCP client behind ``vllm-mcp chat``: one question, the answer streamed.

Over stdio it starts its own server; with ``--url`` it asks a running HTTP server. With
``--task`` the call may run as an MCP task (2026-07-28 extension, tasks_client.py). While the
model loads it reports the server's load phase (``model_info`` over stdio, ``/healthz`` over
HTTP) to ``on_status``, so a person sees what the wait is for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import mcp_types as types

from vllm_mcp.errors import ChatFailed
from vllm_mcp.protocol.tasks_client import TaskCallback, TasksClient

POLL_SECONDS = 1.0

StatusCallback = Callable[[dict[str, Any]], None]
"""Gets ``{"state", "phase", "phase_s", "load_s"}`` (what the server says) while it loads."""


async def wait_until_loaded(
    status: Callable[[], Awaitable[dict[str, Any] | None]], on_status: StatusCallback, timeout: float
) -> None:
    """Poll ``status`` until the server is no longer loading; each answer goes to ``on_status``.

    ``status`` returns None when the server cannot say (an older one): the call then just waits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = await status()
        if current is None:
            return
        on_status(current)
        if current.get("state") != "loading":
            return
        await asyncio.sleep(POLL_SECONDS)


def _arguments(
    question: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    images: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """``images``: OpenAI ``image_url`` parts, sent after the question's text in its message."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    content: str | list[dict[str, Any]] = question
    if images:
        content = [{"type": "text", "text": question}, *images]
    messages.append({"role": "user", "content": content})
    arguments: dict[str, Any] = {"messages": messages}
    for key, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed)):
        if value is not None:
            arguments[key] = value
    return arguments


async def _ask(
    call_tool: Callable[..., Awaitable[Any]],
    arguments: dict[str, Any],
    on_text: Callable[[str], None],
    timeout: float,
) -> dict[str, Any]:
    """One chat_completion call with progress; the reply streamed to ``on_text``."""
    streamed: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        # Without a total a notification says what the call waits for; it is not reply text.
        if message and total is not None:
            streamed.append(message)
            on_text(message)

    result = await call_tool(
        "chat_completion", arguments, read_timeout_seconds=timeout, progress_callback=progress
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
    images: Sequence[dict[str, Any]] = (),
    timeout: float = 900.0,
    on_status: StatusCallback | None = None,
    on_task: TaskCallback | None = None,
) -> dict[str, Any]:
    """Start ``vllm-mcp serve`` as a child, ask one question, stream the reply to ``on_text``.

    With ``on_task`` the call may run as a 2026-07-28 task (tasks_client.py), followed to its end.
    """
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=server_command[0], args=server_command[1:], env=env)
    arguments = _arguments(question, system, max_tokens, temperature, seed, images)
    try:
        if on_task is not None:
            from mcp.client.client import Client

            async with Client(params, extensions=[TasksClient(on_task)]) as client:
                if on_status is not None:
                    await wait_until_loaded(lambda: _model_info_status(client.call_tool), on_status, timeout)
                return await _ask(client.call_tool, arguments, on_text, timeout)
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            async def status() -> dict[str, Any] | None:
                return await _model_info_status(session.call_tool)

            if on_status is not None:
                await wait_until_loaded(status, on_status, timeout)
            return await _ask(session.call_tool, arguments, on_text, timeout)
    except Exception as e:
        if (failed := _chat_failure(e)) is not None:
            raise failed from None  # the SDK's task group wraps it
        raise


async def _model_info_status(call_tool: Callable[..., Awaitable[Any]]) -> dict[str, Any] | None:
    """The server's load state from ``model_info`` (None: it does not say)."""
    result = await call_tool("model_info", {}, read_timeout_seconds=60)
    info = result.structured_content or {}
    if result.is_error or "load_phase" not in info:
        return None
    return {
        "state": info["server_state"],
        "phase": info["load_phase"],
        "phase_s": info["load_phase_s"],
        "load_s": info["load_s"],
    }


async def chat_url(
    question: str,
    url: str,
    token: str | None,
    on_text: Callable[[str], None],
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    images: Sequence[dict[str, Any]] = (),
    timeout: float = 900.0,
    on_status: StatusCallback | None = None,
    on_task: TaskCallback | None = None,
) -> dict[str, Any]:
    """Ask a running ``vllm-mcp serve --transport http`` at ``url``, the reply streamed (as a
    2026-07-28 task the server may make of it, with ``on_task``)."""
    import httpx2
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    arguments = _arguments(question, system, max_tokens, temperature, seed, images)
    refused: list[int] = []  # the SDK turns an HTTP error into "Server returned an error response"

    async def note(response: httpx2.Response) -> None:
        if response.status_code >= 400 and response.url.path != "/healthz":  # 503 there: loading
            refused.append(response.status_code)

    http = httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(30, read=timeout), event_hooks={"response": [note]}
    )
    health = str(httpx2.URL(url).copy_with(path="/healthz", query=None))

    async def status() -> dict[str, Any] | None:
        try:
            body = (await http.get(health)).json()
        except Exception:  # no /healthz there (another server), or not JSON: just ask
            return None
        return body if isinstance(body, dict) and "state" in body else None

    try:
        async with http:
            if on_status is not None:
                await wait_until_loaded(status, on_status, timeout)
            extensions = [TasksClient(on_task)] if on_task is not None else None
            async with Client(streamable_http_client(url, http_client=http), extensions=extensions) as client:
                return await _ask(client.call_tool, arguments, on_text, timeout)
    except Exception as e:
        if (failed := _chat_failure(e)) is not None:
            raise failed from None
        problem = _http_problem(e, refused)
        if problem:
            raise ChatFailed(f"{url}: {problem}") from None
        raise


def _chat_failure(error: BaseException) -> ChatFailed | None:
    """The tool's error inside ``error``: the SDK's task groups wrap what the call raised."""
    return next((e for e in _wrapped(error, causes=False) if isinstance(e, ChatFailed)), None)


def _wrapped(error: BaseException, causes: bool) -> Iterator[BaseException]:
    """``error`` and what it wraps: an exception group's members (3.10: the backport) in its
    place and, with ``causes``, each one's ``__cause__`` and ``__context__``."""
    stack, seen = [error], set()
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        group = getattr(e, "exceptions", None)
        if isinstance(group, (list, tuple)):
            stack.extend(group)
            continue
        yield e
        if causes:
            stack.extend(x for x in (e.__cause__, e.__context__) if x is not None)


def _http_problem(error: BaseException, refused: list[int]) -> str | None:
    """A one-line reason for the usual failures of a remote server (never the token)."""
    import httpx2

    for status in refused:
        if status in _STATUS_HINTS:
            return _STATUS_HINTS[status]
    for e in _wrapped(error, causes=True):
        if isinstance(e, httpx2.HTTPStatusError):
            status = e.response.status_code
            return _STATUS_HINTS.get(status, f"HTTP {status}")
        if isinstance(e, httpx2.ConnectError):
            return "cannot connect: is `vllm-mcp serve --transport http` running there?"
    return None


_STATUS_HINTS = {
    401: "401 Unauthorized: give --token-file, a file holding a token the server accepts",
    421: "421: the server does not accept this host name (VLLM_MCP_HTTP_ALLOWED_HOSTS)",
    503: "503: the server is loading its model or shutting down; try again shortly",
}
