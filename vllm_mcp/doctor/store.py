"""The session store of ``VLLM_MCP_SESSION_STORE``: reachable, and of a schema this version knows.

Read-only: the SQLite file is opened read-only, PostgreSQL only queried, so ``doctor`` never
creates a schema or a file (``serve`` does that on its first start).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from vllm_mcp.config.settings import Settings
from vllm_mcp.config.store_location import parse_location
from vllm_mcp.doctor.report import Check
from vllm_mcp.errors import SessionStoreError


@dataclass
class StoreFacts:
    version: int | None
    """The schema version found; None: no schema yet (made on the first start)."""
    sessions: int = 0


def check_store(s: Settings) -> Check:
    if s.session_store is None:
        return Check(
            "sessions",
            "ok",
            "in memory: lost when the server stops, not shared with other servers "
            "(VLLM_MCP_SESSION_STORE keeps them)",
        )
    where = parse_location(s.session_store)
    try:
        if where.kind == "sqlite":
            assert where.path is not None
            facts, known = _sqlite_facts(where.path), _sqlite_version()
        else:
            assert where.url is not None
            facts, known = asyncio.run(_postgres_facts(where.url, s)), _postgres_version()
    except SessionStoreError as e:
        return Check("sessions", "fail", str(e), _fix(where.kind), {"store": where.display})
    details = {"store": where.display, "schema_version": facts.version, "sessions": facts.sessions}
    if facts.version is None:
        return Check(
            "sessions",
            "ok",
            f"{where.display}: reachable; no schema yet (made on the first start)",
            details=details,
        )
    if facts.version > known:
        return Check(
            "sessions",
            "fail",
            f"{where.display}: schema version {facts.version}, newer than this vllm-mcp knows ({known})",
            "upgrade vllm-mcp, or point VLLM_MCP_SESSION_STORE at another store",
            details,
        )
    return Check(
        "sessions",
        "ok",
        f"{where.display}: schema version {facts.version}, {facts.sessions} sessions",
        details=details,
    )


def _fix(kind: str) -> str:
    if kind == "sqlite":
        return "make VLLM_MCP_SESSION_STORE a file this user can create and write"
    return (
        "start PostgreSQL or fix the URL in VLLM_MCP_SESSION_STORE; the password goes in "
        "VLLM_MCP_SESSION_STORE_PASSWORD_FILE or PGPASSFILE"
    )


def _sqlite_version() -> int:
    from vllm_mcp.sessions.sqlite import SCHEMA_VERSION

    return SCHEMA_VERSION


def _postgres_version() -> int:
    from vllm_mcp.sessions.postgres import SCHEMA_VERSION

    return SCHEMA_VERSION


def _sqlite_facts(path: Path) -> StoreFacts:
    if path.is_dir():
        raise SessionStoreError(f"{path} is a directory; VLLM_MCP_SESSION_STORE must name a file")
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise SessionStoreError(f"{path} does not exist and {parent} is not writable by this user")
        return StoreFacts(None)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            sessions = (
                db.execute("SELECT count(*) FROM sessions").fetchone()[0] if "sessions" in tables else 0
            )
        finally:
            db.close()
    except sqlite3.Error as e:
        raise SessionStoreError(f"cannot read {path}: {e}") from None
    return StoreFacts(version or None, sessions)


async def _postgres_facts(url: str, s: Settings) -> StoreFacts:
    import psycopg

    from vllm_mcp.sessions.postgres import CONNECT_TIMEOUT_S, read_password

    kwargs: dict[str, object] = {"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": True}
    password = read_password(s.session_store_password_file)
    if password is not None:
        kwargs["password"] = password
    try:
        async with await psycopg.AsyncConnection.connect(url, **kwargs) as conn:  # type: ignore[arg-type]
            cur = await conn.execute("SELECT to_regclass('vllm_mcp_schema') IS NOT NULL")
            if not (await cur.fetchone() or (False,))[0]:
                return StoreFacts(None)
            version = (
                await (await conn.execute("SELECT max(version) FROM vllm_mcp_schema")).fetchone() or (None,)
            )[0]
            cur = await conn.execute("SELECT count(*) FROM vllm_mcp_sessions")
            return StoreFacts(version, (await cur.fetchone() or (0,))[0])
    except psycopg.Error as e:
        reason = " ".join(str(e).split())
        raise SessionStoreError(f"cannot reach the session store {url}: {reason}") from None
