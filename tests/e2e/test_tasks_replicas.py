"""End to end: tasks shared by two real replicas on one real PostgreSQL (tests/postgres.py).

The TypeScript SDK's client (tests/e2e/tasks_replicas_client.mjs) creates tasks on replica A
and follows them on replica B: B fetches a result A produced, B cancels a generation running
on A (A aborts its engine request), and when A is killed (SIGKILL) mid-generation B reports
the task ``failed``, saying its server stopped, within the lease (3 s here).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import nodetools
from tests.support.httpserver import HttpServer
from tests.support.nodetools import require_sdk
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.engine

CLIENT = Path(__file__).parent / "tasks_replicas_client.mjs"
LEASE_S = 3


def test_a_task_made_on_one_replica_is_fetched_cancelled_and_failed_from_the_other(
    tiny_model: Path, postgres_server: PostgresServer
) -> None:
    require_sdk()
    env = {
        "VLLM_MCP_SESSION_STORE": postgres_server.new_database(),
        "VLLM_MCP_TASK_LEASE_SECONDS": str(LEASE_S),
    }
    a, b = HttpServer(tiny_model, **env), HttpServer(tiny_model, **env)
    try:
        a.wait_ready()
        b.wait_ready()
        client = subprocess.Popen(
            ["node", str(CLIENT), str(nodetools.TOOLS), a.url, b.url],
            env=nodetools.node_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdin is not None
        first = json.loads(client.stdout.readline() or "{}")
        if "kill" in first:
            a.kill()  # SIGKILL: no shutdown, nothing marks its tasks
            client.stdin.write("killed\n")
            client.stdin.flush()
            report = json.loads(client.stdout.readline())
        else:
            report = first
        client.wait(60)
    finally:
        a.close()
        b.close()
    assert "failure" not in report, (report, client.stderr.read() if client.stderr else "")
    # Produced on A, fetched on B.
    assert report["chat_on_b"]["structuredContent"]["usage"]["completion_tokens"] == 16
    assert report["chat_get_on_b"]["status"] == "completed"
    # Running on A, cancelled on B: A stopped it.
    assert report["long_seen_on_b"].startswith("generating: ")
    assert report["cancel_on_b"]["status"] == "cancelled"
    assert report["long_on_a"]["status"] == "cancelled"
    assert report["unfinished_on_a"] == 0
    assert report["tasks_on_a"]["completed"] == 1 and report["tasks_on_a"]["cancelled"] == 1
    # A killed mid-generation: B says the task failed, and why, within the lease (and a poll or two).
    doomed = report["doomed"]
    assert doomed["status"] == "failed", doomed
    assert "the server that ran this task stopped" in doomed["statusMessage"]
    assert report["doomed_after_s"] < LEASE_S + 10
