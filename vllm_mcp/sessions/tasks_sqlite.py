"""Tasks in the sessions' SQLite file: a ``tasks`` table, its own connection and thread.

The same file as the sessions (one host, every server process on it sees every task), WAL
and ``synchronous=FULL`` as there, so a task is on disk before its handle is returned. A
terminal task never changes: every update says ``AND status IN ('working','input_required')``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from vllm_mcp.errors import SessionStoreError, SessionStoreFailed
from vllm_mcp.sessions.sqlite import BUSY_TIMEOUT_MS
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

_TABLE = (
    "CREATE TABLE IF NOT EXISTS tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, "
    "caller TEXT NOT NULL, status TEXT NOT NULL, message TEXT, result TEXT, created REAL NOT NULL, "
    "updated REAL NOT NULL, expires REAL, owner TEXT)",
    "CREATE INDEX IF NOT EXISTS tasks_caller ON tasks (caller, seq)",
    "CREATE INDEX IF NOT EXISTS tasks_expires ON tasks (expires)",
)


class SqliteTaskStore(TaskStore):
    kind = "sqlite"
    shared = True

    def __init__(self, path: Path, clock: Callable[[], float] | None = None) -> None:
        super().__init__(*(() if clock is None else (clock,)))
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tasks-sqlite")
        self._db: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._db = await loop.run_in_executor(self._thread, self._connect)
        except (sqlite3.Error, OSError) as e:
            raise SessionStoreError(f"cannot open the task store {self.path}: {e}") from None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            for sql in _TABLE:
                db.execute(sql)
        except BaseException:
            db.close()
            raise
        return db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise SessionStoreFailed("the sqlite task store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)
        except sqlite3.Error as e:
            log.error("task store failed", extra={"store": self.name, "error": str(e)})
            raise SessionStoreFailed(f"the sqlite task store failed ({e}); try again") from None

    async def create(self, caller: str | None, ttl: float | None, owner: str | None = None) -> TaskRecord:
        r = self.new_record(caller, ttl, owner)
        expires = None if ttl is None else r.created + ttl

        def insert(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM tasks WHERE expires < ?", (r.created,))
            cur = db.execute(
                "INSERT INTO tasks (id, caller, status, message, result, created, updated, expires, owner) "
                "VALUES (?, ?, ?, NULL, NULL, ?, ?, ?, ?)",
                (r.task_id, r.caller, r.status, r.created, r.updated, expires, owner),
            )
            return int(cur.lastrowid or 0)

        seq = await self._run(insert)
        return TaskRecord(**{**r.__dict__, "seq": seq})

    async def get(self, caller: str | None, task_id: str) -> TaskRecord | None:
        now = self._clock()
        row = await self._run(
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE id = ? AND caller = ? "
                "AND (expires IS NULL OR expires >= ?)",
                (task_id, caller_key(caller), now),
            ).fetchone()
        )
        return None if row is None else record_from_row(row, json.loads)

    async def update(
        self,
        task_id: str,
        *,
        status: TaskStatus | None = None,
        message: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        now = self._clock()
        encoded = None if result is None else json.dumps(result)
        n = await self._run(
            lambda db: (
                db.execute(
                    "UPDATE tasks SET status = coalesce(?, status), message = coalesce(?, message), "
                    f"result = coalesce(?, result), updated = ? WHERE id = ? AND {LIVE_SQL} "
                    "AND (expires IS NULL OR expires >= ?)",
                    (status, message, encoded, now, task_id, now),
                ).rowcount
            )
        )
        return bool(n)

    async def page(
        self, caller: str | None, after: int | None, limit: int
    ) -> tuple[list[TaskRecord], int | None]:
        now = self._clock()
        rows = await self._run(
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE caller = ? AND seq > ? "
                "AND (expires IS NULL OR expires >= ?) ORDER BY seq LIMIT ?",
                (caller_key(caller), after or 0, now, limit + 1),
            ).fetchall()
        )
        records = [record_from_row(r, json.loads) for r in rows[:limit]]
        return records, (records[-1].seq if len(rows) > limit else None)

    async def live(self, caller: str | None) -> int:
        now = self._clock()
        return int(
            await self._run(
                lambda db: db.execute(
                    f"SELECT count(*) FROM tasks WHERE caller = ? AND {LIVE_SQL} "
                    "AND (expires IS NULL OR expires >= ?)",
                    (caller_key(caller), now),
                ).fetchone()[0]
            )
        )

    async def counts(self) -> dict[str, int]:
        now = self._clock()
        rows = await self._run(
            lambda db: db.execute(
                "SELECT status, count(*) FROM tasks WHERE expires IS NULL OR expires >= ? GROUP BY status",
                (now,),
            ).fetchall()
        )
        return {**dict.fromkeys(STATUSES, 0), **dict(rows)}

    async def purge(self) -> int:
        now = self._clock()
        return int(
            await self._run(lambda db: db.execute("DELETE FROM tasks WHERE expires < ?", (now,)).rowcount)
        )

    async def statuses(self, task_ids: list[str]) -> dict[str, TaskStatus]:
        if not task_ids:
            return {}
        marks = ", ".join("?" * len(task_ids))
        rows = await self._run(
            lambda db: db.execute(f"SELECT id, status FROM tasks WHERE id IN ({marks})", task_ids).fetchall()
        )
        return dict(rows)

    async def touch(self, task_ids: list[str], messages: Mapping[str, str] | None = None) -> None:
        if not task_ids:
            return
        now, marks = self._clock(), ", ".join("?" * len(task_ids))
        notes = [(m, task_id) for task_id, m in (messages or {}).items()]

        def write(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")  # one commit (one fsync) for the lease and the messages
            try:
                lease = f"UPDATE tasks SET updated = ? WHERE id IN ({marks}) AND {LIVE_SQL}"
                db.execute(lease, (now, *task_ids))
                db.executemany(f"UPDATE tasks SET message = ? WHERE id = ? AND {LIVE_SQL}", notes)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(write)

    async def fail_stale(self, task_id: str, before: float, message: str) -> bool:
        now = self._clock()
        n = await self._run(
            lambda db: (
                db.execute(
                    "UPDATE tasks SET status = 'failed', message = ?, updated = ? "
                    f"WHERE id = ? AND {LIVE_SQL} AND updated < ?",
                    (message, now, task_id, before),
                ).rowcount
            )
        )
        return bool(n)

    async def fail_live(self, owner: str, message: str) -> int:
        now = self._clock()
        return int(
            await self._run(
                lambda db: (
                    db.execute(
                        "UPDATE tasks SET status = 'failed', message = ?, updated = ? "
                        f"WHERE owner = ? AND {LIVE_SQL}",
                        (message, now, owner),
                    ).rowcount
                )
            )
        )

    async def aclose(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, db.close)
        self._thread.shutdown(wait=False)
