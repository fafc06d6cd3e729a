"""Unit tests of the session stores: the in-memory one and the SQLite one behave alike."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vllm_mcp.sessions import (
    SessionStore,
    SessionStoreError,
    SqliteSessionStore,
    open_store,
    truncate,
)

StoreFactory = Callable[..., SessionStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A factory for either backend, so every behaviour is checked on both."""
    opened: list[SessionStore] = []

    def make(max_sessions: int = 10, max_messages: int = 10, **kw: object) -> SessionStore:
        if request.param == "memory":
            store = SessionStore(max_sessions, max_messages, **kw)  # type: ignore[arg-type]
        else:
            store = SqliteSessionStore(tmp_path / "s.db", max_sessions, max_messages, **kw)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make  # type: ignore[misc]
    for store in opened:
        store.close()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_turns_accumulate_in_order(make_store: StoreFactory) -> None:
    store = make_store()
    store.append("a", [user("q1")], reply("r1"))
    store.append("a", [user("q2")], reply("r2"))
    assert store.history("a") == [user("q1"), reply("r1"), user("q2"), reply("r2")]
    assert store.history("unknown") == []
    assert "a" in store and len(store) == 1


def test_oldest_session_is_evicted_and_counted(make_store: StoreFactory) -> None:
    evicted: list[int] = []
    store = make_store(max_sessions=3, on_evict=evicted.append)
    for sid in "abcd":
        store.append(sid, [user(sid)], reply(sid))
    assert len(store) == 3
    assert "a" not in store and store.history("a") == []
    assert all(sid in store for sid in "bcd")
    assert evicted == [1]
    # A later turn of an old session does not make it younger: eviction follows creation.
    store.append("b", [user("again")], reply("again"))
    store.append("e", [user("e")], reply("e"))
    assert "b" not in store and "c" in store


def test_truncation_keeps_the_system_prompt(make_store: StoreFactory) -> None:
    store = make_store(max_messages=4)
    store.append("s", [{"role": "system", "content": "be brief"}, user("q1")], reply("r1"))
    for i in range(2, 6):
        store.append("s", [user(f"q{i}")], reply(f"r{i}"))
    history = store.history("s")
    assert len(history) == 4
    assert history[0] == {"role": "system", "content": "be brief"}
    assert history[1:] == [reply("r4"), user("q5"), reply("r5")]


def test_a_new_system_prompt_replaces_the_old_one(make_store: StoreFactory) -> None:
    store = make_store()
    store.append("s", [user("q1")], reply("r1"))
    store.append("s", [{"role": "system", "content": "one"}], reply("r2"))
    store.append("s", [{"role": "system", "content": "two"}, user("q3")], reply("r3"))
    history = store.history("s")
    assert history[0] == {"role": "system", "content": "two"}
    assert [m for m in history if m["role"] == "system"] == [history[0]]
    assert history[-2:] == [user("q3"), reply("r3")]


def test_end_forgets_a_session(make_store: StoreFactory) -> None:
    store = make_store()
    store.append("x", [user("q")], reply("r"))
    assert store.end("x") is True
    assert store.end("x") is False
    assert store.history("x") == [] and len(store) == 0


def test_concurrent_turns_on_one_session_lose_none(make_store: StoreFactory) -> None:
    """The pattern tools.py follows: lock, read history, await the model, append."""
    store = make_store(max_messages=1000)

    async def turn(i: int) -> int:
        async with store.lock("shared"):
            seen = len(store.history("shared"))
            await asyncio.sleep(0.001 * (i % 3))  # the "generation", interleaving other calls
            store.append("shared", [user(f"q{i}")], reply(f"r{i}"))
            return seen

    async def main() -> list[int]:
        return await asyncio.gather(*(turn(i) for i in range(40)))

    seen = asyncio.run(main())
    history = store.history("shared")
    assert len(history) == 80
    assert sorted(seen) == list(range(0, 80, 2))  # each turn saw every earlier one
    assert {m["content"] for m in history} == {f"q{i}" for i in range(40)} | {f"r{i}" for i in range(40)}


