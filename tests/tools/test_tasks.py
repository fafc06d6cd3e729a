"""The task runner (no protocol): TTL granted, the task time budget, shutdown, per-caller limit."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.sessions.tasks import MemoryTaskStore, TaskStore
from vllm_mcp.sessions.tasks_postgres import PostgresTaskStore
from vllm_mcp.sessions.tasks_sqlite import SqliteTaskStore
from vllm_mcp.tools import tasks as tasks_module
from vllm_mcp.tools.admission import COALESCE_TOKENS, ProgressRate
from vllm_mcp.tools.tasks import (
    STATUS_INTERVAL_S,
    Outcome,
    TaskLimitReached,
    TaskProgress,
    TaskRunner,
    report_floor,
    task_time_limit,
)


def runner(per_caller: int = 4) -> TaskRunner:
    return TaskRunner(MemoryTaskStore(), ttl=600.0, max_seconds=900.0, per_caller=per_caller)


def test_the_ttl_granted_is_the_clients_capped_at_the_setting() -> None:
    r = runner()
    assert r.granted_ttl(None) == 600.0 and r.granted_ttl(0) == 600.0
    assert r.granted_ttl(30_000) == 30.0 and r.granted_ttl(10_000_000) == 600.0


def test_a_task_call_gets_the_task_time_budget_not_the_call_budget() -> None:
    tools = tools_over(
        FakeEngine(loaded=True), VLLM_MCP_MAX_CALL_SECONDS="20", VLLM_MCP_MAX_TASK_SECONDS="900"
    )
    assert tools.time_budget(None) == 20.0 and tools.time_budget(5) == 5
    ctx = contextvars.copy_context()
    ctx.run(task_time_limit.set, tools.settings.max_task_seconds)
    assert ctx.run(tools.time_budget, None) == 900.0
    assert ctx.run(tools.time_budget, 100) == 100  # a call's own timeout_s may still ask for less


def test_shutdown_fails_running_tasks_with_the_reason_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        r = runner()
        started = asyncio.Event()

        async def forever(progress: TaskProgress) -> Outcome:
            started.set()
            await asyncio.Event().wait()
            raise AssertionError("not reached")

        record = await r.start("c", None, forever)
        await started.wait()
        await r.drain(0)
        got = await r.store.get("c", record.task_id)
        assert got is not None and got.status == "failed" and "shut down" in (got.message or "")
        with pytest.raises(Exception, match="shutting down"):
            await r.start("c", None, forever)

    asyncio.run(scenario())


def test_the_per_caller_limit_counts_live_tasks_only() -> None:
    async def scenario() -> None:
        r = runner(per_caller=1)
        gate = asyncio.Event()

        async def held(progress: TaskProgress) -> Outcome:
            await gate.wait()
            return Outcome("completed", None, {"content": []})

        first = await r.start("c", None, held)
        with pytest.raises(TaskLimitReached, match="VLLM_MCP_MAX_TASKS_PER_CALLER=1"):
            await r.start("c", None, held)
        await r.start("other", None, held)  # another caller has its own allowance
        gate.set()
        done = await r.wait("c", first.task_id)
        assert done is not None and done.status == "completed"
        await r.start("c", None, held)

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_cancel_made_on_another_server_stops_the_call_here(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two runners on one shared store, as two replicas: B cancels, A (which runs it) stops it."""

    def store() -> TaskStore:
        if kind == "sqlite":
            return SqliteTaskStore(tmp_path / "shared.db")
        return PostgresTaskStore(request.getfixturevalue("postgres_url"), None)

    async def scenario() -> None:
        a_store, b_store = store(), store()
        await a_store.open()
        await b_store.open()
        a = TaskRunner(a_store, ttl=600.0, max_seconds=900.0, per_caller=4)
        b = TaskRunner(b_store, ttl=600.0, max_seconds=900.0, per_caller=4)
        a.watch_interval = 0.05
        running, stopped = asyncio.Event(), asyncio.Event()

        async def generate(progress: TaskProgress) -> Outcome:
            running.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()
            raise AssertionError("not reached")

        try:
            record = await a.start("c", None, generate)
            await running.wait()
            on_b = await b.cancel("c", record.task_id)
            assert on_b is not None and on_b.status == "cancelled"
            await stopped.wait()  # A's watcher saw it and cancelled the call
            done = await a.wait("c", record.task_id)
            assert (
                done is not None and done.status == "cancelled" and done.message == "cancelled by the client"
            )
        finally:
            await a.aclose()
            await b.aclose()
            await a_store.aclose()
            await b_store.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 30))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_task_whose_server_died_ends_failed_saying_so_and_a_live_one_does_not(tmp_path: Path) -> None:
    """Two servers on one SQLite file: A runs tasks, B answers a client about them."""

    async def scenario() -> None:
        clock = Clock()
        a_store, b_store = (
            SqliteTaskStore(tmp_path / "s.db", clock),
            SqliteTaskStore(tmp_path / "s.db", clock),
        )
        await a_store.open()
        await b_store.open()
        a = TaskRunner(a_store, ttl=600.0, max_seconds=900.0, per_caller=4, lease=30.0)
        b = TaskRunner(b_store, ttl=600.0, max_seconds=900.0, per_caller=4, lease=30.0)

        async def forever(progress: TaskProgress) -> Outcome:
            await asyncio.Event().wait()
            raise AssertionError("not reached")

        try:
            a.watch_interval = 0.02  # A alive: renews its tasks' lease
            alive = await a.start("c", None, forever)
            clock.now += 31
            while (await b_store.get("c", alive.task_id)).updated < clock.now:  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
            got = await b.get("c", alive.task_id)
            assert got is not None and got.status == "working"

            a.watch_interval = 3600.0  # A "dies": nothing renews the lease any more
            assert a._watcher is not None
            a._watcher.cancel()
            a._watcher = asyncio.get_running_loop().create_task(a.watch(3600.0))
            clock.now += 29
            assert (await b.get("c", alive.task_id)).status == "working"  # type: ignore[union-attr]
            clock.now += 2
            dead = await b.get("c", alive.task_id)
            assert dead is not None and dead.status == "failed"
            assert "the server that ran this task stopped" in (dead.message or "")
            assert "VLLM_MCP_TASK_LEASE_SECONDS" in (dead.message or "")
        finally:
            await a.aclose()
            await b.aclose()
            await a_store.aclose()
            await b_store.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_model_info_answers_while_the_task_store_is_down() -> None:
    """model_info needs no store: a failing task store leaves the counts out (CI caught
    model_info failing while PostgreSQL restarted, once the counts were added)."""
    from vllm_mcp.errors import SessionStoreFailed

    tools = tools_over(FakeEngine(reply="x", model_name="double", loaded=True))

    async def down() -> dict[str, int]:
        raise SessionStoreFailed("the postgres task store is unavailable (PoolTimeout); try again")

    async def up() -> dict[str, int]:
        return {"working": 1}

    tools.task_counts = down
    assert asyncio.run(tools.model_info({})).tasks == {}
    tools.task_counts = up  # the control: a store that answers is counted
    assert asyncio.run(tools.model_info({})).tasks == {"working": 1}


