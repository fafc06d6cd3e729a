"""Unit tests of the HTTP transport's setup (vllm_mcp/protocol/http.py) that need no engine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.support import serve_env
from vllm_mcp.protocol.http import HttpSetupError, bind_socket, security_settings


def test_loopback_bind_allows_loopback_names_only() -> None:
    s = security_settings("127.0.0.1", [])
    assert s.enable_dns_rebinding_protection
    assert "localhost:*" in s.allowed_hosts and "127.0.0.1:*" in s.allowed_hosts
    assert not any("example" in h for h in s.allowed_hosts)
    assert "http://localhost:*" in s.allowed_origins


def test_a_named_bind_allows_its_own_address_and_the_extras() -> None:
    s = security_settings("10.0.0.5", ["mcp.example.org", "gw.example.org:443"])
    assert {"10.0.0.5", "10.0.0.5:*", "mcp.example.org:*", "gw.example.org:443"} <= set(s.allowed_hosts)
    assert "gw.example.org:*" not in s.allowed_hosts  # a port given is that port only
    assert "https://mcp.example.org:*" in s.allowed_origins


def test_a_wildcard_bind_checks_hosts_only_when_told_which() -> None:
    assert not security_settings("0.0.0.0", []).enable_dns_rebinding_protection
    s = security_settings("0.0.0.0", ["mcp.example.org"])
    assert s.enable_dns_rebinding_protection and "mcp.example.org:*" in s.allowed_hosts
    assert not security_settings("10.0.0.5", ["*"]).enable_dns_rebinding_protection


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HttpSetupError, match=f"cannot listen on 127.0.0.1:{port}: .*VLLM_MCP_HTTP_PORT"):
            bind_socket("127.0.0.1", port)


def run_serve(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "serve", "--transport", "http"],
        env=serve_env(tmp_path / "no-model", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_a_public_bind_without_a_token_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_serve(tmp_path, VLLM_MCP_HTTP_HOST="0.0.0.0")
    assert done.returncode == 2
    assert "VLLM_MCP_HTTP_TOKEN_FILE" in done.stderr and "refusing to serve" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_serve_stops_before_loading_when_the_port_is_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT=str(port))
    assert done.returncode == 2
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(f"cannot listen on 127.0.0.1:{port}" in r["message"] for r in lines)
    assert not any(r["message"] == "starting" for r in lines)  # the engine never started


def test_serve_stops_before_loading_when_the_token_file_is_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT="0", VLLM_MCP_HTTP_TOKEN_FILE=str(tmp_path / "absent"))
    assert done.returncode == 2
    assert "no such file (VLLM_MCP_HTTP_TOKEN_FILE)" in done.stderr


def test_chat_url_names_an_unreachable_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/mcp"
    done = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "chat", "--url", url, "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert f"{url}: cannot connect" in done.stderr and "Traceback" not in done.stderr


def test_chat_url_refuses_a_bad_token_file_without_showing_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    token_file = tmp_path / "t"
    token_file.write_text("shorty\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vllm_mcp",
            "chat",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--token-file",
            str(token_file),
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "token shorter than 16 characters" in done.stderr and "shorty" not in done.stderr


def test_building_the_transport_binds_and_reads_nothing_its_startup_does(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from vllm_mcp.config.settings import Settings
    from vllm_mcp.protocol.http import HttpTransport

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_PORT": str(port)}
        in_use = HttpTransport(Settings.load(environ=env))  # the port in use is not touched yet
        absent = HttpTransport(
            Settings.load(environ={**env, "VLLM_MCP_HTTP_TOKEN_FILE": str(tmp_path / "absent")})
        )
        with pytest.raises(
            HttpSetupError, match=f"cannot listen on 127.0.0.1:{port}: Address already in use"
        ):
            asyncio.run(in_use.startup())
        with pytest.raises(HttpSetupError, match=r"no such file \(VLLM_MCP_HTTP_TOKEN_FILE\)"):
            asyncio.run(absent.startup())


# --- the transport in process, around an SDK Server with no tools (no engine) ------------------


class ServedDouble:
    """HttpTransport serving a bare SDK ``Server`` (a stand-in for vllm-mcp's) on a thread."""

    def __init__(self, tmp_path, server=None, **env: str) -> None:  # type: ignore[no-untyped-def]
        import asyncio
        import threading

        from mcp.server.lowlevel import Server

        from vllm_mcp.config.settings import Settings
        from vllm_mcp.protocol.http import HttpTransport
        from vllm_mcp.protocol.transport import ServerHooks

        settings = Settings.load(environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_PORT": "0", **env})
        self.state = "loading"
        self.load_status: dict[str, Any] = {}
        hooks = ServerHooks(health=lambda: self.state, load_status=lambda: self.load_status)
        self.transport = HttpTransport(settings, hooks)
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.transport.startup())  # binds: the port is known from here
        self.thread = threading.Thread(
            target=self.loop.run_until_complete,
            args=(self.transport.serve(server or Server("double")),),
            daemon=True,
        )
        self.thread.start()
        self.url = self.transport.url
        self.base = self.url.removesuffix("/mcp")

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.transport.close)
        self.thread.join(30)


