"""Sessions in a SQLite file (WAL): one host, any number of server processes on it.

The file is the truth; nothing is cached in memory, so a turn another process recorded is
in the next read. Each turn is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock,
across processes) that reads the stored history, merges the turn and writes the row back;
``synchronous=FULL`` makes it durable before the caller's response is sent, so a crash
loses at most the turn in flight. The blocking ``sqlite3`` calls run on one worker thread,
off the event loop, one after another (one connection, used by one thread at a time).

Schema version 2 is today's table ``sessions`` (version 1, ``PRAGMA user_version = 1``) plus
the table ``schema_version``; a version-1 file is upgraded in place and keeps its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from vllm_mcp.errors import SessionStoreError, SessionStoreFailed
from vllm_mcp.private_files import create_private_file
from vllm_mcp.sessions.base import SEPARATOR, Message, SessionStore, caller_of_key, decode_messages, truncate

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 2
_TABLES = (
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
    "created REAL NOT NULL, updated REAL NOT NULL, messages TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_seq ON sessions (seq)",
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
)
BUSY_TIMEOUT_MS = 10_000
"""How long a turn waits for another process's transaction before it fails."""


class SqliteSessionStore(SessionStore):
    kind = "sqlite"

    def __init__(self, path: Path, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sessions-sqlite")
        self._db: sqlite3.Connection | None = None

    @property
    def name(self) -> str:
        return str(self.path)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the worker thread; a database failure is ``SessionStoreFailed`` naming the store kind."""
        db = self._db
        if db is None:
            raise SessionStoreFailed("the sqlite session store is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, db)
        except sqlite3.Error as e:
            log.error("session store failed", extra={"store": self.name, "error": str(e)})
            raise SessionStoreFailed(
                # The caller is told the store's kind, never its path (the log names it).
                f"the sqlite session store failed ({e}); nothing of this turn was recorded, send it again"
            ) from None

    # --- open -----------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._thread, self._open)
        await self._run(self._trim)
        log.info("session store opened", extra={"store": self.name, "sessions": await self.count()})

    def _open(self) -> sqlite3.Connection:
        path = self.path
        if path.is_dir():
            raise SessionStoreError(f"VLLM_MCP_SESSION_STORE={path} is a directory; give a file path")
        try:
            # 0600 in a 0700 directory: SQLite gives -wal and -shm the database file's mode.
            create_private_file(path)
            return self._connect(path)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):
                raise SessionStoreError(f"cannot open session store {path}: {e}") from None
            # Not a database (or damaged beyond use): keep it for inspection, start afresh.
            # Refusing to start would turn one bad file into an outage.
            aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    src.replace(Path(str(aside) + suffix))
            create_private_file(path)
            log.error(
                "session store unreadable; moved aside, starting with no sessions",
                extra={"path": str(path), "moved_to": str(aside), "error": str(e)},
            )
            return self._connect(path)
        except OSError as e:
            raise SessionStoreError(f"cannot open session store {path}: {e.strerror or e}") from None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.DatabaseError(f"journal_mode is {mode}, not wal")
            db.execute("PRAGMA synchronous = FULL")
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {problem}")
            db.execute("BEGIN IMMEDIATE")  # two processes starting at once create it once
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise SessionStoreError(
                        f"session store {path} has schema version {version}, newer than this "
                        f"vllm-mcp knows ({SCHEMA_VERSION}); upgrade vllm-mcp or use another file"
                    )
                for sql in _TABLES:
                    db.execute(sql)
                if version < SCHEMA_VERSION:
                    db.execute("DELETE FROM schema_version")
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except BaseException:
            db.close()
            raise
        return db

    def _trim(self, db: sqlite3.Connection) -> None:
        """The limits may have been lowered since the file was written: evict the oldest."""
        with _immediate(db):
            (n,) = db.execute("SELECT count(*) FROM sessions").fetchone()
            if n > self.max_sessions:
                db.execute(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions ORDER BY seq LIMIT ?)",
                    (n - self.max_sessions,),
                )

    # --- the interface ------------------------------------------------------------------

    async def history(self, key: str) -> list[Message]:
        row = await self._run(
            lambda db: db.execute("SELECT messages, updated FROM sessions WHERE id = ?", (key,)).fetchone()
        )
        if row is None or self.is_expired(row[1]):
            return []
        return truncate(self._decode(key, row[0]), self.max_messages)

    def _decode(self, key: str, raw: str) -> list[Message]:
        try:
            return decode_messages(json.loads(raw))
        except ValueError:
            log.warning("unreadable session in the store; starting it afresh", extra={"store": self.name})
            return []

    async def append_turn(self, key: str, new: Sequence[Message], reply: Message) -> None:
        evicted = await self._run(lambda db: self._append(db, key, new, reply))
        self.evicted(evicted)

    def _append(self, db: sqlite3.Connection, key: str, new: Sequence[Message], reply: Message) -> list[str]:
        now = self._clock()
        with _immediate(db):
            row = db.execute("SELECT messages, updated FROM sessions WHERE id = ?", (key,)).fetchone()
            if row is not None and not self.is_expired(row[1]):
                messages = self.merged(self._decode(key, row[0]), new, reply)
                db.execute(
                    "UPDATE sessions SET messages = ?, updated = ? WHERE id = ?",
                    (json.dumps(messages), now, key),
                )
                return []
            db.execute("DELETE FROM sessions WHERE id = ?", (key,))
            cutoff = self.expired_before()
            if cutoff is not None:
                db.execute("DELETE FROM sessions WHERE updated < ?", (cutoff,))
            (n,) = db.execute("SELECT count(*) FROM sessions").fetchone()
            mine, params = _mine(caller_of_key(key))
            (own_n,) = db.execute(f"SELECT count(*) FROM sessions WHERE {mine}", params).fetchone()
            own, oldest = self.to_evict(own_n, n)
            evicted = [
                r[0]
                for r in db.execute(
                    f"SELECT id FROM sessions WHERE {mine} ORDER BY seq LIMIT ?", (*params, own)
                )
            ]
            evicted += [
                r[0]
                for r in db.execute(
                    "SELECT id FROM sessions WHERE id NOT IN (SELECT value FROM json_each(?)) "
                    "ORDER BY seq LIMIT ?",
                    (json.dumps(evicted), oldest),
                )
            ]
            db.executemany("DELETE FROM sessions WHERE id = ?", [(k,) for k in evicted])
            (seq,) = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM sessions").fetchone()
            db.execute(
                "INSERT INTO sessions (id, seq, created, updated, messages) VALUES (?, ?, ?, ?, ?)",
                (key, seq, now, now, json.dumps(self.merged([], new, reply))),
            )
            return evicted

    async def end(self, key: str) -> bool:
        def delete(db: sqlite3.Connection) -> float | None:
            with _immediate(db):
                row = db.execute("SELECT updated FROM sessions WHERE id = ?", (key,)).fetchone()
                db.execute("DELETE FROM sessions WHERE id = ?", (key,))
            return None if row is None else row[0]

        updated = await self._run(delete)
        return updated is not None and not self.is_expired(updated)

    async def count(self) -> int:
        cutoff = self.expired_before() or float("-inf")
        return await self._run(
            lambda db: db.execute("SELECT count(*) FROM sessions WHERE updated >= ?", (cutoff,)).fetchone()[0]
        )

    async def aclose(self) -> None:
        """Checkpoint the WAL into the main file, so the store is one file again."""
        db, self._db = self._db, None
        if db is not None:

            def close() -> None:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                db.close()

            await asyncio.get_running_loop().run_in_executor(self._thread, close)
        self._thread.shutdown(wait=False)


def _mine(caller: str) -> tuple[str, tuple[object, ...]]:
    """A condition on ``id`` matching one caller's sessions, and its parameters."""
    if not caller:
        return "instr(id, char(31)) = 0", ()
    prefix = caller + SEPARATOR
    return "substr(id, 1, ?) = ?", (len(prefix), prefix)


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, SQLite's database-wide lock held from the start."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