def test_a_task_whose_progress_only_the_status_reads_lets_vllm_coalesce_its_outputs() -> None:
    rate = ProgressRate(interval=0.05, max_rate=0)
    rate.observe(tokens=100, seconds=1.0)  # one call decodes 100 tokens/s
    streamed = rate.output_interval(streams=True, budget_s=None)
    ctx = contextvars.copy_context()
    ctx.run(report_floor.set, STATUS_INTERVAL_S)
    status_only = ctx.run(rate.output_interval, True, None)
    # A client streaming at 50 ms wants an output every few tokens; a status read once a
    # second, half a second's worth (the most is what a call nobody streams gets).
    assert streamed == 2 and status_only == min(COALESCE_TOKENS, 50)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_with_a_shared_store_status_messages_are_written_with_the_lease(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write a second for all the tasks a server runs, seen by any reader of the store."""
    monkeypatch.setattr(tasks_module, "STATUS_INTERVAL_S", 0.0)

    def store() -> TaskStore:
        if kind == "sqlite":
            return SqliteTaskStore(tmp_path / "shared.db")
        return PostgresTaskStore(request.getfixturevalue("postgres_url"), None)

    async def scenario() -> None:
        mine, other = store(), store()
        await mine.open()
        await other.open()
        runner = TaskRunner(mine, ttl=600.0, max_seconds=900.0, per_caller=4)
        runner.watch_interval = 0.05
        gate = asyncio.Event()

        async def generate(progress: TaskProgress) -> Outcome:
            await progress.report("", 7, 100)
            await gate.wait()
            return Outcome("completed", "finished: 100 tokens", {"content": []})

        try:
            record = await runner.start("c", None, generate)
            while True:  # another replica's view, until the watcher's write lands
                seen = await other.get("c", record.task_id)
                assert seen is not None
                if seen.message:
                    break
                await asyncio.sleep(0.01)
            assert seen.message == "generating: 7 of at most 100 tokens" and seen.status == "working"
            gate.set()
            done = await runner.wait("c", record.task_id)
            assert done is not None and done.message == "finished: 100 tokens"
        finally:
            await runner.aclose()
            await mine.aclose()
            await other.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 30))
