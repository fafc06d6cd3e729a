"""deploy/haproxy/vllm-mcp.cfg: valid for Debian's HAProxy as shipped and as rendered, and the
real HAProxy with it in front of two HTTP transports (vllm_mcp/protocol/http.py around a bare
SDK ``Server``, no engine): routing by ``Mcp-Param-Session-Id``, ``leastconn`` otherwise, and a
replica that stops gets no new calls while its call in flight finishes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import haproxy
from tests.support.served import Recorder, ServedDouble, chat, wait_listening


def test_the_shipped_config_is_valid() -> None:
    done = haproxy.check(haproxy.TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_rendered_config_has_one_server_per_replica_in_each_backend(tmp_path: Path) -> None:
    text = haproxy.render(
        "*:8099", ["10.0.0.1:8100", "10.0.0.2:8100", "10.0.0.3:8200"], "10.0.0.5 192.168.1.0/24"
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    done = haproxy.check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "    bind *:8099\n" in text
    assert (
        "    tcp-request connection reject unless { src 127.0.0.0/8 ::1 10.0.0.5 192.168.1.0/24 }\n" in text
    )
    servers = [line.split() for line in text.splitlines() if line.strip().startswith("server ")]
    assert [s[1:3] for s in servers] == [
        ["replica0", "10.0.0.1:8100"],
        ["replica1", "10.0.0.2:8100"],
        ["replica2", "10.0.0.3:8200"],
    ] * 2
    assert [s[-1] for s in servers[3:]] == [f"replicas_by_session/replica{i}" for i in range(3)]
    assert "127.0.0.1:81" not in text  # nothing of the template's example layout is left


def test_a_config_rendered_with_a_certificate_terminates_tls_and_is_valid(tmp_path: Path) -> None:
    pem, _ = haproxy.self_signed(tmp_path)
    text = haproxy.render("*:8099", ["10.0.0.1:8100"], cert=pem)
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    done = haproxy.check(config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"    bind *:8099 ssl crt {pem} alpn h2,http/1.1 ssl-min-ver TLSv1.2\n" in text
    assert "Strict-Transport-Security" in text
    assert "ssl" not in haproxy.render("*:8099", ["10.0.0.1:8100"])  # no certificate: plain HTTP


def test_the_balancer_serves_https_with_the_certificate(tmp_path: Path) -> None:
    """A real MCP call through HAProxy's TLS to a replica, the client trusting only that cert."""
    import ssl

    import httpx

    from tests.support.httpserver import ACCEPT
    from tests.support.served import INIT

    pem, crt = haproxy.self_signed(tmp_path)
    replica = ServedDouble(tmp_path, VLLM_MCP_HTTP_STATELESS="true")
    balancer = None
    try:
        wait_listening(replica.base + "/healthz")
        replica.state = "ready"
        balancer = haproxy.Balancer(tmp_path, [replica.base.removeprefix("http://")], cert=pem)
        assert balancer.url.startswith("https://")
        with httpx.Client(verify=ssl.create_default_context(cafile=str(crt)), timeout=30) as client:
            reply = client.post(balancer.url, json=INIT, headers=ACCEPT)
        assert reply.status_code == 200, reply.text
        assert reply.headers["strict-transport-security"] == "max-age=31536000"
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port gets nowhere
            httpx.post(balancer.url.replace("https://", "http://"), json=INIT, headers=ACCEPT, timeout=30)
    finally:
        if balancer is not None:
            balancer.close()
        replica.close()


def test_rendering_without_a_replica_is_refused() -> None:
    with pytest.raises(RuntimeError, match="no replica address given"):
        haproxy.render("*:8099", [])


# --- the real HAProxy in front of two transports ----------------------------------------------


