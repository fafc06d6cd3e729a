"""The session stores' test scenarios: a ``Backend`` opens stores of one kind on one location.

The ``backend`` fixture (tests/sessions/conftest.py) parametrizes it over memory, SQLite and a
real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import PostgresServer
from vllm_mcp.sessions import MemorySessionStore, SessionStore, SqliteSessionStore


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


class Clock:
    """A clock the TTL tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Opens stores of one kind on one shared location, and closes them after the scenario."""

    def __init__(self, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.path = tmp_path / "sessions.db"
        self.url = request.getfixturevalue("postgres_url") if kind == "postgres" else ""
        self.server: PostgresServer | None = (
            request.getfixturevalue("postgres_server") if kind == "postgres" else None
        )
        self._opened: list[SessionStore] = []

    @property
    def shared(self) -> bool:
        return self.kind != "memory"

    async def open(self, max_sessions: int = 10, max_messages: int = 10, **kw: Any) -> SessionStore:
        store: SessionStore
        if self.kind == "memory":
            store = MemorySessionStore(max_sessions, max_messages, **kw)
        elif self.kind == "sqlite":
            store = SqliteSessionStore(self.path, max_sessions, max_messages, **kw)
        else:
            from vllm_mcp.sessions.postgres import PostgresSessionStore

            store = PostgresSessionStore(self.url, None, max_sessions, max_messages, **kw)
        await store.open()
        self._opened.append(store)
        return store

    def run(self, scenario: Callable[[], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            try:
                return await asyncio.wait_for(scenario(), 120)
            finally:
                for store in self._opened:
                    await store.aclose()

        return asyncio.run(main())
