"""Sessions in PostgreSQL: any number of servers on any number of hosts share them.

psycopg 3 with ``psycopg_pool``'s ``AsyncConnectionPool``: a connection is checked as it
leaves the pool, so after a database restart the broken ones are replaced and calls succeed
again without a server restart. Each turn is one transaction that takes a transaction-level
advisory lock on the session (two servers' turns on one session run one after the other,
the second merging onto the first), and creating a session also takes the store-wide
creation lock, so the ``VLLM_MAX_SESSIONS`` count and FIFO eviction hold across servers.

The password is never in the URL (``config/store_location.py`` refuses that): libpq reads ``PGPASSFILE``
itself, or ``VLLM_MCP_SESSION_STORE_PASSWORD_FILE`` is read here and passed to the
connection as a keyword, never logged.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from vllm_mcp.config.secret_file import read_secret_file
from vllm_mcp.errors import ConfigError, SessionStoreError, SessionStoreFailed
from vllm_mcp.sessions.base import SEPARATOR, Message, SessionStore, caller_of_key, decode_messages, truncate

log = logging.getLogger(__name__)
T = TypeVar("T")
Conn = psycopg.AsyncConnection[TupleRow]

SCHEMA_VERSION = 1
CONNECT_TIMEOUT_S = 5
"""libpq's connect_timeout: how long one connection attempt may take."""
POOL_TIMEOUT_S = 5.0
"""How long a call waits for a connection (the database restarting) before it fails."""
RECONNECT_TIMEOUT_S = 4.0
"""How long the pool retries (backing off 1, 2 s...) before the next call starts a fresh attempt:
short, so that a call made once the database is back is not left waiting on a long back-off."""
POOL_MAX = 8
# U+0000 escaped in JSON text, not preceded by another backslash (an escaped "\\u0000" is text).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def jsonb(value: Any) -> Jsonb:
    """``value`` for a jsonb column, U+0000 in its strings stored as U+FFFD.

    PostgreSQL's jsonb cannot hold U+0000, and a model may generate it (callers cannot send it:
    tools/limits.py refuses NUL in content). Without this, the turn the caller already received
    failed to be stored, after its generation; the SQLite and memory stores keep the character.
    """
    return Jsonb(value, dumps=lambda v: _NUL_ESCAPE.sub(r"\1\\ufffd", json.dumps(v)))


_CREATION_LOCK = (0x766D6370, 0)  # pg_advisory_xact_lock(int, int): "vmcp", 0; apart from the session locks
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS vllm_mcp_schema (version integer NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vllm_mcp_sessions ("
    " id text PRIMARY KEY,"
    " seq bigint GENERATED ALWAYS AS IDENTITY,"
    " created double precision NOT NULL,"
    " updated double precision NOT NULL,"
    " messages jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vllm_mcp_sessions_seq ON vllm_mcp_sessions (seq)",
    "CREATE INDEX IF NOT EXISTS vllm_mcp_sessions_updated ON vllm_mcp_sessions (updated)",
)


def read_password(path: Path | None) -> str | None:
    """The password file's secret (read as every secret file is); ``SessionStoreError`` names
    the file, never its content."""
    if path is None:
        return None
    try:
        return read_secret_file(path, "VLLM_MCP_SESSION_STORE_PASSWORD_FILE")
    except ConfigError as e:
        raise SessionStoreError(str(e)) from None


async def open_pool(
    url: str,
    password_file: Path | None,
    *,
    what: str,
    name: str,
    set_up: Callable[[Conn], Awaitable[None]],
    max_size: int,
) -> AsyncConnectionPool[Conn]:
    """A checked pool to ``url`` once ``set_up`` (the schema) has run on a first connection.

    That first connection is a direct attempt because its error says why (refused, auth, no such
    database), where a pool that cannot fill would only time out. ``what`` names the store in
    the ``SessionStoreError``; ``name`` is the pool's and the connections' application_name.
    """
    kwargs: dict[str, Any] = {
        "autocommit": True,  # transactions are explicit: conn.transaction()
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": name,
    }
    password = read_password(password_file)
    if password is not None:
        kwargs["password"] = password
    try:
        conn = await psycopg.AsyncConnection.connect(url, **kwargs)
    except psycopg.Error as e:
        raise SessionStoreError(f"cannot reach the {what} {url}: {_why(e)}") from None
    try:
        await set_up(conn)
    except psycopg.Error as e:
        raise SessionStoreError(f"cannot set up the {what} {url}: {_why(e)}") from None
    finally:
        await conn.close()
    pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
        url,
        kwargs=kwargs,
        min_size=1,
        max_size=max_size,
        open=False,
        check=AsyncConnectionPool.check_connection,
        timeout=POOL_TIMEOUT_S,
        reconnect_timeout=RECONNECT_TIMEOUT_S,
        name=name,
    )
    await pool.open(wait=True, timeout=POOL_TIMEOUT_S)
    return pool


