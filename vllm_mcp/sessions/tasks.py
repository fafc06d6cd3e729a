"""Tasks (long calls run in the background, polled for): one interface, three backends.

A task is written to the store before its handle goes to the client, so a client that
reconnects, to this server or to another replica sharing the store, finds it. It lives in
the same place as the sessions (``VLLM_MCP_SESSION_STORE``): here in memory, a ``tasks``
table in the SQLite file (tasks_sqlite.py), ``vllm_mcp_tasks`` in PostgreSQL
(tasks_postgres.py). Each backend opens its own connection(s) to that place, so the session
stores are not touched.

The rules every backend keeps:

- ids are ``secrets.token_urlsafe`` (unguessable), and every read is scoped to the caller
  that created the task: another caller's id reads as "no such task";
- ``working`` and ``input_required`` are live; ``completed``, ``failed`` and ``cancelled``
  are terminal and never change again (an update of a terminal task is a no-op);
- a task lives ``ttl`` seconds from its creation, then reads as gone and is purged.

The interface (every method a coroutine)::

    store = await open_task_store(settings)  # from vllm_mcp.sessions
    await store.create(caller, ttl, owner) -> TaskRecord
    await store.get(caller, task_id) -> TaskRecord | None
    await store.update(task_id, status=..., message=..., result=...) -> bool  # False: terminal/gone
    await store.page(caller, after, limit) -> (records, next_cursor)
    await store.live(caller) -> int;  await store.counts() -> {status: n};  await store.purge()
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

TaskStatus = Literal["working", "input_required", "completed", "failed", "cancelled"]
LIVE: tuple[TaskStatus, ...] = ("working", "input_required")
TERMINAL: tuple[TaskStatus, ...] = ("completed", "failed", "cancelled")
STATUSES: tuple[TaskStatus, ...] = LIVE + TERMINAL
ID_BYTES = 24
"""``secrets.token_urlsafe(24)``: 192 random bits, 32 characters."""


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    caller: str
    status: TaskStatus
    message: str | None
    result: dict[str, Any] | None
    created: float
    updated: float
    ttl: float | None
    owner: str | None
    seq: int = 0

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def expired(self, now: float) -> bool:
        return self.ttl is not None and self.created + self.ttl < now


COLUMNS = "id, caller, status, message, result, created, updated, expires, owner, seq"
"""The task table's columns in the order ``record_from_row`` reads them (SQLite and PostgreSQL)."""
LIVE_SQL = "status IN ('working', 'input_required')"
assert LIVE == ("working", "input_required")  # LIVE_SQL spells LIVE out


def record_from_row(row: tuple[Any, ...], decode: Callable[[Any], Any] = lambda r: r) -> TaskRecord:
    """A ``TaskRecord`` from a row of ``COLUMNS``; ``decode`` turns a stored result back into JSON."""
    task_id, caller, status, message, result, created, updated, expires, owner, seq = row
    return TaskRecord(
        task_id=task_id,
        caller=caller,
        status=status,
        message=message,
        result=None if result is None else decode(result),
        created=created,
        updated=updated,
        ttl=None if expires is None else expires - created,
        owner=owner,
        seq=seq,
    )


def caller_key(caller: str | None) -> str:
    """The store's key for a caller: unauthenticated callers (stdio, HTTP without tokens) share ''."""
    return caller or ""


