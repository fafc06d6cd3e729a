"""End to end: two real `vllm-mcp serve` processes on one real PostgreSQL session store.

The official SDK client drives both servers (tiny model). One conversation alternates
between them and keeps every turn (its prompt grows each turn, whichever server answers).
PostgreSQL is restarted while a turn generates: that call gets a clear tool error naming the
store, nothing of it is stored, and the next calls on both servers succeed with no restart
of theirs. A server whose store cannot be reached refuses to start, naming the URL without
its password. (Backend behaviour itself: tests/sessions/test_stores.py.)
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.models import serve_env
from tests.support.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer, free_port
from tests.support.servers import McpClient, serve_command

pytestmark = pytest.mark.engine

TURN = {"max_tokens": 4, "min_tokens": 4, "seed": 1, "temperature": 0}
LONG = "a very long answer please"


class Replicas:
    def __init__(self, postgres: PostgresServer, model: Path) -> None:
        self.postgres = postgres
        self.url = postgres.new_database()
        self.database = self.url.rsplit("/", 1)[1]
        env = serve_env(model, VLLM_MCP_SESSION_STORE=self.url)
        self.servers = [McpClient(env), McpClient(env)]
        for server in self.servers:
            server.wait_ready()

    def stored(self, session: str) -> list[dict[str, str]]:
        rows = self.postgres.sql(
            f"SELECT messages FROM vllm_mcp_sessions WHERE id = '{session}'", self.database
        )
        return rows[0][0] if rows else []  # type: ignore[return-value]


@pytest.fixture(scope="module")
def replicas(postgres_server: PostgresServer, tiny_model: Path) -> Iterator[Replicas]:
    if not postgres_server.running:
        postgres_server.start()
    r = Replicas(postgres_server, tiny_model)
    try:
        yield r
    finally:
        if not postgres_server.running:
            postgres_server.start()
        for server in r.servers:
            server.close()


def test_a_conversation_alternating_between_two_servers_keeps_every_turn(replicas: Replicas) -> None:
    prompt_tokens = []
    for turn in range(6):
        server = replicas.servers[turn % 2]
        result = server.chat("tell me more", session_id="alternating", **TURN)
        prompt_tokens.append(result["usage"]["prompt_tokens"])
    # Each server prepends every earlier turn, its own and the other's: the prompt grows each time.
    assert all(later > earlier for earlier, later in itertools.pairwise(prompt_tokens)), prompt_tokens
    growth = prompt_tokens[1] - prompt_tokens[0]
    assert abs(prompt_tokens[-1] - (prompt_tokens[0] + 5 * growth)) <= 5, prompt_tokens
    stored = replicas.stored("alternating")
    assert len(stored) == 12 and [m["role"] for m in stored] == ["user", "assistant"] * 6
    for server in replicas.servers:
        assert server.info()["active_sessions"] == 1  # counted across both servers


def test_a_postgres_restart_fails_the_turn_in_flight_and_later_calls_succeed(replicas: Replicas) -> None:
    one, two = replicas.servers
    before = one.chat("tell me more", session_id="restart", **TURN)
    assert len(replicas.stored("restart")) == 2
    generating = threading.Event()
    call = one.call_async(
        "chat_completion",
        {
            "messages": [{"role": "user", "content": LONG}],
            "session_id": "restart",
            "max_tokens": 900,
            "min_tokens": 900,
        },
        progress=lambda *_: generating.set(),
    )
    assert generating.wait(120), "the long call never reported progress"
    replicas.postgres.stop()  # a restart as clients see it: every connection cut
    try:
        failed = call.result(timeout=300)
        assert failed.is_error, failed
        text = failed.content[0].text
        assert "the postgres session store" in text and "nothing of this turn was recorded" in text, text
        assert replicas.url not in text and "127.0.0.1" not in text  # the kind, never where it is
        down = two.call(
            "chat_completion",
            {"messages": [{"role": "user", "content": "hi"}], "session_id": "other", **TURN},
        )
        assert down.is_error and "the postgres session store" in down.content[0].text
        assert replicas.url not in down.content[0].text
        assert two.info()["server_state"] == "ready"  # still serving; model_info needs no store
    finally:
        replicas.postgres.start()
    # No half-written turn: the stored history is the one turn before the restart.
    stored = replicas.stored("restart")
    assert len(stored) == 2 and LONG not in json.dumps(stored)
    after = one.chat("tell me more", session_id="restart", **TURN)
    growth = after["usage"]["prompt_tokens"] - before["usage"]["prompt_tokens"]
    assert 0 < growth < 40, (before["usage"], after["usage"])  # one short turn more, not 900 tokens
    assert (
        two.chat("tell me more", session_id="restart", **TURN)["usage"]["prompt_tokens"]
        > after["usage"]["prompt_tokens"]
    )
    assert len(replicas.stored("restart")) == 6


def test_an_unreachable_store_refuses_the_start_without_showing_the_password(
    tmp_path: Path, tiny_model: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    url = f"postgresql://{PASSWORD_ROLE}@127.0.0.1:{free_port()}/sessions"
    env = serve_env(tiny_model, VLLM_MCP_SESSION_STORE=url, VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(secret))
    proc = subprocess.run(
        serve_command(), env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stdout == b""  # stdout carries protocol only
    lines: list[dict[str, Any]] = [
        json.loads(line) for line in proc.stderr.decode().splitlines() if line.startswith("{")
    ]
    critical = [line for line in lines if line.get("level") == "CRITICAL"]
    assert len(critical) == 1, proc.stderr
    assert critical[0]["message"].startswith(f"cannot reach the session store {url}: "), critical
    assert "Traceback" not in proc.stderr.decode() and PASSWORD not in proc.stderr.decode()
