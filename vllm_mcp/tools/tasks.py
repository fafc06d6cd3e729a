"""Calls run as tasks: started in the background, their state kept in the task store.

No protocol here: ``vllm_mcp.protocol.tasks`` maps MCP's tasks methods onto this. A task's
call goes through the very handler a direct call does (admission, the engine's batching,
sessions), so 64 tasks batch as 64 direct calls would. What differs:

- its time budget is ``VLLM_MCP_MAX_TASK_SECONDS`` instead of ``VLLM_MCP_MAX_CALL_SECONDS``
  (``task_time_limit``, a context variable read by ``Tools.time_budget``: the budget follows
  the call into the task that runs it without a parameter on every method on the way);
- its status message in the store says where it stands (waiting for the model, tokens so
  far), at most every ``STATUS_INTERVAL_S``, so a poller on any replica sees it; with a shared
  store the messages of all the tasks a server runs go in one write a second, with their lease
  (``watch``): one write per task per second held 64 tasks to a third of the direct calls'
  tokens/s on SQLite (bench --tasks);
- it ends ``completed``, ``failed`` (a tool error, or the server shutting down) or
  ``cancelled`` (``tasks/cancel``: the call is cancelled, which aborts the engine request).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from vllm_mcp.errors import ServerBusy, ShuttingDown
from vllm_mcp.sessions.tasks import TaskRecord, TaskStatus, TaskStore

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 1.0
"""Least seconds between two status-message writes of one task (each is a store write), and
before the first: a short call ends with one write, its result (bench --tasks)."""
COUNTS_INTERVAL_S = 1.0
"""The metrics' task counts are read again at most this often (each is a store query)."""
PURGE_INTERVAL_S = 60.0
"""Expired tasks are deleted when a task starts, at most this often."""
WAIT_POLL_S = 0.5
"""How often ``wait`` reads the store for a task another process runs."""
WATCH_INTERVAL_S = 1.0
"""How often a server with a shared store looks for its tasks cancelled on another server."""

task_time_limit: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "task_time_limit", default=None
)
"""Set while a task's call runs: its time budget cap, in place of VLLM_MCP_MAX_CALL_SECONDS."""

report_floor: contextvars.ContextVar[float] = contextvars.ContextVar("task_report_floor", default=0.0)
"""Set while a task's call runs with no client reading its progress: the least seconds between
two of its reports (STATUS_INTERVAL_S), its progress feeding the status message only. vLLM then
coalesces its outputs as for a call nobody streams (admission.ProgressRate.output_interval);
streamed at the clients' pace, 64 tasks made 0.75 of the direct calls' tokens/s (bench --tasks)."""


class TaskLimitReached(ServerBusy):
    """A caller has VLLM_MCP_MAX_TASKS_PER_CALLER tasks running already."""


@dataclass(frozen=True)
class Outcome:
    """How a task's call ended: the status it leaves, a message, the result to keep."""

    status: TaskStatus
    message: str | None
    result: dict[str, Any]


Work = Callable[["TaskProgress"], Awaitable[Outcome]]
OnEnd = Callable[[TaskRecord], Awaitable[None]]


