"""Tasks in PostgreSQL, table ``vllm_mcp_tasks``: any replica answers for any task.

A pool of its own (``psycopg_pool``, checked connections, as the session store's), to the
same database and with the same password handling. Each statement is one implicit
transaction; the terminal-never-changes rule is in every ``UPDATE``'s ``WHERE``, so two
replicas racing (one completing, one cancelling) leave exactly one terminal status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from vllm_mcp.errors import SessionStoreFailed
from vllm_mcp.sessions.postgres import _why, jsonb, open_pool
from vllm_mcp.sessions.tasks import (
    COLUMNS,
    LIVE_SQL,
    STATUSES,
    TaskRecord,
    TaskStatus,
    TaskStore,
    caller_key,
    record_from_row,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]

_SCHEMA_LOCK = (0x766D6370, 1)  # "vmcp", 1: apart from the session store's locks
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vllm_mcp_tasks ("
    " seq bigint GENERATED ALWAYS AS IDENTITY,"
    " id text PRIMARY KEY,"
    " caller text NOT NULL,"
    " status text NOT NULL,"
    " message text,"
    " result jsonb,"
    " created double precision NOT NULL,"
    " updated double precision NOT NULL,"
    " expires double precision,"
    " owner text)",
    "CREATE INDEX IF NOT EXISTS vllm_mcp_tasks_caller ON vllm_mcp_tasks (caller, seq)",
    "CREATE INDEX IF NOT EXISTS vllm_mcp_tasks_expires ON vllm_mcp_tasks (expires)",
)


async def _create_schema(conn: Conn) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _SCHEMA_LOCK)
        for sql in _SCHEMA:
            await conn.execute(sql)


_UNEXPIRED = "(expires IS NULL OR expires >= %s)"
POOL_MAX = 4


class PostgresTaskStore(TaskStore):
    kind = "postgres"
    shared = True

    def __init__(
        self, url: str, password_file: Path | None, clock: Callable[[], float] | None = None
    ) -> None:
        super().__init__(*(() if clock is None else (clock,)))
        self.url = url
        self._password_file = password_file
        self._pool: AsyncConnectionPool[Conn] | None = None

    @property
    def name(self) -> str:
        return self.url

    async def open(self) -> None:
        self._pool = await open_pool(
            self.url,
            self._password_file,
            what="task store",
            name="vllm-mcp-tasks",
            set_up=_create_schema,
            max_size=POOL_MAX,
        )

    async def _run(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if self._pool is None:
            raise SessionStoreFailed("the postgres task store is closed")
        try:
            async with self._pool.connection() as conn:
                return await fn(conn)
        except psycopg.Error as e:
            log.error("task store failed", extra={"store": self.url, "error": _why(e)})
            raise SessionStoreFailed(
                f"the postgres task store is unavailable ({type(e).__name__}); try again"
            ) from None

    async def _rows(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async def q(conn: Conn) -> list[tuple[Any, ...]]:
            return await (await conn.execute(sql, args)).fetchall()

        return await self._run(q)

    async def _count(self, sql: str, args: tuple[Any, ...]) -> int:
        async def q(conn: Conn) -> int:
            return (await conn.execute(sql, args)).rowcount

        return await self._run(q)

    async def create(self, caller: str | None, ttl: float | None, owner: str | None = None) -> TaskRecord:
        r = self.new_record(caller, ttl, owner)
        expires = None if ttl is None else r.created + ttl
        rows = await self._rows(
            "INSERT INTO vllm_mcp_tasks (id, caller, status, created, updated, expires, owner) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq",
            (r.task_id, r.caller, r.status, r.created, r.updated, expires, owner),
        )
        return TaskRecord(**{**r.__dict__, "seq": rows[0][0]})

    async def get(self, caller: str | None, task_id: str) -> TaskRecord | None:
        rows = await self._rows(
            f"SELECT {COLUMNS} FROM vllm_mcp_tasks WHERE id = %s AND caller = %s AND {_UNEXPIRED}",
            (task_id, caller_key(caller), self._clock()),
        )
        return record_from_row(rows[0]) if rows else None

    async def update(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        now = self._clock()
        n = await self._count(
            "UPDATE vllm_mcp_tasks SET status = coalesce(%s, status), message = coalesce(%s, message), "
            f"result = coalesce(%s, result), updated = %s WHERE id = %s AND {LIVE_SQL} AND {_UNEXPIRED}",
            (status, message, None if result is None else jsonb(result), now, task_id, now),
        )
        return bool(n)

    async def page(
        self, caller: str | None, after: int | None, limit: int
    ) -> tuple[list[TaskRecord], int | None]:
        rows = await self._rows(
            f"SELECT {COLUMNS} FROM vllm_mcp_tasks WHERE caller = %s AND seq > %s AND {_UNEXPIRED} "
            "ORDER BY seq LIMIT %s",
            (caller_key(caller), after or 0, self._clock(), limit + 1),
        )
        records = [record_from_row(r) for r in rows[:limit]]
        return records, (records[-1].seq if len(rows) > limit else None)

    async def live(self, caller: str | None) -> int:
        rows = await self._rows(
            f"SELECT count(*) FROM vllm_mcp_tasks WHERE caller = %s AND {LIVE_SQL} AND {_UNEXPIRED}",
            (caller_key(caller), self._clock()),
        )
        return int(rows[0][0])

    async def counts(self) -> dict[str, int]:
        rows = await self._rows(
            f"SELECT status, count(*) FROM vllm_mcp_tasks WHERE {_UNEXPIRED} GROUP BY status",
            (self._clock(),),
        )
        return {**dict.fromkeys(STATUSES, 0), **{s: int(n) for s, n in rows}}

    async def purge(self) -> int:
        return await self._count("DELETE FROM vllm_mcp_tasks WHERE expires < %s", (self._clock(),))

    async def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        if not task_ids:
            return {}
        rows = await self._rows("SELECT id, status FROM vllm_mcp_tasks WHERE id = ANY(%s)", (task_ids,))
        return dict(rows)

    async def touch(self, task_ids: list[str], messages: Mapping[str, str] | None = None) -> None:
        if not task_ids:
            return
        now, notes = self._clock(), dict(messages or {})

        async def write(conn: Conn) -> None:
            async with conn.transaction():  # one commit for the lease and the messages
                lease = f"UPDATE vllm_mcp_tasks SET updated = %s WHERE id = ANY(%s) AND {LIVE_SQL}"
                await conn.execute(lease, (now, task_ids))
                if notes:
                    await conn.execute(
                        "UPDATE vllm_mcp_tasks AS t SET message = m.message "
                        "FROM unnest(%s::text[], %s::text[]) AS m(id, message) "
                        f"WHERE t.id = m.id AND t.{LIVE_SQL}",
                        (list(notes), list(notes.values())),
                    )

        await self._run(write)

    async def fail_stale(self, task_id: str, before: float, message: str) -> bool:
        n = await self._count(
            "UPDATE vllm_mcp_tasks SET status = 'failed', message = %s, updated = %s "
            f"WHERE id = %s AND {LIVE_SQL} AND updated < %s",
            (message, self._clock(), task_id, before),
        )
        return bool(n)

    async def fail_live(self, owner: str, message: str) -> int:
        return await self._count(
            "UPDATE vllm_mcp_tasks SET status = 'failed', message = %s, updated = %s "
            f"WHERE owner = %s AND {LIVE_SQL}",
            (message, self._clock(), owner),
        )

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
