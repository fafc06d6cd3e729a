"""Per-caller fairness in every session store (memory, SQLite, a real PostgreSQL).

Issue 27, finding 3: on main (5c4395e) eviction at ``VLLM_MAX_SESSIONS`` was FIFO over all
callers, so one caller creating sessions erased everyone else's; there was no per-caller limit.
The PostgreSQL runs use the real server tests/postgres.py starts (``backend`` fixture).
"""

from __future__ import annotations

import pytest

from tests.support.stores import Backend, reply, user
from vllm_mcp.tools.limits import session_key


def key(caller: str | None, sid: str) -> str:
    k = session_key(caller, sid)
    assert k is not None
    return k


def test_a_full_store_evicts_the_creating_callers_own_oldest_first(backend: Backend) -> None:
    """Fails on main: bob's 'b0' and 'b1' were evicted (the oldest of all) instead of alice's."""
    evicted: list[int] = []

    async def scenario() -> None:
        store = await backend.open(max_sessions=4, on_evict=evicted.append)
        await store.append_turn(key("bob", "b0"), [user("b0")], reply("r"))
        await store.append_turn(key("bob", "b1"), [user("b1")], reply("r"))
        for i in range(10):  # alice fills the store and goes on creating
            await store.append_turn(key("alice", f"a{i}"), [user(f"a{i}")], reply("r"))
        assert await store.count() == 4
        assert await store.history(key("bob", "b0")) != [] and await store.history(key("bob", "b1")) != []
        assert await store.history(key("alice", "a9")) != [] and await store.history(key("alice", "a8")) != []
        assert await store.history(key("alice", "a7")) == []
        assert sum(evicted) == 8
        # A caller with no session of its own in a full store evicts the oldest of all.
        await store.append_turn(key("carol", "c0"), [user("c0")], reply("r"))
        assert await store.history(key("bob", "b0")) == [] and await store.history(key("bob", "b1")) != []

    backend.run(scenario)


def test_the_per_caller_limit_evicts_that_callers_own_oldest(backend: Backend) -> None:
    """Fails on main: there was no VLLM_MCP_MAX_SESSIONS_PER_CALLER (``max_per_caller``)."""

    async def scenario() -> None:
        store = await backend.open(max_sessions=100, max_per_caller=2)
        for caller in ("alice", "bob", None):  # None: the unauthenticated, one caller
            for i in range(5):
                await store.append_turn(key(caller, f"s{i}"), [user("x")], reply("r"))
        assert await store.count() == 6
        for caller in ("alice", "bob", None):
            kept = [i for i in range(5) if await store.history(key(caller, f"s{i}"))]
            assert kept == [3, 4], (caller, kept)
        # A later turn of a kept session creates nothing, so evicts nothing.
        await store.append_turn(key("alice", "s3"), [user("y")], reply("r"))
        assert len(await store.history(key("alice", "s3"))) == 4 and await store.count() == 6

    backend.run(scenario)


def test_a_caller_name_that_prefixes_another_is_a_different_caller(backend: Backend) -> None:
    """The namespace match is on the whole name plus the separator ('al' is not 'alice')."""

    async def scenario() -> None:
        store = await backend.open(max_sessions=100, max_per_caller=1)
        await store.append_turn(key("alice", "s"), [user("x")], reply("r"))
        await store.append_turn(key("al", "s"), [user("x")], reply("r"))
        await store.append_turn(key("al", "t"), [user("x")], reply("r"))
        assert await store.history(key("alice", "s")) != []
        assert await store.history(key("al", "s")) == [] and await store.history(key("al", "t")) != []

    backend.run(scenario)


@pytest.mark.parametrize("waiters", [1, 3])
def test_the_lock_map_holds_only_sessions_in_use(backend: Backend, waiters: int) -> None:
    """Fails on main: every session id ever used kept its lock entry (20,000 calls, 20,000 entries)."""
    import asyncio

    async def scenario() -> None:
        store = await backend.open()
        for i in range(50):
            async with store.lock(f"s{i}"):
                pass
        assert store._locks == {}
        order: list[int] = []

        async def turn(i: int) -> None:
            async with store.lock("shared"):
                order.append(i)
                await asyncio.sleep(0)

        await asyncio.gather(*(turn(i) for i in range(waiters)))
        assert order == list(range(waiters)) and store._locks == {}

    backend.run(scenario)