class TaskProgress:
    """What a running task's call reports: kept as the task's status message, throttled."""

    def __init__(self, runner: TaskRunner, task_id: str) -> None:
        self._runner, self.task_id = runner, task_id
        self._last = time.monotonic()  # the task was just written: no message before a poll could see it

    async def report(self, text: str, tokens: float, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last < STATUS_INTERVAL_S:
            return
        self._last = now
        message = text if total is None else f"generating: {int(tokens)} of at most {total} tokens"
        if self._runner.store.shared:  # written with the lease, once a second for all (watch)
            self._runner.messages[self.task_id] = message[:200]
            return
        with contextlib.suppress(Exception):  # a status message is worth no failed call
            await self._runner.store.update(self.task_id, message=message[:200])


class TaskRunner:
    """Starts tasks, tracks the ones this process runs, cancels and waits for them."""

    def __init__(
        self,
        store: TaskStore,
        ttl: float,
        max_seconds: float,
        per_caller: int,
        on_counts: Callable[[dict[str, int]], None] = lambda counts: None,
        lease: float = 30.0,
    ) -> None:
        self.store = store
        self.lease = lease
        self._on_counts = on_counts
        self.ttl = ttl
        self.max_seconds = max_seconds
        self.per_caller = per_caller
        #: Who runs a task, kept with it: host, process and a random part (pids are reused).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.stopping = False
        self._purged = float("-inf")
        self.watch_interval = WATCH_INTERVAL_S
        self._watcher: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._end_reason: dict[str, tuple[TaskStatus, str]] = {}
        #: Status messages not yet written (shared stores: ``watch`` writes them with the lease).
        self.messages: dict[str, str] = {}
        self._recount: asyncio.Task[None] | None = None
        self._counted = float("-inf")

    @property
    def running(self) -> int:
        return len(self._running)

    def granted_ttl(self, requested_ms: int | None) -> float:
        """The TTL a task gets, in seconds: what the client asked, at most VLLM_MCP_TASK_TTL."""
        if requested_ms is None or requested_ms <= 0:
            return self.ttl
        return min(self.ttl, requested_ms / 1000)

    async def start(
        self, caller: str | None, requested_ttl_ms: int | None, work: Work, on_end: OnEnd | None = None
    ) -> TaskRecord:
        """Record a new task (durably, before returning) and run ``work`` in the background.

        ``on_end`` gets the task as stored once it has ended (any way), before ``wait`` returns it:
        the protocol tells the client that started it, if it still listens."""
        if self.stopping:
            raise ShuttingDown("server is shutting down; no new tasks are accepted")
        live = await self.store.live(caller)
        if live >= self.per_caller:
            raise TaskLimitReached(
                f"this caller has {live} tasks running (VLLM_MCP_MAX_TASKS_PER_CALLER={self.per_caller}); "
                "wait for one to end, or cancel one with tasks/cancel"
            )
        if time.monotonic() - self._purged > PURGE_INTERVAL_S:
            self._purged = time.monotonic()
            await self.store.purge()
        record = await self.store.create(caller, self.granted_ttl(requested_ttl_ms), self.owner)
        if self.store.shared and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self.watch(self.watch_interval))
        self._ended[record.task_id] = asyncio.Event()
        task = asyncio.get_running_loop().create_task(self._run(caller, record.task_id, work, on_end))
        self._running[record.task_id] = task
        self.recount()
        return record

    async def counts(self) -> dict[str, int]:
        """Tasks in the store by status (every server sharing it), also handed to the metrics."""
        counts = await self.store.counts()
        self._on_counts(counts)
        return counts

    def recount(self) -> None:
        """The metrics' counts read again soon, not at every change: at most once per
        COUNTS_INTERVAL_S, in the background (model_info reads them on the spot)."""
        if self._recount is not None:
            return  # the one pending will read this change too

        async def later() -> None:
            await asyncio.sleep(max(0.0, self._counted + COUNTS_INTERVAL_S - time.monotonic()))
            self._recount, self._counted = None, time.monotonic()
            with contextlib.suppress(Exception):
                await self.counts()

        self._recount = asyncio.get_running_loop().create_task(later())

    async def _run(self, caller: str | None, task_id: str, work: Work, on_end: OnEnd | None) -> None:
        task_time_limit.set(self.max_seconds)
        try:
            outcome = await work(TaskProgress(self, task_id))
            await self.store.update(
                task_id, status=outcome.status, message=outcome.message, result=outcome.result
            )
        except asyncio.CancelledError:
            status, message = self._end_reason.get(task_id, ("cancelled", "cancelled"))
            with contextlib.suppress(Exception):
                await self.store.update(task_id, status=status, message=message)
        except Exception as e:  # the last line: a task never stays "working" because of a bug
            log.exception("task failed", extra={"task": task_id[:8]})
            with contextlib.suppress(Exception):
                await self.store.update(
                    task_id, status="failed", message=f"internal error: {type(e).__name__}"
                )
        finally:
            self.recount()
            if on_end is not None:
                with contextlib.suppress(Exception):  # a listener gone is worth no stuck task
                    ended_record = await self.store.get(caller, task_id)
                    if ended_record is not None:
                        await on_end(ended_record)
            self._running.pop(task_id, None)
            self.messages.pop(task_id, None)
            self._end_reason.pop(task_id, None)
            ended = self._ended.pop(task_id, None)
            if ended is not None:
                ended.set()

    async def watch(self, interval: float = WATCH_INTERVAL_S) -> None:
        """Until cancelled: stop the tasks this process runs that another process cancelled.

        With a shared store (SQLite, PostgreSQL) ``tasks/cancel`` may land on another server;
        it marks the task cancelled in the store, and this loop, reading the statuses of the
        tasks running here, cancels the call, which aborts its engine request.
        """
        while True:
            await asyncio.sleep(interval)
            ids = list(self._running)
            if not ids:
                continue
            messages, self.messages = self.messages, {}
            try:
                # The lease (this server still runs them) and their new status messages, one write.
                await self.store.touch(ids, {k: v for k, v in messages.items() if k in self._running})
                statuses = await self.store.statuses(ids)
            except Exception as e:  # the store is down: try again next round
                log.warning("task store unreadable; cancels from other servers wait", extra={"error": str(e)})
                continue
            for task_id in ids:
                local = self._running.get(task_id)
                if local is not None and statuses.get(task_id) == "cancelled":
                    self._end_reason[task_id] = ("cancelled", "cancelled by the client")
                    local.cancel()

    async def get(self, caller: str | None, task_id: str) -> TaskRecord | None:
        """The caller's task; a live one whose server stopped renewing its lease ends ``failed``.

        Every server running tasks on a shared store renews their lease each second (``watch``);
        one that died renews nothing, and the first read after the lease ends it, saying so.
        """
        record = await self.store.get(caller, task_id)
        if (
            record is None
            or record.terminal
            or not self.store.shared
            or task_id in self._running
            or record.updated >= self.store.now() - self.lease
        ):
            return record
        message = (
            f"the server that ran this task stopped (no sign of life for {self.lease:g} s, "
            "VLLM_MCP_TASK_LEASE_SECONDS); run it again"
        )
        await self.store.fail_stale(task_id, self.store.now() - self.lease, message)
        return await self.store.get(caller, task_id)

    async def cancel(self, caller: str | None, task_id: str) -> TaskRecord | None:
        """Cancel the caller's live task (a terminal one is returned as it is); None: no such task."""
        record = await self.get(caller, task_id)
        if record is None or record.terminal:
            return record
        await self.store.update(task_id, status="cancelled", message="cancelled by the client")
        local = self._running.get(task_id)
        if local is not None:
            self._end_reason[task_id] = ("cancelled", "cancelled by the client")
            local.cancel()  # reaches the call, whose generation aborts its engine request
        return await self.store.get(caller, task_id)

    async def wait(self, caller: str | None, task_id: str) -> TaskRecord | None:
        """The task once terminal (None: no such task, or it expired meanwhile)."""
        while True:
            record = await self.get(caller, task_id)
            if record is None or record.terminal:
                return record
            ended = self._ended.get(task_id)
            if ended is None:  # run by another process (or ending right now): poll
                await asyncio.sleep(WAIT_POLL_S)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), WAIT_POLL_S * 10)

    def stop_intake(self) -> None:
        self.stopping = True

    async def drain(self, grace: float) -> None:
        """Give running tasks ``grace`` seconds, then end the rest ``failed``, saying why."""
        self.stopping = True
        pending = list(self._running.values())
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for task_id, task in list(self._running.items()):
            self._end_reason[task_id] = (
                "failed",
                f"the server shut down before this task finished (VLLM_MCP_SHUTDOWN_GRACE={grace:g} s); "
                "run it again",
            )
            task.cancel()
        rest = list(self._running.values())
        if rest:
            await asyncio.wait(rest, timeout=5)

    async def aclose(self) -> None:
        for background in (self._watcher, self._recount):
            if background is not None:
                background.cancel()
        await self.drain(0)
        with contextlib.suppress(Exception):
            await self.store.fail_live(self.owner, "the server that ran this task stopped; run it again")
