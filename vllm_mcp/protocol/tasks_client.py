"""The client side of the 2026-07-28 tasks extension, for ``vllm-mcp chat --task``.

Built on the Python SDK's client extension interface (``mcp.client.extension``): a
``ResultClaim`` on ``tools/call`` for ``resultType: "task"``, whose resolver polls ``tasks/get``
until the task ends and returns the call's ``CallToolResult``, so ``Client.call_tool`` answers
as for a direct call. Each state it reads goes to ``on_task``. Cancelled while it polls (Ctrl-C
in ``chat``), it sends ``tasks/cancel`` first, so the server stops the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from pydantic import ConfigDict, Field

from vllm_mcp.errors import ChatFailed

EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")
DEFAULT_POLL_S = 1.0
CANCEL_WAIT_S = 5.0
"""How long a cancelled poll waits for the server to acknowledge ``tasks/cancel``."""

TaskCallback = Callable[[dict[str, Any]], None]
"""Gets each state of the task: the extension's ``Task`` fields as the server sent them."""


class _Answer(types.Result):
    """Whatever a tasks/* method answers, every field kept (read as a plain dict)."""

    model_config = ConfigDict(extra="allow")


class CreatedTask(types.Result):
    """``CreateTaskResult`` of the extension: the call goes on as a task."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    status_message: str | None = Field(default=None, alias="statusMessage")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


class _GetTask(types.Request[types.GetTaskRequestParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: types.GetTaskRequestParams
    name_param = "taskId"  # the extension routes tasks/* by Mcp-Name: the task id


class _CancelTask(types.Request[types.CancelTaskRequestParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: types.CancelTaskRequestParams
    name_param = "taskId"


class TasksClient(ClientExtension):
    """Lets a 2026-07-28 server run the client's calls as tasks, and follows them."""

    identifier = EXTENSION

    def __init__(self, on_task: TaskCallback | None = None) -> None:
        self.on_task = on_task or (lambda task: None)

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=CreatedTask, resolve=self.follow),)

    async def follow(self, created: CreatedTask, ctx: ClaimContext) -> types.CallToolResult:
        """Poll the task until it ends; its result, or ``ChatFailed`` saying how it ended."""
        task: dict[str, Any] = created.model_dump(by_alias=True, exclude_none=True)
        self.on_task(task)
        try:
            while task.get("status") not in TERMINAL:
                await asyncio.sleep((task.get("pollIntervalMs") or DEFAULT_POLL_S * 1000) / 1000)
                request = _GetTask(params=types.GetTaskRequestParams(task_id=created.task_id))
                answer = await ctx.session.send_request(request, _Answer, ctx.read_timeout_seconds)
                task = answer.model_dump(by_alias=True, exclude_none=True)
                self.on_task(task)
        except BaseException:  # cancelled (Ctrl-C), or the connection failed: stop the generation
            cancel = _CancelTask(params=types.CancelTaskRequestParams(task_id=created.task_id))
            # Shielded: the poll was cancelled, yet the cancel must go out (a server gone: no matter).
            shield, bounded = anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_WAIT_S)
            with shield, bounded, contextlib.suppress(Exception):
                await ctx.session.send_request(cancel, _Answer, CANCEL_WAIT_S)
            raise
        if task["status"] == "completed":
            return types.CallToolResult.model_validate(task["result"], by_name=False)
        if task["status"] == "failed":
            error = task.get("error") or {}
            raise ChatFailed(f"the task failed: {error.get('message') or task.get('statusMessage')}")
        raise ChatFailed("the task was cancelled")