class PostgresSessionStore(SessionStore):
    kind = "postgres"

    def __init__(self, url: str, password_file: Path | None, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
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
            what="session store",
            name="vllm-mcp-sessions",
            set_up=self._create_schema,
            max_size=POOL_MAX,
        )
        log.info("session store opened", extra={"store": self.url, "sessions": await self.count()})

    async def _create_schema(self, conn: Conn) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _CREATION_LOCK)
            for sql in _SCHEMA:
                await conn.execute(sql)
            rows = await (await conn.execute("SELECT version FROM vllm_mcp_schema")).fetchall()
            versions = [r[0] for r in rows]
            if not versions:
                await conn.execute("INSERT INTO vllm_mcp_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif max(versions) > SCHEMA_VERSION:
                raise SessionStoreError(
                    f"the session store {self.url} has schema version {max(versions)}, newer than "
                    f"this vllm-mcp knows ({SCHEMA_VERSION}); upgrade vllm-mcp or use another database"
                )
            cur = await conn.execute("SELECT count(*) FROM vllm_mcp_sessions")
            n = (await cur.fetchone() or (0,))[0]
            if n > self.max_sessions:  # the limit was lowered since
                await conn.execute(
                    "DELETE FROM vllm_mcp_sessions WHERE id IN "
                    "(SELECT id FROM vllm_mcp_sessions ORDER BY seq LIMIT %s)",
                    (n - self.max_sessions,),
                )

    async def _run(self, fn: Callable[[Conn], Awaitable[T]], transaction: bool = True) -> T:
        """``fn`` in one transaction (or, for one statement, none: two round trips fewer);
        a lost database is ``SessionStoreFailed`` naming the kind of store."""
        if self._pool is None:
            raise SessionStoreFailed("the postgres session store is closed")
        try:
            async with self._pool.connection() as conn:
                if not transaction:
                    return await fn(conn)
                async with conn.transaction():
                    return await fn(conn)
        except psycopg.Error as e:
            log.error("session store failed", extra={"store": self.url, "error": _why(e)})
            raise SessionStoreFailed(
                # The caller is told the store's kind and the error's class, never its URL or
                # host (libpq's message names them); the log has the whole reason.
                f"the postgres session store is unavailable ({type(e).__name__}); nothing of this turn "
                "was recorded, send it again"
            ) from None

    # --- the interface ------------------------------------------------------------------

    async def history(self, key: str) -> list[Message]:
        async def read(conn: Conn) -> tuple[Any, float] | None:
            cur = await conn.execute("SELECT messages, updated FROM vllm_mcp_sessions WHERE id = %s", (key,))
            return await cur.fetchone()

        row = await self._run(read, transaction=False)
        if row is None or self.is_expired(row[1]):
            return []
        return truncate(self._decode(row[0]), self.max_messages)

    def _decode(self, raw: object) -> list[Message]:
        try:
            return decode_messages(raw)
        except ValueError:
            log.warning("unreadable session in the store; starting it afresh", extra={"store": self.url})
            return []

    async def append_turn(self, key: str, new: Sequence[Message], reply: Message) -> None:
        async def write(conn: Conn) -> list[str]:
            now = self._clock()
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            cur = await conn.execute(
                "SELECT messages, updated FROM vllm_mcp_sessions WHERE id = %s FOR UPDATE", (key,)
            )
            row = await cur.fetchone()
            if row is not None and not self.is_expired(row[1]):
                messages = self.merged(self._decode(row[0]), new, reply)
                await conn.execute(
                    "UPDATE vllm_mcp_sessions SET messages = %s, updated = %s WHERE id = %s",
                    (jsonb(messages), now, key),
                )
                return []
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _CREATION_LOCK)
            cutoff = self.expired_before()
            if row is not None or cutoff is not None:
                await conn.execute(
                    "DELETE FROM vllm_mcp_sessions WHERE id = %s OR updated < %s",
                    (key, cutoff if cutoff is not None else float("-inf")),
                )
            mine, params = _mine(caller_of_key(key))
            cur = await conn.execute(
                f"SELECT count(*), count(*) FILTER (WHERE {mine}) FROM vllm_mcp_sessions", params
            )
            n, own_n = await cur.fetchone() or (0, 0)
            own, oldest = self.to_evict(own_n, n)
            evicted: list[str] = []
            for where, args, limit in ((mine, params, own), ("true", (), oldest)):
                if limit:  # the caller's own oldest first, then the oldest of all
                    cur = await conn.execute(
                        "DELETE FROM vllm_mcp_sessions WHERE id IN (SELECT id FROM vllm_mcp_sessions "
                        f"WHERE {where} ORDER BY seq LIMIT %s) RETURNING id",
                        (*args, limit),
                    )
                    evicted += [r[0] for r in await cur.fetchall()]
            await conn.execute(
                "INSERT INTO vllm_mcp_sessions (id, created, updated, messages) VALUES (%s, %s, %s, %s)",
                (key, now, now, jsonb(self.merged([], new, reply))),
            )
            return evicted

        self.evicted(await self._run(write))

    async def end(self, key: str) -> bool:
        async def delete(conn: Conn) -> list[tuple[float]]:
            cur = await conn.execute("DELETE FROM vllm_mcp_sessions WHERE id = %s RETURNING updated", (key,))
            return await cur.fetchall()

        rows = await self._run(delete, transaction=False)
        return bool(rows) and not self.is_expired(rows[0][0])

    async def count(self) -> int:
        cutoff = self.expired_before()

        async def count(conn: Conn) -> int:
            cur = await conn.execute(
                "SELECT count(*) FROM vllm_mcp_sessions WHERE updated >= %s",
                (cutoff if cutoff is not None else float("-inf"),),
            )
            return (await cur.fetchone() or (0,))[0]

        return await self._run(count, transaction=False)

    async def schema_version(self) -> int:
        async def version(conn: Conn) -> int:
            cur = await conn.execute("SELECT max(version) FROM vllm_mcp_schema")
            return (await cur.fetchone() or (0,))[0]

        return await self._run(version)

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


def _mine(caller: str) -> tuple[str, tuple[object, ...]]:
    """A condition on ``id`` matching one caller's sessions, and its parameters."""
    if not caller:
        return "strpos(id, chr(31)) = 0", ()
    prefix = caller + SEPARATOR
    return "left(id, %s) = %s", (len(prefix), prefix)


def _why(error: psycopg.Error) -> str:
    """libpq's reason in one line (it names host and port, never the password)."""
    return " ".join(str(error).split()) or type(error).__name__