class TaskStore(ABC):
    """The interface the task runner and the protocol use; backends implement it."""

    kind = "memory"
    #: Whether other processes see these tasks (they may run, poll or cancel them).
    shared = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    @property
    def name(self) -> str:
        return self.kind

    async def open(self) -> None:
        """Connect and create the table; ``SessionStoreError`` if the store cannot be used."""
        return None

    async def aclose(self) -> None:
        return None

    def new_record(self, caller: str | None, ttl: float | None, owner: str | None) -> TaskRecord:
        now = self._clock()
        return TaskRecord(
            task_id=secrets.token_urlsafe(ID_BYTES),
            caller=caller_key(caller),
            status="working",
            message=None,
            result=None,
            created=now,
            updated=now,
            ttl=ttl,
            owner=owner,
        )

    @abstractmethod
    async def create(self, caller: str | None, ttl: float | None, owner: str | None = None) -> TaskRecord:
        """A new ``working`` task, committed before this returns."""

    @abstractmethod
    async def get(self, caller: str | None, task_id: str) -> TaskRecord | None:
        """The caller's task; None when unknown, expired, or another caller's."""

    @abstractmethod
    async def update(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Change a live task; False (and nothing written) when it is terminal or gone."""

    @abstractmethod
    async def page(
        self, caller: str | None, after: int | None, limit: int
    ) -> tuple[list[TaskRecord], int | None]:
        """The caller's tasks in creation order after cursor ``after``, and the next cursor."""

    @abstractmethod
    async def live(self, caller: str | None) -> int:
        """The caller's tasks still running (``working`` or ``input_required``)."""

    @abstractmethod
    async def counts(self) -> dict[str, int]:
        """Unexpired tasks by status, every status present (for metrics and model_info)."""

    @abstractmethod
    async def purge(self) -> int:
        """Delete expired tasks; how many went."""

    async def fail_live(self, owner: str, message: str) -> int:
        """Mark every live task of ``owner`` failed with ``message`` (it stops running them)."""
        return 0

    def now(self) -> float:
        """The store's clock (created/updated times are on it)."""
        return self._clock()

    @abstractmethod
    async def touch(self, task_ids: list[str], messages: Mapping[str, str] | None = None) -> None:
        """Renew the lease of these live tasks (their ``updated`` time): their server is alive;
        with ``messages``, their new status messages in the same write (one per second for all
        the tasks a server runs, not one per task)."""

    @abstractmethod
    async def fail_stale(self, task_id: str, before: float, message: str) -> bool:
        """End a live task ``failed`` if not updated since ``before`` (its server died)."""

    @abstractmethod
    async def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        """The status of each of these tasks that still exists (any caller's: for the runner)."""


class MemoryTaskStore(TaskStore):
    """Tasks in this process: gone when it exits, not shared with another server."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._tasks: dict[str, TaskRecord] = {}
        self._seq = 0

    async def create(self, caller: str | None, ttl: float | None, owner: str | None = None) -> TaskRecord:
        await self.purge()
        self._seq += 1
        record = replace(self.new_record(caller, ttl, owner), seq=self._seq)
        self._tasks[record.task_id] = record
        return record

    async def get(self, caller: str | None, task_id: str) -> TaskRecord | None:
        record = self._tasks.get(task_id)
        if record is None or record.caller != caller_key(caller) or record.expired(self._clock()):
            return None
        return record

    async def update(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        record = self._tasks.get(task_id)
        if record is None or record.terminal or record.expired(self._clock()):
            return False
        self._tasks[task_id] = replace(
            record,
            status=status or record.status,
            message=message if message is not None else record.message,
            result=result if result is not None else record.result,
            updated=self._clock(),
        )
        return True

    async def page(
        self, caller: str | None, after: int | None, limit: int
    ) -> tuple[list[TaskRecord], int | None]:
        now, key = self._clock(), caller_key(caller)
        mine = [
            r
            for r in self._tasks.values()
            if r.caller == key and not r.expired(now) and (after is None or r.seq > after)
        ]
        mine.sort(key=lambda r: r.seq)
        return mine[:limit], (mine[limit - 1].seq if len(mine) > limit else None)

    async def live(self, caller: str | None) -> int:
        now, key = self._clock(), caller_key(caller)
        return sum(
            1 for r in self._tasks.values() if r.caller == key and not r.terminal and not r.expired(now)
        )

    async def counts(self) -> dict[str, int]:
        now = self._clock()
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for r in self._tasks.values():
            if not r.expired(now):
                counts[r.status] += 1
        return counts

    async def purge(self) -> int:
        now = self._clock()
        gone = [k for k, r in self._tasks.items() if r.expired(now)]
        for key in gone:
            del self._tasks[key]
        return len(gone)

    async def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        return {i: self._tasks[i].status for i in task_ids if i in self._tasks}

    async def touch(self, task_ids: list[str], messages: Mapping[str, str] | None = None) -> None:
        for task_id in task_ids:
            await self.update(task_id, message=(messages or {}).get(task_id))

    async def fail_stale(self, task_id: str, before: float, message: str) -> bool:
        record = self._tasks.get(task_id)
        if record is None or record.terminal or record.updated >= before:
            return False
        return await self.update(task_id, status="failed", message=message)

    async def fail_live(self, owner: str, message: str) -> int:
        mine = [r.task_id for r in self._tasks.values() if r.owner == owner and not r.terminal]
        for task_id in mine:
            await self.update(task_id, status="failed", message=message)
        return len(mine)
