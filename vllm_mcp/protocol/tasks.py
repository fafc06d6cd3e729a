"""MCP tasks, 2025-11-25 (experimental, SEP-1686), on the SDK's low-level ``Server``.

The SDK defines the types (``mcp_types.Task``, ``CreateTaskResult``...) but serves none of
the methods, so this module plugs them in with the SDK's own seams:

- ``tasks/get``, ``tasks/result``, ``tasks/list``, ``tasks/cancel``: ``Server.add_request_handler``;
- a ``tools/call`` whose params carry ``task``: a ``Server.middleware`` entry answers it with a
  ``CreateTaskResult`` (the SDK's tools/call result check knows only ``CallToolResult``, and a
  middleware's result is the one place the SDK leaves to the server) and runs the call in the
  background through the same handler a direct call uses (tools/tasks.py);
- the ``tasks`` capability: ``TaskServer.get_capabilities``.

Only a client that asks gets any of it: without ``params.task`` a call is served as before,
and on a 2026-07-28 connection ``params.task`` is not part of the protocol and is ignored.
Progress notifications of a task and its ``notifications/tasks/status`` (sent once it ends:
its only status change, as ``input_required`` is never used) carry
``_meta["io.modelcontextprotocol/related-task"]``; they go on the connection that created the
task (the request's response has gone), best effort: the store is what every replica reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Protocol

import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.methods import serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from vllm_mcp.errors import SessionStoreFailed, ToolError
from vllm_mcp.protocol.auth import session_namespace
from vllm_mcp.protocol.transport import INVALID_PARAMS, METHOD_NOT_FOUND
from vllm_mcp.sessions.tasks import TaskRecord
from vllm_mcp.tools.limits import NO_NAMESPACE
from vllm_mcp.tools.tasks import STATUS_INTERVAL_S, Outcome, TaskProgress, TaskRunner, report_floor

log = logging.getLogger(__name__)

RELATED_TASK = "io.modelcontextprotocol/related-task"
TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
"""The 2026-07-28 extension (protocol/tasks_ext.py)."""
POLL_INTERVAL_MS = 1000
"""The poll interval suggested to clients."""
PAGE_SIZE = 50
SERVER_ERROR = -32000
"""A task refused (VLLM_MCP_MAX_TASKS_PER_CALLER, shutting down) or a store failure."""
NOTIFY_TIMEOUT_S = 1.0
"""A notification the connection cannot take within this is dropped (and the task's later
ones with it): a client that went away never holds up a generation."""

Progress = Callable[[str, float, int | None], Awaitable[None]]


class CheckedCall(Protocol):
    """A tools/call whose arguments were checked (protocol/server.py's ``Run``)."""

    refusal: tuple[str, types.CallToolResult] | None
    """Set when the arguments are bad: (the metrics' outcome, the error a plain call gets)."""

    async def __call__(self, send: Progress | None) -> types.CallToolResult: ...


CheckCall = Callable[[Any, types.CallToolRequestParams], Awaitable[CheckedCall]]


def _iso(t: float) -> str:
    return (
        datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def task_fields(record: TaskRecord) -> dict[str, Any]:
    """A task as the protocol shows it (``Task``), in wire form."""
    return types.Task(
        task_id=record.task_id,
        status=record.status,
        status_message=record.message,
        created_at=_iso(record.created),
        last_updated_at=_iso(record.updated),
        ttl=None if record.ttl is None else round(record.ttl * 1000),
        poll_interval=POLL_INTERVAL_MS,
    ).model_dump(by_alias=True, mode="json", exclude_none=True)


def _not_found(task_id: str) -> MCPError:
    return MCPError(
        code=INVALID_PARAMS,
        message=f"no task {task_id!r} for this caller: unknown, expired (VLLM_MCP_TASK_TTL), "
        "or another caller's",
    )


class TaskServer(Server[Any]):
    """The SDK's ``Server`` plus the 2025-11-25 ``tasks`` capability (before 2026-07-28 only)."""

    def get_capabilities(self, *args: Any, **kwargs: Any) -> types.ServerCapabilities:
        caps = super().get_capabilities(*args, **kwargs)
        if kwargs.get("protocol_version") in MODERN_PROTOCOL_VERSIONS:
            return caps  # the 2026-07-28 extension, if installed (protocol/tasks_ext.py)
        if caps.extensions:  # 2026-07-28 extensions are not offered on an older connection
            caps.extensions = {k: v for k, v in caps.extensions.items() if k != TASKS_EXTENSION} or None
        caps.tasks = types.ServerTasksCapability(
            list=types.TasksListCapability(),
            cancel=types.TasksCancelCapability(),
            requests=types.ServerTasksRequestsCapability(
                tools=types.TasksToolsCapability(call=types.TasksCallCapability())
            ),
        )
        return caps


def install_tasks(
    server: Server[Any], runner: TaskRunner, check_call: CheckCall, task_tools: frozenset[str]
) -> None:
    """Serve tasks on ``server``: ``check_call(ctx, params)`` checks one tools/call's arguments
    and gives what runs it."""

    async def create(ctx: Any, call_next: Any) -> Any:
        if (
            ctx.method != "tools/call"
            or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
            or not isinstance(ctx.params, dict)
            or ctx.params.get("task") is None
        ):
            return await call_next(ctx)
        try:
            params = types.CallToolRequestParams.model_validate(ctx.params, by_name=False)
        except ValidationError:
            return await call_next(ctx)  # the SDK explains what is wrong with it
        if params.name not in task_tools:
            raise MCPError(
                code=METHOD_NOT_FOUND,
                message=f"{params.name!r} cannot run as a task (its execution.taskSupport is "
                f"'forbidden'); call it without params.task. Tasks: {', '.join(sorted(task_tools))}",
            )
        assert params.task is not None
        owner = _owner(ctx)
        call = await check_call(ctx, params)
        if call.refusal is not None:
            # Bad arguments: no task, nothing counted against the caller's limit, and the error
            # the same call gets without params.task (a JSON-RPC error: this request's answer
            # is a CreateTaskResult or an error, and clients check for the former).
            refused = await call(None)  # counted in the metrics as the plain call would be
            raise MCPError(code=INVALID_PARAMS, message=_text(refused))
        notify = _Notifier(ctx)

        async def ended(record: TaskRecord) -> None:
            await notify(status_notification(record))

        try:
            record = await runner.start(owner, params.task.ttl, _work(ctx, call, notify), ended)
        except (ToolError, SessionStoreFailed) as e:
            raise MCPError(code=SERVER_ERROR, message=str(e)) from None
        log.info("task created", extra={"task": record.task_id[:8], "tool": params.name})
        return {"task": task_fields(record)}

    server.middleware.append(create)

    async def get(ctx: Any, params: types.GetTaskRequestParams) -> dict[str, Any]:
        record = await _store_call(runner.get(_owner(ctx), params.task_id))
        if record is None:
            raise _not_found(params.task_id)
        return task_fields(record)

    async def result(ctx: Any, params: types.GetTaskPayloadRequestParams) -> dict[str, Any]:
        record = await _store_call(runner.wait(_owner(ctx), params.task_id))
        if record is None:
            raise _not_found(params.task_id)
        payload = record.result or types.CallToolResult(
            content=[
                types.TextContent(type="text", text=f"task {record.status}: {record.message or ''}".strip())
            ],
            is_error=True,
        ).model_dump(by_alias=True, mode="json", exclude_none=True)
        meta = {**(payload.get("_meta") or {}), RELATED_TASK: {"taskId": record.task_id}}
        # Shaped for this connection's protocol version, as the direct call's result would be.
        return serialize_server_result("tools/call", ctx.protocol_version, {**payload, "_meta": meta})

    async def list_(ctx: Any, params: types.PaginatedRequestParams) -> dict[str, Any]:
        after = None
        if params.cursor is not None:
            if not params.cursor.isdigit():
                raise MCPError(
                    code=INVALID_PARAMS, message="invalid cursor: pass nextCursor from a tasks/list answer"
                )
            after = int(params.cursor)
        records, cursor = await _store_call(runner.store.page(_owner(ctx), after, PAGE_SIZE))
        out: dict[str, Any] = {"tasks": [task_fields(r) for r in records]}
        if cursor is not None:
            out["nextCursor"] = str(cursor)
        return out

    async def cancel(ctx: Any, params: types.CancelTaskRequestParams) -> dict[str, Any]:
        before = await _store_call(runner.get(_owner(ctx), params.task_id))
        if before is None:
            raise _not_found(params.task_id)
        if before.terminal:
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"cannot cancel task {params.task_id!r}: it is already {before.status}",
            )
        record = await _store_call(runner.cancel(_owner(ctx), params.task_id))
        if record is None:
            raise _not_found(params.task_id)
        return task_fields(record)

    server.add_request_handler("tasks/get", types.GetTaskRequestParams, get)
    server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams, result)
    server.add_request_handler("tasks/list", types.PaginatedRequestParams, list_)
    server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams, cancel)


