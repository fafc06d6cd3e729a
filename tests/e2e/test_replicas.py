"""End to end: two real `vllm-mcp serve --transport http` replicas (tiny model, stateless, one
real PostgreSQL session store) behind the real HAProxy, configured from
deploy/haproxy/vllm-mcp.cfg as deploy/install.sh renders it. The official SDK client talks to
HAProxy only, in both protocol eras:

- 2025 (initialize handshake, ClientSession): no Mcp-Param header, so HAProxy balances by
  load and the turns of one conversation land on both replicas; each keeps every earlier turn.
- 2026-07-28 (``Client``): ``session_id`` also travels as ``Mcp-Param-Session-Id``, so the
  conversation stays on one replica (its prefix cache); SIGTERM that replica while a turn
  generates there: the turn completes, the next turns go to the other replica and nothing is
  lost. That test stops a replica, so it runs last.

Which replica answered each call: HAProxy's ``X-Vllm-Mcp-Replica`` response header.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support import haproxy
from tests.support.httpserver import HttpServer
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.engine

TURN = {"max_tokens": 4, "min_tokens": 4, "seed": 1, "temperature": 0}


class Cluster:
    def __init__(self, tmp: Path, postgres: PostgresServer, model: Path) -> None:
        self.postgres = postgres
        self.store = postgres.new_database()
        self.database = self.store.rsplit("/", 1)[1]
        env = {"VLLM_MCP_SESSION_STORE": self.store, "VLLM_MCP_HTTP_STATELESS": "true"}
        self.replicas = [HttpServer(model, **env), HttpServer(model, **env)]
        try:
            # Ports are bound before the engines load: HAProxy starts now and sees them come up.
            self.balancer = haproxy.Balancer(tmp, [r.base.removeprefix("http://") for r in self.replicas])
            for replica in self.replicas:
                replica.wait_ready()
            for name in ("replica0", "replica1"):
                self.wait_balancer(name, "UP")
        except BaseException:
            self.close()
            raise

    def wait_balancer(self, server: str, state: str, timeout: float = 60) -> None:
        """Until HAProxy's health checks have taken ``server`` ``state`` (UP after loading)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            said = self.balancer.server_state(server)
            if said and f"is {state}" in said[-1]:
                return
            # HAProxy takes a server as UP until a check fails: ready before the first check.
            if not said and state == "UP" and time.monotonic() - self.balancer.started > 3:
                return
            time.sleep(0.1)
        raise TimeoutError(f"HAProxy never took {server} {state}: " + "\n".join(self.balancer.lines[-20:]))

    def stored(self, session: str) -> list[dict[str, str]]:
        rows = self.postgres.sql(
            f"SELECT messages FROM vllm_mcp_sessions WHERE id = '{session}'", self.database
        )
        return rows[0][0] if rows else []  # type: ignore[return-value]

    def close(self) -> None:
        if hasattr(self, "balancer"):
            self.balancer.close()
        for replica in self.replicas:
            replica.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer, tiny_model: Path
) -> Iterator[Cluster]:
    if not postgres_server.running:
        postgres_server.start()
    made = Cluster(tmp_path_factory.mktemp("replicas"), postgres_server, tiny_model)
    yield made
    made.close()


