"""Conversation history per ``session_id``: one interface, three backends.

``SessionStore`` (base.py) is what the tools use and what every backend shares (how a turn
merges, truncation, the in-process lock); ``memory.py`` keeps sessions in this process,
``sqlite.py`` in a SQLite file (one host, several processes), ``postgres.py`` in PostgreSQL
(several hosts). ``open_store`` opens what the settings name (``VLLM_MCP_SESSION_STORE``,
parsed by ``vllm_mcp.config.store_location``); the PostgreSQL driver is imported only when a
URL asks for it.

The interface (stable; every method but ``lock`` is a coroutine)::

    store = await open_store(settings, on_evict)   # SessionStoreError: cannot be used at start
    async with store.lock(key): ...                # this process's calls on a session, in order
    await store.history(key) -> list[Message]      # [] for unknown or expired
    await store.append_turn(key, new, reply)       # one committed transaction, merged onto
                                                   # the stored history (any server's turns)
    await store.end(key) -> bool;  await store.count() -> int;  await store.aclose()

May import: ``vllm_mcp.config``, ``vllm_mcp.errors``, ``vllm_mcp.logging``, ``vllm_mcp.metrics``;
never the engine, the tools or the protocol (checked by ``lint-imports``).

Both failures are in ``vllm_mcp.errors``. During a call a failing store raises
``SessionStoreFailed`` naming the store (the tools turn it into their
``SessionStoreUnavailable``); ``store.name`` is how to name it (never with a password).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vllm_mcp.config.store_location import parse_location
from vllm_mcp.sessions.base import (
    EvictHook,
    Message,
    SessionStore,
    merge_turn,
    truncate,
)
from vllm_mcp.sessions.memory import MemorySessionStore
from vllm_mcp.sessions.sqlite import SqliteSessionStore
from vllm_mcp.sessions.tasks import MemoryTaskStore, TaskStore

if TYPE_CHECKING:
    from vllm_mcp.config.settings import Settings

__all__ = [
    "MemorySessionStore",
    "Message",
    "SessionStore",
    "SqliteSessionStore",
    "TaskStore",
    "make_store",
    "make_task_store",
    "merge_turn",
    "open_store",
    "open_task_store",
    "truncate",
]


def make_store(settings: Settings, on_evict: EvictHook = lambda n: None) -> SessionStore:
    """The store the settings name, not yet opened."""
    limits = (settings.max_sessions, settings.max_session_messages)
    kw = {
        "ttl": settings.session_ttl,
        "on_evict": on_evict,
        "max_per_caller": settings.max_sessions_per_caller,
    }
    if settings.session_store is None:
        return MemorySessionStore(*limits, **kw)
    where = parse_location(settings.session_store)
    if where.kind == "postgres":
        from vllm_mcp.sessions.postgres import PostgresSessionStore

        assert where.url is not None
        return PostgresSessionStore(where.url, settings.session_store_password_file, *limits, **kw)
    assert where.path is not None
    return SqliteSessionStore(where.path, *limits, **kw)


async def open_store(settings: Settings, on_evict: EvictHook = lambda n: None) -> SessionStore:
    """The store the settings name, opened; ``SessionStoreError`` if it cannot be used."""
    store = make_store(settings, on_evict)
    try:
        await store.open()
    except BaseException:
        await store.aclose()
        raise
    return store


def make_task_store(settings: Settings) -> TaskStore:
    """The task store beside the sessions the settings name (sessions/tasks.py), not yet opened."""
    if settings.session_store is None:
        return MemoryTaskStore()
    where = parse_location(settings.session_store)
    if where.kind == "postgres":
        from vllm_mcp.sessions.tasks_postgres import PostgresTaskStore

        assert where.url is not None
        return PostgresTaskStore(where.url, settings.session_store_password_file)
    from vllm_mcp.sessions.tasks_sqlite import SqliteTaskStore

    assert where.path is not None
    return SqliteTaskStore(where.path)


async def open_task_store(settings: Settings) -> TaskStore:
    """The task store, opened; ``SessionStoreError`` if it cannot be used."""
    store = make_task_store(settings)
    try:
        await store.open()
    except BaseException:
        await store.aclose()
        raise
    return store