@pytest.fixture
def double(tmp_path):  # type: ignore[no-untyped-def]
    token_file = tmp_path / "tokens"
    token_file.write_text("alice:" + "a" * 32 + "\n")
    token_file.chmod(0o600)
    served = ServedDouble(tmp_path, VLLM_MCP_HTTP_TOKEN_FILE=str(token_file))
    yield served
    served.close()


def wait_listening(url: str) -> None:
    import httpx2

    for _ in range(100):
        try:
            httpx2.get(url, timeout=5)
            return
        except httpx2.TransportError:
            time.sleep(0.05)


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def test_healthz_follows_the_server_state(double: ServedDouble) -> None:
    import httpx2

    wait_listening(double.base + "/healthz")
    r = httpx2.get(double.base + "/healthz")
    assert (r.status_code, r.json()) == (503, {"state": "loading"})
    double.state = "ready"
    r = httpx2.get(double.base + "/healthz")
    assert (r.status_code, r.json()) == (200, {"state": "ready"})


def test_healthz_says_the_load_phase(double: ServedDouble) -> None:
    import httpx2

    wait_listening(double.base + "/healthz")
    status = {"phase": "compiling", "phase_s": 12.0, "load_s": 95.3}
    double.load_status = status
    r = httpx2.get(double.base + "/healthz")
    assert (r.status_code, r.json()) == (503, {"state": "loading", **status})


def test_requests_without_the_token_are_401_with_a_bearer_challenge(double: ServedDouble) -> None:
    import httpx2

    wait_listening(double.base + "/healthz")
    r = httpx2.post(double.url, json=INIT, headers={**ACCEPT, "Authorization": "Bearer " + "b" * 32})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = httpx2.post(double.url, json=INIT, headers={**ACCEPT, "Authorization": "Bearer " + "a" * 32})
    assert r.status_code == 200 and r.headers["mcp-session-id"]


def test_once_stopping_requests_are_503_and_notifications_pass(double: ServedDouble) -> None:
    import httpx2

    wait_listening(double.base + "/healthz")
    auth = {**ACCEPT, "Authorization": "Bearer " + "a" * 32}
    session = httpx2.post(double.url, json=INIT, headers=auth).headers["mcp-session-id"]
    double.transport.stop_intake()
    r = httpx2.post(double.url, json=INIT, headers=auth)
    assert r.status_code == 503 and r.json()["error"]["message"] == "server is shutting down; request refused"
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    r = httpx2.post(
        double.url,
        json=note,
        headers={**auth, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
    )
    assert r.status_code == 202
    for _ in range(100):  # the exchanges end just after their last byte reached us
        if double.transport.in_flight == 0:
            break
        time.sleep(0.05)
    assert double.transport.in_flight == 0


def test_chat_url_explains_a_401(double: ServedDouble) -> None:
    import asyncio

    from vllm_mcp.protocol import client

    wait_listening(double.base + "/healthz")
    with pytest.raises(client.ChatFailed, match="401 Unauthorized: give --token-file"):
        asyncio.run(client.chat_url("hi", double.url, None, print))


def test_a_client_that_hangs_up_mid_call_cancels_the_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The SDK's 2025-era transport lets a call run on when its client goes; ours cancels it."""
    import threading

    import anyio
    import httpx2
    import mcp_types as types
    from mcp.server.lowlevel import Server

    started, cancelled = threading.Event(), threading.Event()

    async def slow(ctx, params):  # type: ignore[no-untyped-def]
        started.set()
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return types.CallToolResult(content=[])

    served = ServedDouble(tmp_path, Server("slow double", on_call_tool=slow))
    try:
        wait_listening(served.base + "/healthz")
        with httpx2.Client(headers=ACCEPT, timeout=30) as http:
            session = http.post(served.url, json=INIT).headers["mcp-session-id"]
            headers = {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
            http.post(
                served.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
            )
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {"name": "slow", "arguments": {}},
            }
            with http.stream("POST", served.url, json=call, headers=headers):
                assert started.wait(30)
            assert cancelled.wait(10), "the call ran on after its client hung up"
    finally:
        served.close()