def test_truncate_without_system_prompt() -> None:
    messages = [user(str(i)) for i in range(5)]
    assert truncate(messages, 2) == [user("3"), user("4")]
    assert truncate(messages, 10) is messages


# --- SQLite only --------------------------------------------------------------------------


def test_reopen_restores_sessions_order_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SqliteSessionStore(path, 3, 4)
    store.append("a", [{"role": "system", "content": "sys"}, user("é ☃ \U0001f600")], reply("r1"))
    store.append("b", [user("b")], reply("b"))
    store.append("c", [user("c")], reply("c"))
    store.append("a", [user("q2")], reply("r2"))
    expected = {sid: store.history(sid) for sid in "abc"}
    store.close()

    again = SqliteSessionStore(path, 3, 4)
    assert {sid: again.history(sid) for sid in "abc"} == expected
    assert expected["a"][0] == {"role": "system", "content": "sys"}
    # Creation order survived the restart: a new session evicts "a", the oldest.
    again.append("d", [user("d")], reply("d"))
    assert "a" not in again and all(s in again for s in "bcd")
    again.close()
    # Lower limits on the next start are applied to what was stored.
    smaller = SqliteSessionStore(path, 2, 2)
    assert len(smaller) == 2 and "b" not in smaller
    assert smaller.history("d") == [user("d"), reply("d")]
    smaller.close()
    assert SqliteSessionStore(path, 10, 10).history("b") == []


def test_store_is_in_wal_mode_and_readable_while_open(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    store = SqliteSessionStore(path, 10, 10)
    store.append("a", [user("q")], reply("r"))
    reader = sqlite3.connect(path)
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    (raw,) = reader.execute("SELECT messages FROM sessions WHERE id = 'a'").fetchone()
    assert json.loads(raw) == [user("q"), reply("r")]
    reader.close()
    store.close()


def test_each_turn_is_on_disk_before_append_returns(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after a turn still has that turn on disk."""
    path = tmp_path / "sessions.db"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from vllm_mcp.sessions import SqliteSessionStore\n"
        "s = SqliteSessionStore(Path(sys.argv[1]), 100, 1000)\n"
        "for i in range(50):\n"
        "    s.append(f's{i % 5}', [{'role': 'user', 'content': f'q{i}'}], "
        "{'role': 'assistant', 'content': f'r{i}'})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(path)], timeout=60, cwd=Path(__file__).parent.parent
    )
    assert proc.returncode == -9
    store = SqliteSessionStore(path, 100, 1000)
    assert len(store) == 5
    assert sum(len(store.history(f"s{k}")) for k in range(5)) == 100
    assert store.history("s4")[-1] == reply("r49")
    store.close()


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.write_bytes(b"this is not a database" * 100)
    store = SqliteSessionStore(path, 10, 10)
    assert len(store) == 0
    store.append("a", [user("q")], reply("r"))
    store.close()
    aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert SqliteSessionStore(path, 10, 10).history("a") == [user("q"), reply("r")]


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SessionStoreError, match="is a directory"):
        SqliteSessionStore(tmp_path, 10, 10)


def test_a_failed_write_is_logged_and_caught_up_by_the_next_turn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sessions.db"
    store = SqliteSessionStore(path, 10, 10)
    store.append("a", [user("q1")], reply("r1"))
    store._db.execute("PRAGMA query_only = ON")  # every write now fails, as on a full disk
    store.append("a", [user("q2")], reply("r2"))
    assert store.write_errors == 1
    assert "could not write the session store" in caplog.text
    assert len(store.history("a")) == 4  # memory still has the turn
    store._db.execute("PRAGMA query_only = OFF")
    store.append("a", [user("q3")], reply("r3"))
    store.close()
    assert len(SqliteSessionStore(path, 10, 10).history("a")) == 6


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert type(open_store(None, 5, 5)) is SessionStore
    store = open_store(tmp_path / "deep" / "dir" / "s.db", 5, 5)
    assert isinstance(store, SqliteSessionStore)
    store.close()
