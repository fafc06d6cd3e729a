"""The session stores: memory, SQLite and a real PostgreSQL behave alike (one parametrized suite).

Each test opens its stores inside one event loop (``Backend.run``) and closes them after.
"Two instances" are two store objects on one file or one database, as two server processes
or two replicas on two hosts have; the memory store has no second instance, so those tests
run on SQLite and PostgreSQL only. Backend-specific behaviour is in test_sessions_backends.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stores import Backend, Clock, reply, user
from vllm_mcp.config.settings import Settings
from vllm_mcp.config.store_location import parse_location
from vllm_mcp.errors import ConfigError, SessionStoreFailed
from vllm_mcp.sessions import (
    MemorySessionStore,
    SessionStore,
    SqliteSessionStore,
    make_store,
    truncate,
)
from vllm_mcp.tools.handlers import session_key


def needs_two(backend: Backend) -> None:
    if not backend.shared:
        pytest.skip("the memory store lives in one process: there is no second instance to share it")


def test_turns_accumulate_in_order(backend: Backend) -> None:
    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("a", [user("q1")], reply("r1"))
        await store.append_turn("a", [user("q2")], reply("r2"))
        assert await store.history("a") == [user("q1"), reply("r1"), user("q2"), reply("r2")]
        assert await store.history("unknown") == []
        assert await store.count() == 1

    backend.run(scenario)


def test_a_turn_with_image_parts_comes_back_as_it_was_stored(backend: Backend) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    message = {"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}

    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("a", [message], reply("a red square"))
        assert await store.history("a") == [message, reply("a red square")]

    backend.run(scenario)


def test_a_reply_with_nul_is_stored_and_postgres_keeps_u_fffd_in_its_place(backend: Backend) -> None:
    """A model may generate U+0000; PostgreSQL's jsonb cannot hold it, and the turn the caller
    had already received failed to be stored. The other stores keep the character."""
    text = "a\x00b, and \\u0000 \\\x00 as text"

    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("a", [user("q")], reply(text))
        await store.append_turn("a", [user("q2")], reply("r2"))
        kept = text.replace("\x00", "\ufffd") if backend.kind == "postgres" else text
        assert await store.history("a") == [user("q"), reply(kept), user("q2"), reply("r2")]

    backend.run(scenario)


def test_each_caller_has_its_own_namespace(backend: Backend) -> None:
    async def scenario() -> None:
        store = await backend.open()
        for caller in ("alice", "bob", None):
            await store.append_turn(session_key(caller, "s"), [user(f"from {caller}")], reply("r"))
        assert await store.history(session_key("alice", "s")) == [user("from alice"), reply("r")]
        assert await store.history(session_key("bob", "s")) == [user("from bob"), reply("r")]
        assert await store.history("s") == [user("from None"), reply("r")]
        assert await store.end(session_key("bob", "s")) is True
        assert await store.history(session_key("alice", "s")) != []
        assert await store.count() == 2

    backend.run(scenario)


def test_oldest_session_is_evicted_and_counted(backend: Backend) -> None:
    evicted: list[int] = []

    async def scenario() -> None:
        store = await backend.open(max_sessions=3, on_evict=evicted.append)
        for sid in "abcd":
            await store.append_turn(sid, [user(sid)], reply(sid))
        assert await store.count() == 3
        assert await store.history("a") == []
        assert all([await store.history(sid) for sid in "bcd"])
        assert evicted == [1]
        # A later turn of an old session does not make it younger: eviction follows creation.
        await store.append_turn("b", [user("again")], reply("again"))
        await store.append_turn("e", [user("e")], reply("e"))
        assert await store.history("b") == [] and await store.history("c") != []

    backend.run(scenario)


def test_eviction_counts_the_sessions_of_every_instance(backend: Backend) -> None:
    needs_two(backend)

    async def scenario() -> None:
        one, two = await backend.open(max_sessions=3), await backend.open(max_sessions=3)
        await one.append_turn("a", [user("a")], reply("a"))
        await two.append_turn("b", [user("b")], reply("b"))
        await one.append_turn("c", [user("c")], reply("c"))
        await two.append_turn("d", [user("d")], reply("d"))  # the fourth in all: "a" goes
        assert await one.count() == await two.count() == 3
        assert await one.history("a") == [] and await one.history("d") == [user("d"), reply("d")]

    backend.run(scenario)


def test_concurrent_creators_on_two_instances_never_overshoot(backend: Backend) -> None:
    needs_two(backend)

    async def scenario() -> None:
        one, two = await backend.open(max_sessions=5), await backend.open(max_sessions=5)

        async def create(store: SessionStore, prefix: str) -> None:
            for i in range(12):
                await store.append_turn(f"{prefix}{i}", [user("q")], reply("r"))
                assert await store.count() <= 5

        await asyncio.gather(create(one, "x"), create(two, "y"))
        assert await one.count() == 5
        keys = [f"{p}{i}" for p in "xy" for i in range(12)]
        survivors = {k: await two.history(k) for k in keys if await two.history(k)}
        assert len(survivors) == 5 and all(h == [user("q"), reply("r")] for h in survivors.values())
        assert "x11" in survivors or "y11" in survivors  # the newest creation is kept

    backend.run(scenario)


def test_truncation_keeps_the_system_prompt(backend: Backend) -> None:
    async def scenario() -> None:
        store = await backend.open(max_messages=4)
        await store.append_turn("s", [{"role": "system", "content": "be brief"}, user("q1")], reply("r1"))
        for i in range(2, 6):
            await store.append_turn("s", [user(f"q{i}")], reply(f"r{i}"))
        history = await store.history("s")
        assert history == [{"role": "system", "content": "be brief"}, reply("r4"), user("q5"), reply("r5")]

    backend.run(scenario)


def test_a_new_system_prompt_replaces_the_old_one(backend: Backend) -> None:
    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("s", [user("q1")], reply("r1"))
        await store.append_turn("s", [{"role": "system", "content": "one"}], reply("r2"))
        await store.append_turn("s", [{"role": "system", "content": "two"}, user("q3")], reply("r3"))
        history = await store.history("s")
        assert history[0] == {"role": "system", "content": "two"}
        assert [m for m in history if m["role"] == "system"] == [history[0]]
        assert history[-2:] == [user("q3"), reply("r3")]

    backend.run(scenario)


def test_end_forgets_a_session(backend: Backend) -> None:
    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("x", [user("q")], reply("r"))
        assert await store.end("x") is True
        assert await store.end("x") is False
        assert await store.history("x") == [] and await store.count() == 0

    backend.run(scenario)


def test_concurrent_turns_in_one_server_lose_none(backend: Backend) -> None:
    """The pattern tools.py follows: lock, read history, await the model, append."""

    async def scenario() -> None:
        store = await backend.open(max_messages=1000)

        async def turn(i: int) -> int:
            async with store.lock("shared"):
                seen = len(await store.history("shared"))
                await asyncio.sleep(0.001 * (i % 3))  # the "generation", interleaving other calls
                await store.append_turn("shared", [user(f"q{i}")], reply(f"r{i}"))
                return seen

        seen = await asyncio.gather(*(turn(i) for i in range(30)))
        assert len(await store.history("shared")) == 60
        assert sorted(seen) == list(range(0, 60, 2))  # each turn saw every earlier one

    backend.run(scenario)


def test_two_instances_appending_to_one_session_never_lose_or_interleave_a_turn(backend: Backend) -> None:
    needs_two(backend)

    async def scenario() -> None:
        one, two = await backend.open(max_messages=1000), await backend.open(max_messages=1000)

        async def turns(store: SessionStore, name: str) -> None:
            for i in range(15):
                await store.append_turn(
                    "shared", [user(f"{name}-q{i}"), user(f"{name}-more{i}")], reply(f"{name}-r{i}")
                )

        await asyncio.gather(turns(one, "one"), turns(two, "two"))
        history = await two.history("shared")
        assert len(history) == 90
        # Every turn is whole and in one piece: its two questions, then its reply.
        for at in range(0, 90, 3):
            name, i = history[at]["content"].split("-q")
            assert history[at + 1 : at + 3] == [user(f"{name}-more{i}"), reply(f"{name}-r{i}")]
        for name in ("one", "two"):  # and each instance's turns in the order it made them
            mine = [m["content"] for m in history if m["content"].startswith(f"{name}-q")]
            assert mine == [f"{name}-q{i}" for i in range(15)]

    backend.run(scenario)


def test_a_turn_is_seen_by_another_instance_as_soon_as_it_returns(backend: Backend) -> None:
    """One committed transaction per turn: nothing cached, nothing pending."""
    needs_two(backend)

    async def scenario() -> None:
        one, two = await backend.open(), await backend.open()
        for i in range(5):
            await one.append_turn("s", [user(f"q{i}")], reply(f"r{i}"))
            assert len(await two.history("s")) == 2 * (i + 1)
        await two.append_turn("s", [user("from two")], reply("r"))
        assert (await one.history("s"))[-2:] == [user("from two"), reply("r")]
        assert await two.end("s") and await one.history("s") == []

    backend.run(scenario)


def test_an_idle_session_expires_after_the_ttl(backend: Backend) -> None:
    clock = Clock()

    async def scenario() -> None:
        store = await backend.open(ttl=60, clock=clock)
        await store.append_turn("old", [user("q")], reply("r"))
        clock.now += 30
        await store.append_turn("young", [user("q")], reply("r"))
        assert await store.history("old") == [user("q"), reply("r")]
        clock.now += 31  # "old" idle 61 s, "young" 31 s
        assert await store.history("old") == [] and await store.count() == 1
        assert await store.end("old") is False
        await store.append_turn("new", [user("q")], reply("r"))  # a creation purges what expired
        if backend.shared:
            fresh = await backend.open()  # without a TTL: sees every row still stored
            assert await fresh.history("old") == []
        await store.append_turn("young", [user("q2")], reply("r2"))  # activity keeps it alive
        clock.now += 59
        assert len(await store.history("young")) == 4
        await store.append_turn("young", [user("q3")], reply("r3"))
        clock.now += 61
        await store.append_turn("young", [user("q4")], reply("r4"))  # expired: starts afresh
        assert await store.history("young") == [user("q4"), reply("r4")]

    backend.run(scenario)


def test_truncate_without_system_prompt() -> None:
    messages = [user(str(i)) for i in range(5)]
    assert truncate(messages, 2) == [user("3"), user("4")]
    assert truncate(messages, 10) is messages


def test_a_store_lost_during_a_call_fails_naming_it_and_later_calls_succeed(backend: Backend) -> None:
    if backend.kind == "memory":
        pytest.skip("the memory store cannot be lost")

    async def scenario() -> None:
        store = await backend.open()
        await store.append_turn("s", [user("q1")], reply("r1"))
        with lost(backend, store):
            # At once: each waits the store's timeout for a connection (PostgreSQL: 5 s) first.
            turn, history = await asyncio.gather(
                store.append_turn("s", [user("q2")], reply("r2")), store.history("s"), return_exceptions=True
            )
            assert isinstance(turn, SessionStoreFailed), turn
            assert f"the {store.kind} session store" in str(turn)
            assert "nothing of this turn was recorded" in str(turn)
            # Issue 27, finding 4: main showed callers the store's URL or file path.
            assert store.name not in str(turn) and store.name not in str(history)
            assert isinstance(history, SessionStoreFailed), history
        # Back: the same store object serves again, and the failed turn left nothing behind.
        assert await store.history("s") == [user("q1"), reply("r1")]
        await store.append_turn("s", [user("q3")], reply("r3"))
        assert len(await store.history("s")) == 4

    backend.run(scenario)


@contextlib.contextmanager
def lost(backend: Backend, store: SessionStore) -> Iterator[None]:
    """The store unavailable inside the block: PostgreSQL stopped, or SQLite refusing every statement."""
    if backend.server is not None:
        backend.server.stop()
        try:
            yield
        finally:
            backend.server.start()
        return
    assert isinstance(store, SqliteSessionStore) and store._db is not None
    # SQLite refuses every statement, as it does when the disk is full or the file unwritable.
    store._db.set_authorizer(lambda *action: sqlite3.SQLITE_DENY)
    try:
        yield
    finally:
        store._db.set_authorizer(None)


# --- VLLM_MCP_SESSION_STORE: the accepted forms --------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        ("sessions.db", "sqlite", "sessions.db"),
        ("/var/lib/vllm-mcp/s.db", "sqlite", "/var/lib/vllm-mcp/s.db"),
        ("sqlite:///var/lib/vllm-mcp/s.db", "sqlite", "/var/lib/vllm-mcp/s.db"),
        (
            "postgresql://mcp@db.example:5432/sessions",
            "postgres",
            "postgresql://mcp@db.example:5432/sessions",
        ),
        ("postgres://mcp@10.0.0.5/sessions?sslmode=require", "postgres", None),
    ],
)
def test_accepted_store_locations(value: str, kind: str, shown: str | None) -> None:
    where = parse_location(value)
    assert where.kind == kind
    assert Settings.load(environ={"VLLM_MCP_SESSION_STORE": value}).session_store == (shown or value)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("redis://cache:6379/0", "unknown session store scheme redis://"),
        ("postgresql:/x", "starts with postgresql:// (two slashes)"),
        ("postgres:host/db", "starts with postgresql:// (two slashes)"),
        ("mysql:host/db", "looks like a URL, not a file path"),
        ("sqlite://relative.db", "three slashes"),
        ("postgresql://mcp@db/", "name the database"),
        ("postgresql://mcp@db:port/x", "not a valid PostgreSQL URL"),
    ],
)
def test_a_url_the_server_does_not_know_is_an_error_never_a_file(
    value: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        Settings.load(environ={"VLLM_MCP_SESSION_STORE": value})
    assert says in str(err.value) and "VLLM_MCP_SESSION_STORE" in str(err.value)
    assert "postgresql://user@host:port/dbname" in str(err.value) or "password" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no stray directory or file


@pytest.mark.parametrize(
    "value",
    [
        "postgresql://mcp:hunter2hunter2@db/sessions",
        "postgresql://mcp@db/sessions?password=hunter2hunter2",
        # libpq decodes percent-escapes in keys, so each of these is a password too
        "postgresql://mcp@db/sessions?pass%77ord=hunter2hunter2",
        "postgresql://mcp@db/sessions?%70%61%73%73%77%6f%72%64=hunter2hunter2",
        "postgresql://mcp@db/sessions?sslmode=require&PassWord=hunter2hunter2",
        "postgresql://mcp@db/sessions?pass%2577ord=hunter2hunter2",
        "postgresql://mcp@db/sessions?dbname=sessions%20password%3Dhunter2hunter2",
        "postgres://mcp:hunter2hunter2@db1,db2/sessions",
    ],
)
def test_a_url_with_a_password_is_refused_without_showing_it(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load(environ={"VLLM_MCP_SESSION_STORE": value})
    assert "hunter2hunter2" not in str(err.value)
    assert "VLLM_MCP_SESSION_STORE_PASSWORD_FILE" in str(err.value) and "PGPASSFILE" in str(err.value)
    with pytest.raises(ConfigError) as err:  # config show and config validate read the same rule
        Settings.load(file_values={"VLLM_MCP_SESSION_STORE": value}, environ={})
    assert "hunter2hunter2" not in str(err.value)


def test_make_store_picks_the_backend(tmp_path: Path) -> None:
    from vllm_mcp.sessions.postgres import PostgresSessionStore

    def made(**env: str) -> SessionStore:
        return make_store(Settings.load(environ=env))

    assert type(made()) is MemorySessionStore
    assert type(made(VLLM_MCP_SESSION_STORE=str(tmp_path / "s.db"))) is SqliteSessionStore
    pg = made(VLLM_MCP_SESSION_STORE="postgresql://mcp@127.0.0.1:1/x", VLLM_MCP_SESSION_TTL="30")
    assert isinstance(pg, PostgresSessionStore) and pg.name == "postgresql://mcp@127.0.0.1:1/x"
    assert pg.ttl == 30