async def _store_call(work: Awaitable[Any]) -> Any:
    """A store failure is a JSON-RPC error naming the store (these methods have no isError)."""
    try:
        return await work
    except (ToolError, SessionStoreFailed) as e:
        raise MCPError(code=SERVER_ERROR, message=str(e)) from None


def _progress_token(ctx: Any) -> Any:
    meta = getattr(ctx, "meta", None)
    if meta is None:
        return None
    if isinstance(meta, dict):
        return meta.get("progressToken") or meta.get("progress_token")
    return getattr(meta, "progress_token", None)


def _text(result: types.CallToolResult) -> str:
    return next((c.text for c in result.content if isinstance(c, types.TextContent)), "the call failed")


def status_notification(record: TaskRecord) -> types.TaskStatusNotification:
    """``notifications/tasks/status``: the task as ``tasks/get`` shows it, marked as the task's."""
    params = {**task_fields(record), "_meta": {RELATED_TASK: {"taskId": record.task_id}}}
    return types.TaskStatusNotification.model_validate(
        {"method": "notifications/tasks/status", "params": params}, by_name=False
    )


def _work(ctx: Any, call: CheckedCall, notify: _Notifier) -> Callable[[TaskProgress], Awaitable[Outcome]]:
    """The background half of a task-augmented tools/call."""

    async def work(progress: TaskProgress) -> Outcome:
        related = {RELATED_TASK: {"taskId": progress.task_id}}
        token = _progress_token(ctx)
        if token is None:  # only the status message reads its progress: once a second
            report_floor.set(STATUS_INTERVAL_S)

        async def send(text: str, tokens: float, total: int | None) -> None:
            await progress.report(text, tokens, total)
            if token is not None:
                await notify(
                    types.ProgressNotification(
                        params=types.ProgressNotificationParams(
                            progress_token=token, progress=tokens, total=total, message=text, _meta=related
                        )
                    )
                )

        return outcome_of(await call(send))

    return work


