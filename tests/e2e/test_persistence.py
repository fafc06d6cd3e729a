"""End to end: sessions in VLLM_MCP_SESSION_STORE survive SIGKILL of the server.

One conversation is carried across three server processes: killed between two
turns, then killed while a turn streams. Every turn whose response reached the
client is on disk and in the next server's prompt; the turn in flight is not.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.support import proctree
from tests.support.models import serve_env
from tests.support.servers import RawServer

pytestmark = pytest.mark.engine

QUESTION = "tell me more"
TURN = {"max_tokens": 4, "min_tokens": 4, "seed": 1, "temperature": 0}


class Conversation:
    """Counts what the client saw complete, to compare with what the store kept."""

    def __init__(self, store: Path, model: Path) -> None:
        self.store = store
        self.model = model
        self.completed: dict[str, int] = {}
        self.prompt_tokens: list[int] = []
        self.rid = 100

    def start(self) -> RawServer:
        server = RawServer(serve_env(self.model, VLLM_MCP_SESSION_STORE=str(self.store)))
        server.initialize()
        return server

    def turn(self, server: RawServer, session: str) -> dict[str, Any]:
        self.rid += 1
        params = {
            "name": "chat_completion",
            "arguments": {"messages": [{"role": "user", "content": QUESTION}], "session_id": session, **TURN},
        }
        result = server.request(self.rid, "tools/call", params, timeout=400)["result"]
        assert result["isError"] is False, result
        self.completed[session] = self.completed.get(session, 0) + 1
        return result["structuredContent"]

    def stored_messages(self) -> dict[str, list[dict[str, str]]]:
        """Read the store as another program would, after a crash, before any restart."""
        db = sqlite3.connect(self.store)
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            rows = db.execute("SELECT id, messages FROM sessions").fetchall()
        finally:
            db.close()
        return {sid: json.loads(raw) for sid, raw in rows}


def kill9(server: RawServer) -> None:
    processes = proctree.tree(server.proc.pid)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    left = proctree.wait_gone(processes)
    proctree.kill_all(left)
    assert left == [], f"survived SIGKILL of the server: {[p.name() for p in left]}"


def test_kill_between_turns_loses_nothing_and_kill_during_a_turn_loses_only_that_turn(
    tmp_path: Path, tiny_model: Path
) -> None:
    """One conversation, three servers: each kill is judged by what the next server finds."""
    c = Conversation(tmp_path / "sessions.db", tiny_model)
    # 1. Killed between two turns.
    server = c.start()
    try:
        first = c.turn(server, "p")
        second = c.turn(server, "p")
        c.turn(server, "other")
        assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]
        c.prompt_tokens += [first["usage"]["prompt_tokens"], second["usage"]["prompt_tokens"]]
    finally:
        kill9(server)
    stored = c.stored_messages()
    assert {sid: len(m) // 2 for sid, m in stored.items()} == c.completed == {"p": 2, "other": 1}
    assert stored["p"][0] == {"role": "user", "content": QUESTION}
    assert stored["p"][1]["role"] == "assistant"

    server = c.start()
    try:
        info = server.request(2, "tools/call", {"name": "model_info", "arguments": {}})["result"]
        assert info["structuredContent"]["active_sessions"] == 2  # restored before the model loaded
        third = c.turn(server, "p")
        # The restarted server prepends both earlier turns: the prompt keeps growing.
        growth = c.prompt_tokens[1] - c.prompt_tokens[0]
        assert third["usage"]["prompt_tokens"] >= c.prompt_tokens[1] + growth - 2
        c.prompt_tokens.append(third["usage"]["prompt_tokens"])
        # A brand-new session starts from nothing, as the first turn did.
        fresh = c.turn(server, "fresh")
        assert fresh["usage"]["prompt_tokens"] == c.prompt_tokens[0]
        # 2. Killed while a turn streams.
        params = {
            "name": "chat_completion",
            "arguments": {
                "messages": [{"role": "user", "content": "a very long answer please"}],
                "session_id": "p",
                "max_tokens": 900,
                "min_tokens": 900,
            },
            "_meta": {"progressToken": "long"},
        }
        server.send({"jsonrpc": "2.0", "id": 999, "method": "tools/call", "params": params})
        server.wait_for(lambda m: m.get("params", {}).get("progressToken") == "long")
    finally:
        kill9(server)
    assert not [m for m in server.messages() if m.get("id") == 999]  # it never completed
    stored = c.stored_messages()
    assert {sid: len(m) // 2 for sid, m in stored.items()} == c.completed
    assert "a very long answer please" not in json.dumps(stored)

    server = c.start()
    try:
        fourth = c.turn(server, "p")
        growth = c.prompt_tokens[2] - c.prompt_tokens[1]
        # Three turns of history, not the 900 tokens of the lost one.
        assert abs(fourth["usage"]["prompt_tokens"] - (c.prompt_tokens[2] + growth)) <= 4
        info = server.request(3, "tools/call", {"name": "model_info", "arguments": {}})["result"]
        assert info["structuredContent"]["active_sessions"] == 3
    finally:
        assert server.close(timeout=120) == 0
    stored = c.stored_messages()
    assert {sid: len(m) // 2 for sid, m in stored.items()} == c.completed == {"p": 4, "other": 1, "fresh": 1}
    # A clean exit folds the write-ahead log back into the one file.
    wal = Path(str(c.store) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
