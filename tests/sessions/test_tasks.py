"""The task stores: memory, SQLite, and PostgreSQL on a real server (tests/postgres.py).

Each test runs on every backend, with a hand-moved clock for the TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.sessions import open_task_store
from vllm_mcp.sessions.tasks import MemoryTaskStore, TaskStore
from vllm_mcp.sessions.tasks_postgres import PostgresTaskStore
from vllm_mcp.sessions.tasks_sqlite import SqliteTaskStore


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[Clock], Any]:
    """An async context factory: the backend under test, opened, with the given clock."""
    kind = request.param
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None

    def factory(clock: Clock) -> Any:
        import contextlib

        @contextlib.asynccontextmanager
        async def opened() -> AsyncIterator[TaskStore]:
            store: TaskStore
            if kind == "memory":
                store = MemoryTaskStore(clock)
            elif kind == "sqlite":
                store = SqliteTaskStore(tmp_path / "s.db", clock)
            else:
                assert url is not None
                store = PostgresTaskStore(url, None, clock)
            await store.open()
            try:
                yield store
            finally:
                await store.aclose()

        return opened()

    return factory


def test_a_task_is_created_working_and_read_back_by_its_caller_only(make: Any) -> None:
    async def scenario() -> None:
        async with make(Clock()) as store:
            a = await store.create("alice", 60.0, owner="r1")
            b = await store.create(None, None)
            assert a.status == "working" and a.task_id != b.task_id and len(a.task_id) >= 32
            got = await store.get("alice", a.task_id)
            assert got is not None and got.status == "working" and got.ttl == 60.0 and got.owner == "r1"
            assert await store.get("bob", a.task_id) is None  # another caller: not found
            assert await store.get(None, a.task_id) is None  # nor the anonymous one
            assert (await store.get(None, b.task_id)) is not None
            assert await store.get("alice", "no-such-task") is None

    run(scenario())


def test_terminal_statuses_never_change(make: Any) -> None:
    async def scenario() -> None:
        async with make(Clock()) as store:
            t = await store.create("c", 60.0)
            assert await store.update(t.task_id, message="12 tokens so far")
            result = {"content": [{"type": "text", "text": "hi"}], "isError": False}
            assert await store.update(t.task_id, status="completed", result=result)
            assert not await store.update(t.task_id, status="cancelled")
            assert not await store.update(t.task_id, message="late")
            got = await store.get("c", t.task_id)
            assert got is not None and got.status == "completed" and got.result == result
            assert got.message == "12 tokens so far" and got.terminal

    run(scenario())


def test_a_result_with_nul_is_stored_and_postgres_keeps_u_fffd_in_its_place(
    make: Any, request: pytest.FixtureRequest
) -> None:
    """A model may generate U+0000; PostgreSQL's jsonb cannot hold it (it failed the task)."""
    text = "a\x00b \\u0000 stays"  # and an escaped backslash before "u0000" is text, kept

    async def scenario() -> None:
        async with make(Clock()) as store:
            t = await store.create("c", 60.0)
            result = {"content": [{"type": "text", "text": text}], "isError": False}
            assert await store.update(t.task_id, status="completed", result=result)
            got = await store.get("c", t.task_id)
            assert got is not None and got.status == "completed"
            stored = got.result["content"][0]["text"]
            postgres = request.node.callspec.params["make"] == "postgres"
            assert stored == (text.replace("\x00", "\ufffd") if postgres else text)

    run(scenario())


def test_expired_tasks_read_as_gone_and_are_purged(make: Any) -> None:
    async def scenario() -> None:
        clock = Clock()
        async with make(clock) as store:
            short = await store.create("c", 10.0)
            kept = await store.create("c", None)
            clock.now += 11
            assert await store.get("c", short.task_id) is None
            assert not await store.update(short.task_id, status="completed")
            assert await store.get("c", kept.task_id) is not None
            assert await store.purge() == 1
            assert (await store.counts())["working"] == 1

    run(scenario())


def test_list_pages_through_the_callers_own_tasks_in_creation_order(make: Any) -> None:
    async def scenario() -> None:
        async with make(Clock()) as store:
            mine = [(await store.create("me", 60.0)).task_id for _ in range(5)]
            await store.create("other", 60.0)
            seen: list[str] = []
            cursor = None
            while True:
                page, cursor = await store.page("me", cursor, 2)
                seen += [r.task_id for r in page]
                if cursor is None:
                    break
            assert seen == mine
            assert (await store.page("nobody", None, 10)) == ([], None)

    run(scenario())


def test_live_counts_and_failing_an_owners_tasks(make: Any) -> None:
    async def scenario() -> None:
        async with make(Clock()) as store:
            a = await store.create("c", 60.0, owner="r1")
            b = await store.create("c", 60.0, owner="r1")
            await store.create("c", 60.0, owner="r2")
            await store.update(a.task_id, status="completed", result={"content": []})
            assert await store.live("c") == 2
            assert await store.fail_live("r1", "the server stopped") == 1
            got = await store.get("c", b.task_id)
            assert got is not None and got.status == "failed" and got.message == "the server stopped"
            counts = await store.counts()
            assert counts == {"working": 1, "input_required": 0, "completed": 1, "failed": 1, "cancelled": 0}

    run(scenario())


def test_the_sqlite_store_is_shared_by_processes_on_the_file(tmp_path: Path) -> None:
    """A second opener (another server process on the host) sees and may end the task."""

    async def scenario() -> None:
        first, second = SqliteTaskStore(tmp_path / "s.db"), SqliteTaskStore(tmp_path / "s.db")
        await first.open()
        await second.open()
        try:
            t = await first.create("c", 60.0)
            assert await second.update(t.task_id, status="cancelled", message="cancelled by the client")
            got = await first.get("c", t.task_id)
            assert got is not None and got.status == "cancelled"
        finally:
            await first.aclose()
            await second.aclose()

    run(scenario())


def test_open_task_store_follows_the_session_store_setting(tmp_path: Path) -> None:
    async def kinds() -> list[str]:
        out = []
        for env in ({}, {"VLLM_MCP_SESSION_STORE": str(tmp_path / "x.db")}):
            store = await open_task_store(Settings.load(environ=env))
            out.append(store.kind)
            await store.aclose()
        return out

    assert run(kinds()) == ["memory", "sqlite"]


def test_touch_renews_the_lease_and_fail_stale_ends_only_a_stale_live_task(make: Any) -> None:
    async def scenario() -> None:
        clock = Clock()
        async with make(clock) as store:
            t = await store.create("c", None)
            done = await store.create("c", None)
            await store.update(done.task_id, status="completed", result={"content": []})
            clock.now += 10
            # The lease, and status messages in the same write: an ended task keeps its own.
            await store.touch([t.task_id, done.task_id], {t.task_id: "generating: 5", done.task_id: "late"})
            mid = await store.get("c", t.task_id)
            assert mid is not None and mid.message == "generating: 5" and mid.updated == clock.now
            ended = await store.get("c", done.task_id)
            assert ended is not None and ended.message is None
            assert not await store.fail_stale(t.task_id, clock.now - 5, "dead")  # renewed: not stale
            clock.now += 10
            assert await store.fail_stale(t.task_id, clock.now - 5, "dead")
            assert not await store.fail_stale(done.task_id, clock.now + 1, "dead")  # terminal stays
            got = await store.get("c", t.task_id)
            assert got is not None and got.status == "failed" and got.message == "dead"
            assert await store.statuses([t.task_id, done.task_id, "gone"]) == {
                t.task_id: "failed",
                done.task_id: "completed",
            }

    run(scenario())
