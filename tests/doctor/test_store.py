"""doctor's session store check, on real SQLite files and a real PostgreSQL (tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.support.postgres import PostgresServer, free_port
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.store import check_store
from vllm_mcp.sessions import open_store


def settings(**env: str) -> Settings:
    return Settings.load(environ=env)


def test_memory_says_what_it_gives_up() -> None:
    check = check_store(settings())
    assert check.status == "ok" and "in memory" in check.message


def test_sqlite_file_not_yet_made_existing_and_newer(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    check = check_store(settings(VLLM_MCP_SESSION_STORE=str(path)))
    assert check.status == "ok" and "no schema yet" in check.message
    assert not path.exists()  # doctor creates nothing

    async def one_turn() -> None:
        store = await open_store(settings(VLLM_MCP_SESSION_STORE=str(path)))
        await store.append_turn(
            "s", [{"role": "user", "content": "q"}], {"role": "assistant", "content": "r"}
        )
        await store.aclose()

    asyncio.run(one_turn())
    check = check_store(settings(VLLM_MCP_SESSION_STORE=str(path)))
    assert (check.status, check.message) == ("ok", f"{path}: schema version 2, 1 sessions")
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 3")
    db.close()
    check = check_store(settings(VLLM_MCP_SESSION_STORE=str(path)))
    assert check.status == "fail" and "schema version 3, newer than this vllm-mcp knows (2)" in check.message
    assert check_store(settings(VLLM_MCP_SESSION_STORE=str(tmp_path))).status == "fail"


def test_postgres_reachable_with_and_without_schema(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    check = check_store(settings(VLLM_MCP_SESSION_STORE=postgres_url))
    assert (
        check.status == "ok"
        and check.message == f"{postgres_url}: reachable; no schema yet (made on the first start)"
    )
    asyncio.run(_open_and_close(postgres_url))
    check = check_store(settings(VLLM_MCP_SESSION_STORE=postgres_url))
    assert (check.status, check.message) == ("ok", f"{postgres_url}: schema version 1, 0 sessions")
    postgres_server.sql("UPDATE vllm_mcp_schema SET version = 5", postgres_url.rsplit("/", 1)[1])
    check = check_store(settings(VLLM_MCP_SESSION_STORE=postgres_url))
    assert check.status == "fail" and "schema version 5" in check.message


async def _open_and_close(url: str) -> None:
    store = await open_store(settings(VLLM_MCP_SESSION_STORE=url))
    await store.aclose()


def test_postgres_unreachable_fails_with_the_fix() -> None:
    url = f"postgresql://mcp@127.0.0.1:{free_port()}/sessions"
    check = check_store(settings(VLLM_MCP_SESSION_STORE=url))
    assert check.status == "fail" and check.message.startswith(f"cannot reach the session store {url}: ")
    assert check.fix is not None and "VLLM_MCP_SESSION_STORE_PASSWORD_FILE" in check.fix
