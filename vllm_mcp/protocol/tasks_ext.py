"""MCP tasks, 2026-07-28: the official extension ``io.modelcontextprotocol/tasks`` (SEP-2663).

Built on the SDK's extension interface (``mcp.server.extension.Extension``: the methods it
adds, a ``tools/call`` interceptor), installed on the low-level ``Server`` by
``install_extension`` (the SDK applies extensions only in its ``MCPServer`` tier). What the
extension's specification asks, and how it is met here:

- Served only to a request whose own capabilities (``_meta``) declare the extension; a
  2025-11-25 connection keeps the experimental shape (protocol/tasks.py), a client that does
  not declare it gets today's answers. ``tasks/get``, ``tasks/update``, ``tasks/cancel``
  without the declaration: ``-32021`` naming it.
- The server decides when a call becomes a task: a ``chat_completion`` or ``complete`` still
  running after ``ANSWER_WITHIN_S`` is handed over to the task runner (the same call, not a
  new one), and its ``CreateTaskResult`` (``resultType: "task"``) is returned once the task
  is in the store; a call that ends sooner is answered as usual. A caller at
  ``VLLM_MCP_MAX_TASKS_PER_CALLER``, or a store that cannot take the task, gets the plain
  answer instead, when the call ends.
- ``tasks/get`` is the ``DetailedTask``: ``result`` once completed (a tool error, ``isError``,
  is ``completed`` too, as the extension says), ``error`` once failed (no result: the server
  stopped, or the task's server died), nothing more when cancelled.
- No ``input_required`` (nothing here asks the client for input): ``tasks/update`` on a known
  task is acknowledged and its responses ignored, as for keys not outstanding.
- No progress notifications once a task (the extension supports none), no
  ``notifications/tasks`` (its ``subscriptions/listen`` stream is not served): clients poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import mcp_types as types
from mcp.server.extension import Extension, MethodBinding, compose_tool_call_handler
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp_types.methods import serialize_server_result
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from vllm_mcp.errors import SessionStoreFailed, ToolError
from vllm_mcp.protocol.tasks import (
    POLL_INTERVAL_MS,
    TASKS_EXTENSION,
    CheckCall,
    Progress,
    _iso,
    _not_found,
    _owner,
    _store_call,
    outcome_of,
)
from vllm_mcp.protocol.transport import METHOD_NOT_FOUND
from vllm_mcp.sessions.tasks import TaskRecord
from vllm_mcp.tools.tasks import (
    STATUS_INTERVAL_S,
    Outcome,
    TaskProgress,
    TaskRunner,
    report_floor,
    task_time_limit,
)

log = logging.getLogger(__name__)

EXTENSION = TASKS_EXTENSION
MISSING_CAPABILITY = -32021
"""The extension's "Missing Required Client Capability" error code."""
INTERNAL_ERROR = -32603
ANSWER_WITHIN_S = 1.0
"""A call still running after this becomes a task; one done sooner is answered as usual (no
poll interval's delay for short generations)."""


class UpdateTaskParams(types.RequestParams):
    """``tasks/update``'s params: ``inputResponses`` keyed by the input requests they answer."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    task_id: str = Field(alias="taskId")
    input_responses: dict[str, Any] = Field(alias="inputResponses")


def declared(ctx: Any) -> bool:
    """Whether this request's capabilities declare the extension (2026-07-28: per request)."""
    session = getattr(ctx, "session", None)
    capabilities = getattr(session, "client_capabilities", None)
    extensions = getattr(capabilities, "extensions", None) or {}
    return EXTENSION in extensions


def _require_declared(ctx: Any) -> None:
    if not declared(ctx):
        raise MCPError(
            code=MISSING_CAPABILITY,
            message=f"Missing required client capability: declare the {EXTENSION!r} extension in "
            "this request's _meta clientCapabilities.extensions to use tasks",
            data={"requiredCapabilities": {"extensions": {EXTENSION: {}}}},
        )


def task_view(record: TaskRecord) -> dict[str, Any]:
    """The extension's ``DetailedTask`` (wire form) for a stored task."""
    out: dict[str, Any] = {
        "taskId": record.task_id,
        "status": record.status,
        "createdAt": _iso(record.created),
        "lastUpdatedAt": _iso(record.updated),
        "ttlMs": None if record.ttl is None else round(record.ttl * 1000),
        "pollIntervalMs": POLL_INTERVAL_MS,
    }
    if record.message:
        out["statusMessage"] = record.message
    if record.status in ("completed", "failed") and record.result is not None:
        # A tool error is a result: "completed" here (the store keeps 2025-11-25's "failed").
        out["status"] = "completed"
        stored = {"resultType": "complete", **record.result}  # as a 2026-07-28 tools/call answers
        out["result"] = serialize_server_result("tools/call", MODERN_PROTOCOL_VERSIONS[0], stored)
    elif record.status == "failed":
        out["error"] = {"code": INTERNAL_ERROR, "message": record.message or "the task failed"}
    return out