class Served:
    """The replica that answered each tools/call, from HAProxy's response header.

    Only accepted calls count: the SDK's ``Client`` sends its first call of a tool it has not
    listed without the Mcp-Param header, the server refuses it (400, HEADER_MISMATCH) and the
    client lists the tools and sends it again, with the header."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.refused = 0

    async def hook(self, response: httpx2.Response) -> None:
        if b'"tools/call"' in response.request.content:
            if response.status_code == 200:
                self.calls.append(response.headers.get("x-vllm-mcp-replica", "?"))
            else:
                self.refused += 1


@asynccontextmanager
async def http(served: Served) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(
        timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [served.hook]}
    ) as c:
        yield c


def ask(content: str, session: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "session_id": session, **TURN, **extra}


def check(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def legacy_conversation(url: str, session: str, turns: int, served: Served) -> list[dict[str, Any]]:
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    out = []
    async with (
        http(served) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session_,
    ):
        init = await session_.initialize()
        assert init.protocol_version == "2025-11-25"
        for i in range(turns):
            out.append(check(await session_.call_tool("chat_completion", ask(f"turn {i}", session))))
    return out


def run(coro: Any, timeout: float = 600) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def assert_every_turn_kept(turns: list[dict[str, Any]]) -> None:
    tokens = [t["usage"]["prompt_tokens"] for t in turns]
    assert tokens == sorted(set(tokens)), f"prompt_tokens should grow every turn: {tokens}"


def test_a_2025_conversation_across_both_replicas_keeps_every_turn(cluster: Cluster) -> None:
    served = Served()
    turns = run(legacy_conversation(cluster.balancer.url, "legacy-era", 4, served))
    assert set(served.calls) == {"replica0", "replica1"}, served.calls  # leastconn spread the turns
    assert_every_turn_kept(turns)
    assert len(cluster.stored("legacy-era")) == 8


async def modern_turns(url: str, session: str, turns: int, served: Served) -> list[dict[str, Any]]:
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    out = []
    async with http(served) as client, Client(streamable_http_client(url, http_client=client)) as mcp:
        assert mcp.protocol_version == "2026-07-28"
        for i in range(turns):
            out.append(check(await mcp.call_tool("chat_completion", ask(f"turn {i}", session))))
    return out


def test_a_2026_conversation_stays_on_one_replica_and_keeps_every_turn(cluster: Cluster) -> None:
    served = Served()
    turns = run(modern_turns(cluster.balancer.url, "modern-era", 3, served))
    assert len(served.calls) == 3 and len(set(served.calls)) == 1, served.calls  # hashed on Session-Id
    assert served.refused <= 1  # the first call, before the client had listed the tools
    assert_every_turn_kept(turns)
    assert len(cluster.stored("modern-era")) == 6


def test_sigterm_one_replica_mid_conversation_loses_nothing(cluster: Cluster) -> None:
    """Runs last in this module: it stops a replica."""
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    url, session = cluster.balancer.url, "survives-sigterm"
    served = Served()
    generating = threading.Event()
    report: dict[str, Any] = {}

    async def progress(done: float, total: float | None, message: str | None) -> None:
        generating.set()

    async def conversation() -> None:
        async with http(served) as client, Client(streamable_http_client(url, http_client=client)) as mcp:
            report["first"] = check(await mcp.call_tool("chat_completion", ask("first", session)))
            home = served.calls[-1]
            report["home"] = home
            # A long turn on the conversation's replica; SIGTERM reaches it while it generates.
            long = ask("tell me a long story", session, max_tokens=96, min_tokens=96)
            slow = asyncio.create_task(mcp.call_tool("chat_completion", long, 300, progress))
            while not generating.is_set():
                await asyncio.sleep(0.02)
            replica = cluster.replicas[int(home.removeprefix("replica"))]
            replica.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(cluster.wait_balancer, home, "DOWN", 30)
            # The turn in flight finishes on the draining replica before the next one is asked:
            # across replicas a session has no lock, so a turn asked earlier would not see it.
            report["long"] = check(await slow)
            report["after"] = [
                check(await mcp.call_tool("chat_completion", ask(f"after {i}", session))) for i in range(2)
            ]
            report["exit"] = await asyncio.to_thread(replica.proc.wait, 120)

    run(conversation())
    home = report["home"]
    other = "replica1" if home == "replica0" else "replica0"
    assert served.calls[:2] == [home, home]
    assert served.calls[2:] == [other, other]  # the next turns went to the other replica
    assert report["long"]["usage"]["completion_tokens"] == 96  # the call in flight completed
    assert report["exit"] == 0  # a clean drain, not a kill
    # Nothing lost: the long turn (stored once it finished) precedes the ones after it.
    turns = [report["first"], report["long"], *report["after"]]
    assert_every_turn_kept(turns)
    stored = cluster.stored(session)
    assert [m["content"] for m in stored if m["role"] == "user"] == [
        "first",
        "tell me a long story",
        "after 0",
        "after 1",
    ]
