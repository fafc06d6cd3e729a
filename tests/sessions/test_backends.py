"""What only one backend has: SQLite's file (its schema history, other processes, crashes) and
PostgreSQL's schema table, start-up failures and password (a real server, tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer, free_port
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import SessionStoreError
from vllm_mcp.sessions import SqliteSessionStore, open_store


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def sqlite_store(path: Path, max_sessions: int = 10, max_messages: int = 10) -> SqliteSessionStore:
    store = SqliteSessionStore(path, max_sessions, max_messages)
    await store.open()
    return store


# --- SQLite ---------------------------------------------------------------------------------


def test_a_file_of_the_version_1_schema_opens_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    old = sqlite3.connect(path)  # exactly what vllm-mcp wrote before the version table
    old.execute(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, created REAL NOT NULL, "
        "updated REAL NOT NULL, messages TEXT NOT NULL)"
    )
    old.execute("INSERT INTO sessions VALUES ('a', 1, 1.0, 1.0, ?)", (json.dumps([user("q"), reply("r")]),))
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    async def scenario() -> None:
        store = await sqlite_store(path)
        assert await store.history("a") == [user("q"), reply("r")]
        await store.append_turn("a", [user("q2")], reply("r2"))
        assert len(await store.history("a")) == 4
        await store.aclose()

    run(scenario())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    db.close()


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(SessionStoreError, match=r"schema version 7, newer than this vllm-mcp knows \(2\)"):
        run(sqlite_store(path))


def test_reopen_restores_order_and_applies_lower_limits(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"

    async def scenario() -> None:
        store = await sqlite_store(path, 3, 4)
        for sid in "abc":
            await store.append_turn(sid, [user(sid)], reply(sid))
        await store.aclose()
        again = await sqlite_store(path, 3, 4)
        await again.append_turn("d", [user("d")], reply("d"))  # creation order survived: "a" goes
        assert await again.history("a") == [] and await again.history("b") != []
        await again.aclose()
        smaller = await sqlite_store(path, 2, 2)
        assert await smaller.count() == 2 and await smaller.history("b") == []
        await smaller.aclose()

    run(scenario())


def test_a_turn_of_another_process_is_seen(tmp_path: Path) -> None:
    """Several server processes on one file: the file is the truth, nothing stale in memory."""
    path = tmp_path / "sessions.db"
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from vllm_mcp.sessions import SqliteSessionStore\n"
        "async def main():\n"
        "    s = SqliteSessionStore(Path(sys.argv[1]), 100, 1000)\n"
        "    await s.open()\n"
        "    await s.append_turn('s', [{'role': 'user', 'content': 'from the other'}], "
        "{'role': 'assistant', 'content': 'r'})\n"
        "    await s.aclose()\n"
        "asyncio.run(main())\n"
    )

    async def scenario() -> None:
        store = await sqlite_store(path, 100, 1000)
        await store.append_turn("s", [user("mine")], reply("r"))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(path), cwd=ROOT)
        assert await proc.wait() == 0
        assert await store.history("s") == [user("mine"), reply("r"), user("from the other"), reply("r")]
        await store.aclose()

    run(scenario())


def test_each_turn_is_on_disk_before_append_returns(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after a turn still has that turn on disk."""
    path = tmp_path / "sessions.db"
    script = (
        "import asyncio, os, signal, sys\n"
        "from pathlib import Path\n"
        "from vllm_mcp.sessions import SqliteSessionStore\n"
        "async def main():\n"
        "    s = SqliteSessionStore(Path(sys.argv[1]), 100, 1000)\n"
        "    await s.open()\n"
        "    for i in range(50):\n"
        "        await s.append_turn(f's{i % 5}', [{'role': 'user', 'content': f'q{i}'}], "
        "{'role': 'assistant', 'content': f'r{i}'})\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], timeout=60, cwd=ROOT)
    assert proc.returncode == -9

    async def scenario() -> None:
        store = await sqlite_store(path, 100, 1000)
        assert await store.count() == 5
        assert sum([len(await store.history(f"s{k}")) for k in range(5)]) == 100
        assert (await store.history("s4"))[-1] == reply("r49")
        await store.aclose()

    run(scenario())


def test_the_store_is_in_wal_mode_and_one_file_after_close(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"

    async def scenario() -> None:
        store = await sqlite_store(path)
        await store.append_turn("a", [user("q")], reply("r"))
        reader = sqlite3.connect(path)
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        (raw,) = reader.execute("SELECT messages FROM sessions WHERE id = 'a'").fetchone()
        assert json.loads(raw) == [user("q"), reply("r")]
        reader.close()
        await store.aclose()

    run(scenario())
    wal = Path(f"{path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_a_file_that_is_not_a_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    path.write_bytes(b"this is not a database" * 100)

    async def scenario() -> None:
        store = await sqlite_store(path)
        assert await store.count() == 0
        await store.append_turn("a", [user("q")], reply("r"))
        await store.aclose()
        again = await sqlite_store(path)
        assert await again.history("a") == [user("q"), reply("r")]
        await again.aclose()

    run(scenario())
    aside = [p for p in tmp_path.iterdir() if ".unreadable-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SessionStoreError, match="is a directory"):
        run(sqlite_store(tmp_path))


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_settings(url: str, **env: str) -> Settings:
    return Settings.load(environ={"VLLM_MCP_SESSION_STORE": url, **env})


def test_the_schema_is_created_with_its_version_and_a_newer_one_is_refused(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = postgres_url.rsplit("/", 1)[1]

    async def scenario() -> None:
        store = await open_store(pg_settings(postgres_url))
        assert await store.schema_version() == 1  # type: ignore[attr-defined]
        await store.aclose()
        again = await open_store(pg_settings(postgres_url))  # a second start finds it made
        await again.aclose()

    run(scenario())
    assert postgres_server.sql("SELECT version FROM vllm_mcp_schema", database) == [(1,)]
    postgres_server.sql("UPDATE vllm_mcp_schema SET version = 9", database)
    with pytest.raises(SessionStoreError) as err:
        run(open_store(pg_settings(postgres_url)))
    assert str(err.value) == (
        f"the session store {postgres_url} has schema version 9, newer than this vllm-mcp knows (1); "
        "upgrade vllm-mcp or use another database"
    )


def test_an_unreachable_store_refuses_the_start_naming_it_without_its_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    url = f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{free_port()}/sessions"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SessionStoreError) as err:
        run(open_store(pg_settings(url, VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(secret))))
    assert str(err.value).startswith(f"cannot reach the session store {url}: ")
    assert "Connection refused" in str(err.value)
    assert PASSWORD not in str(err.value) and PASSWORD not in caplog.text


def test_the_password_comes_from_the_password_file_or_pgpassfile(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    url = postgres_server.url(postgres_url.rsplit("/", 1)[1], user=PASSWORD_ROLE)
    caplog.set_level(logging.DEBUG)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    with pytest.raises(SessionStoreError) as err:
        run(open_store(pg_settings(url, VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(wrong))))
    assert "password authentication failed" in str(err.value) and "not-the-password" not in str(err.value)
    with pytest.raises(SessionStoreError):  # no password at all
        run(open_store(pg_settings(url)))

    right = tmp_path / "right"
    right.write_text(PASSWORD + "\n")

    async def turn(settings: Settings) -> list[dict[str, str]]:
        store = await open_store(settings)
        await store.append_turn("s", [user("q")], reply("r"))
        history = await store.history("s")
        await store.aclose()
        return history

    assert run(turn(pg_settings(url, VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(right)))) == [
        user("q"),
        reply("r"),
    ]
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{postgres_server.port}:*:{PASSWORD_ROLE}:{PASSWORD}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    assert len(run(turn(pg_settings(url)))) == 4
    shown = json.dumps(pg_settings(url, VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(right)).public_dict())
    assert PASSWORD not in shown and PASSWORD not in caplog.text


def test_a_missing_password_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(
        SessionStoreError, match=f"cannot read VLLM_MCP_SESSION_STORE_PASSWORD_FILE {missing}"
    ):
        run(
            open_store(
                pg_settings(
                    "postgresql://x@127.0.0.1:1/db", VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(missing)
                )
            )
        )


def test_the_password_file_is_read_as_every_secret_file_is(tmp_path: Path) -> None:
    from vllm_mcp.sessions.postgres import read_password

    path = tmp_path / "password"
    path.write_text("  s3cret-pw \r\n")  # what an editor on another system leaves
    assert read_password(path) == "s3cret-pw"
    path.write_text("\n")
    with pytest.raises(SessionStoreError, match=f"VLLM_MCP_SESSION_STORE_PASSWORD_FILE {path} is empty"):
        read_password(path)


def test_the_sqlite_store_is_0600_in_0700_directories_whatever_the_umask(tmp_path: Path) -> None:
    import os

    path = tmp_path / "state" / "vllm-mcp" / "sessions.db"
    old = os.umask(0o022)
    try:

        async def turn() -> None:
            store = await sqlite_store(path)
            await store.append_turn("s", [user("q")], reply("r"))
            files = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
            assert files == {"sessions.db": 0o600, "sessions.db-wal": 0o600, "sessions.db-shm": 0o600}
            await store.aclose()

        run(turn())
    finally:
        os.umask(old)
    assert [(path.parents[n].stat().st_mode & 0o777) for n in (0, 1)] == [0o700, 0o700]


def test_a_tool_calling_turn_keeps_its_calls_and_call_ids(tmp_path: Path) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
    called = {"role": "assistant", "content": "", "tool_calls": calls}
    answered = {"role": "tool", "content": "42", "tool_call_id": "c1"}

    async def scenario() -> list[dict[str, Any]]:
        store = await sqlite_store(tmp_path / "sessions.db")
        await store.append_turn("t", [user("q")], called)
        await store.append_turn("t", [answered], reply("it is 42"))
        await store.aclose()
        store = await sqlite_store(tmp_path / "sessions.db")  # read back from the file
        return await store.history("t")

    assert run(scenario()) == [user("q"), called, answered, reply("it is 42")]