def outcome_of(result: types.CallToolResult) -> Outcome:
    """How a task's call ended, as the store keeps it (a tool error: ``failed``, as 2025-11-25 says)."""
    data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    if result.is_error:
        return Outcome("failed", _text(result)[:500], data)
    usage = (result.structured_content or {}).get("usage") or {}
    tokens = usage.get("completion_tokens")
    return Outcome("completed", "finished" if tokens is None else f"finished: {tokens} tokens", data)


class _Notifier:
    """Notifications about a task on the connection's channel, dropped if it cannot take them:
    progress (with a progress token) and the status once the task ends."""

    def __init__(self, ctx: Any) -> None:
        self._session = getattr(ctx, "session", None)
        self._usable = self._session is not None

    async def __call__(self, notification: Any) -> None:
        if not self._usable:
            return
        try:
            await asyncio.wait_for(self._session.send_notification(notification), NOTIFY_TIMEOUT_S)  # type: ignore[union-attr]
        except Exception as e:  # no back channel (stateless HTTP), the client gone, a full pipe
            self._usable = False
            with contextlib.suppress(Exception):
                log.debug("task notifications stop", extra={"reason": type(e).__name__})


def _owner(ctx: Any) -> str | None:
    """Whose tasks a request reaches: the caller's session namespace, so OAuth and token-file
    callers of the same name never meet (issue 27); a token without the caller claim has none."""
    owner = session_namespace(ctx)
    if owner == NO_NAMESPACE:
        raise MCPError(
            code=INVALID_PARAMS,
            message="this caller's token names no user (it lacks the claim VLLM_MCP_OAUTH_CALLER_CLAIM "
            "names), so it has no task namespace; call without params.task, or ask the operator to "
            "name a claim the token has",
        )
    return owner