class TasksExtension(Extension):
    """The 2026-07-28 tasks extension over the task runner (protocol-free, tools/tasks.py)."""

    identifier = EXTENSION

    def __init__(self, runner: TaskRunner, check_call: CheckCall, task_tools: frozenset[str]) -> None:
        self.runner, self.check_call, self.task_tools = runner, check_call, task_tools
        self.answer_within = ANSWER_WITHIN_S

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", types.GetTaskRequestParams, self.get, modern),
            MethodBinding("tasks/update", UpdateTaskParams, self.update, modern),
            MethodBinding("tasks/cancel", types.CancelTaskRequestParams, self.cancel, modern),
        )

    async def intercept_tool_call(
        self, params: types.CallToolRequestParams, ctx: Any, call_next: Callable[[Any], Awaitable[Any]]
    ) -> Any:
        if (
            ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS
            or params.name not in self.task_tools
            or not declared(ctx)
        ):
            return await call_next(ctx)
        call = await self.check_call(ctx, params)
        if call.refusal is not None:
            return await call(None)  # bad arguments: the plain call's error, no task
        relay = _Relay()
        # It may become a task: its time budget is a task's (VLLM_MCP_MAX_TASK_SECONDS), and
        # nothing but the status message reads its progress (no progress on this extension's tasks).
        budget, floor = task_time_limit.set(self.runner.max_seconds), report_floor.set(STATUS_INTERVAL_S)
        try:
            running = asyncio.ensure_future(call(relay))
        finally:
            task_time_limit.reset(budget)
            report_floor.reset(floor)
        try:
            done, _ = await asyncio.wait({running}, timeout=self.answer_within)
            if done:
                return running.result()
            try:
                record = await self.runner.start(_owner(ctx), None, _adopt(running, relay))
            except (ToolError, SessionStoreFailed) as e:  # the limit, a shutdown, the store
                log.info("call answered without a task", extra={"reason": type(e).__name__})
                return await running
        except BaseException:
            running.cancel()  # the request itself was cancelled (or failed) before a task took it
            raise
        log.info("task created", extra={"task": record.task_id[:8], "tool": params.name})
        return {**task_view(record), "resultType": "task"}

    async def get(self, ctx: Any, params: types.GetTaskRequestParams) -> dict[str, Any]:
        _require_declared(ctx)
        record = await _store_call(self.runner.get(_owner(ctx), params.task_id))
        if record is None:
            raise _not_found(params.task_id)
        return {**task_view(record), "resultType": "complete"}

    async def update(self, ctx: Any, params: UpdateTaskParams) -> dict[str, Any]:
        _require_declared(ctx)
        if await _store_call(self.runner.get(_owner(ctx), params.task_id)) is None:
            raise _not_found(params.task_id)
        return {"resultType": "complete"}  # no input is ever outstanding: nothing to take

    async def cancel(self, ctx: Any, params: types.CancelTaskRequestParams) -> dict[str, Any]:
        _require_declared(ctx)
        # A task already ended is acknowledged as it is: cancelling is cooperative here.
        if await _store_call(self.runner.cancel(_owner(ctx), params.task_id)) is None:
            raise _not_found(params.task_id)
        return {"resultType": "complete"}


class _Relay:
    """A call's progress, dropped while it is a plain call, the task's status once adopted."""

    def __init__(self) -> None:
        self.target: Progress | None = None

    async def __call__(self, text: str, tokens: float, total: int | None) -> None:
        if self.target is not None:
            await self.target(text, tokens, total)


def _adopt(
    running: asyncio.Future[types.CallToolResult], relay: _Relay
) -> Callable[[TaskProgress], Awaitable[Outcome]]:
    """A call already running, as a task's work: cancelling the task cancels the call."""

    async def work(progress: TaskProgress) -> Outcome:
        relay.target = progress.report
        try:
            result = await running
        except asyncio.CancelledError:
            running.cancel()
            raise
        return outcome_of(result)

    return work


def install_extension(server: Server[Any], extension: Extension, call_tool: Any) -> None:
    """Apply ``extension`` to the low-level ``server``, as ``MCPServer`` does with its own.

    Its methods are served at the versions they name; where a method is already served
    (``tasks/get`` and ``tasks/cancel`` in the 2025-11-25 shape) the older handler keeps the
    other versions. ``call_tool`` (the server's tools/call handler) is wrapped by its
    interceptor, and the extension is advertised (``ServerCapabilities.extensions``).
    """
    for binding in extension.methods():
        older = server.get_request_handler(binding.method)
        server.add_request_handler(binding.method, binding.params_type, _by_version(binding, older))
    server.add_request_handler(
        "tools/call", types.CallToolRequestParams, compose_tool_call_handler([extension], call_tool)
    )
    server.extensions[extension.identifier] = extension.settings()


def _by_version(binding: MethodBinding, older: Any) -> Any:
    async def handler(ctx: Any, params: Any) -> Any:
        versions = binding.protocol_versions
        if versions is None or ctx.protocol_version in versions:
            return await binding.handler(ctx, params)
        if older is None:
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data=binding.method)
        if not isinstance(params, older.params_type):
            params = older.params_type.model_validate(params.model_dump(by_alias=True), by_name=False)
        return await older.handler(ctx, params)

    return handler