class Replicas:
    def __init__(self, tmp: Path) -> None:
        self.recorders = [Recorder(), Recorder()]
        self.served = [ServedDouble(tmp, r.server(), VLLM_MCP_HTTP_STATELESS="true") for r in self.recorders]
        for s in self.served:
            wait_listening(s.base + "/healthz")
            s.state = "ready"
        self.balancer = haproxy.Balancer(tmp, [s.base.removeprefix("http://") for s in self.served])
        # HAProxy takes a server as UP until a check fails: both are ready already.

    def wait_state(self, server: str, state: str, timeout: float = 20) -> None:
        """Until HAProxy says ``server`` is ``state``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(f"is {state}" in line for line in self.balancer.server_state(server)):
                return
            time.sleep(0.05)
        raise TimeoutError(f"{server} never {state}: " + "\n".join(self.balancer.lines[-20:]))

    def served_by(self) -> list[int]:
        """How many calls each replica has seen."""
        return [len(r.headers) for r in self.recorders]

    def close(self) -> None:
        self.balancer.close()
        for r in self.recorders:
            r.release.set()
        for s in self.served:
            s.close()


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    made = Replicas(tmp_path)
    yield made
    made.close()


async def calls(url: str, arguments: list[dict[str, Any]], mode: str = "auto") -> list[str]:
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    out = []
    async with Client(streamable_http_client(url), mode=mode) as client:  # type: ignore[arg-type]
        for args in arguments:
            result = await client.call_tool("chat_completion", args)
            assert not result.is_error, result
            out.append(result.content[0].text)
    return out


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_a_session_stays_on_one_replica_and_sessions_spread(replicas: Replicas) -> None:
    ids = [f"conversation-{i}" for i in range(16)]
    assert run(calls(replicas.balancer.url, [chat(i) for i in ids] * 2)) == ids * 2
    routes = replicas.balancer.routes(32, backend="replicas_by_session")
    assert len(routes) == 32 and all(status == 200 for _, _, status in routes)
    first, second = [server for _, server, _ in routes[:16]], [server for _, server, _ in routes[16:]]
    assert first == second  # every conversation went back where it was
    assert set(first) == {"replica0", "replica1"}  # and 16 of them did not all hash to one
    assert replicas.served_by()[0] + replicas.served_by()[1] == 32


def test_calls_without_a_session_are_balanced_by_load(replicas: Replicas) -> None:
    assert run(calls(replicas.balancer.url, [chat()] * 4, mode="legacy")) == ["none"] * 4
    assert run(calls(replicas.balancer.url, [chat("legacy-era")], mode="legacy")) == ["legacy-era"]
    posts = replicas.balancer.routes(5)
    assert posts and {backend for backend, _, _ in posts} == {"replicas_by_load"}  # no header sent


def test_a_stopping_replica_gets_no_new_calls_and_finishes_its_own(replicas: Replicas) -> None:
    url = replicas.balancer.url
    run(calls(url, [chat("probe")]))

    # A slow call in flight on the replica the conversation hashes to (which one is read from
    # the replica that receives it: HAProxy's log line can come later than the call) ...
    outcome: dict[str, Any] = {}

    def slow() -> None:
        async def go() -> None:
            from mcp.client.client import Client
            from mcp.client.streamable_http import streamable_http_client

            async with Client(streamable_http_client(url)) as client:
                outcome["result"] = await client.call_tool("end_session", {"session_id": "probe"})

        run(go())

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(r.started.is_set() for r in replicas.recorders) and time.monotonic() < deadline:
        time.sleep(0.02)
    started = [i for i, r in enumerate(replicas.recorders) if r.started.is_set()]
    assert len(started) == 1, started
    index = started[0]
    home = f"replica{index}"
    busy, other = replicas.recorders[index], replicas.recorders[1 - index]
    # ... when that replica starts to stop (what SIGTERM does: intake closed, /healthz 503).
    replicas.served[index].transport.stop_intake()
    replicas.served[index].state = "stopping"
    replicas.wait_state(home, "DOWN")
    before = len(other.headers)
    assert run(calls(url, [chat("probe"), chat("probe")])) == ["probe", "probe"]
    assert len(other.headers) == before + 2  # the conversation moved
    busy.release.set()
    thread.join(30)
    assert not outcome["result"].is_error and not busy.cancelled.is_set()  # and its call finished


def test_a_call_refused_by_a_stopping_replica_is_retried_on_the_other(replicas: Replicas) -> None:
    """The second before HAProxy's check sees the 503: the replica refuses, HAProxy retries."""
    url = replicas.balancer.url
    run(calls(url, [chat("probe")]))
    (_, home, _) = replicas.balancer.routes(1, backend="replicas_by_session")[-1]
    index = int(home.removeprefix("replica"))
    replicas.served[index].transport.stop_intake()  # refusing, while its /healthz still says ready
    assert run(calls(url, [chat("probe")])) == ["probe"]
    (_, server, status) = replicas.balancer.routes(2, backend="replicas_by_session")[-1]
    assert (server, status) == (f"replica{1 - index}", 200)


def test_progress_streams_through_the_balancer_while_the_call_runs(tmp_path: Path) -> None:
    """HAProxy forwards each SSE event as it comes (``option http-no-delay``), not the
    response as a whole: the call only ends once its client has seen its progress."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from vllm_mcp.protocol.server import _progress_token

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if _progress_token(ctx) is not None:
            await ctx.session.report_progress(1, 2, "part 1")
        while not seen.is_set():
            await asyncio.sleep(0.02)
        return types.CallToolResult(content=[types.TextContent(type="text", text="done")])

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name="anything", input_schema={"type": "object"})])

    seen = threading.Event()
    server = Server("streamer", on_list_tools=list_tools, on_call_tool=call_tool)
    served = ServedDouble(tmp_path, server)
    served.state = "ready"
    balancer = haproxy.Balancer(tmp_path, [served.base.removeprefix("http://")])

    async def go() -> str:
        from mcp.client.client import Client
        from mcp.client.streamable_http import streamable_http_client

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            seen.set()

        async with Client(streamable_http_client(balancer.url), mode="legacy") as client:
            result = await client.call_tool("anything", {}, 30, on_progress)
            return result.content[0].text

    try:
        wait_listening(served.base + "/healthz")
        assert run(go()) == "done"
    finally:
        balancer.close()
        served.close()
