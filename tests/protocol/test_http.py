"""Unit tests of the HTTP transport's setup (vllm_mcp/protocol/http.py) that need no engine."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from tests.support.httpserver import ACCEPT
from tests.support.models import serve_env
from tests.support.served import INIT, ServedDouble, wait_listening
from vllm_mcp.errors import ConfigError, TokenFileError
from vllm_mcp.protocol.http import HttpSetupError, bind_socket, security_settings


def test_loopback_bind_allows_loopback_names_only() -> None:
    assert "127.0.0.2:*" in security_settings("127.0.0.2", []).allowed_hosts
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
    assert done.returncode == ConfigError.exit_code == 2
    assert "VLLM_MCP_HTTP_TOKEN_FILE" in done.stderr and "refusing to serve" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_serve_stops_before_loading_when_the_port_is_taken(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT=str(port))
    assert done.returncode == HttpSetupError.exit_code == 2
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(f"cannot listen on 127.0.0.1:{port}" in r["message"] for r in lines)
    assert not any(r["message"] == "starting" for r in lines)  # the engine never started


def test_serve_stops_before_loading_when_the_token_file_is_missing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT="0", VLLM_MCP_HTTP_TOKEN_FILE=str(tmp_path / "absent"))
    assert done.returncode == TokenFileError.exit_code == 2  # its own class now, not HttpSetupError
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


@pytest.mark.parametrize("host", ["127.0.0.2", "::1"])
def test_a_server_on_any_loopback_address_accepts_its_own_host(tmp_path, host: str) -> None:  # type: ignore[no-untyped-def]
    import httpx

    if ":" in host and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        served = ServedDouble(tmp_path, VLLM_MCP_HTTP_HOST=host)
    except HttpSetupError as e:
        pytest.skip(f"cannot listen on {host} here: {e}")
    try:
        wait_listening(served.base + "/healthz")
        hostport = served.base.removeprefix("http://")
        reply = httpx.post(served.url, json=INIT, headers={**ACCEPT, "Host": hostport}, timeout=30)
        assert reply.status_code == 200, reply.text
        rebound = httpx.post(served.url, json=INIT, headers={**ACCEPT, "Host": "evil.example"}, timeout=30)
        assert rebound.status_code == 421  # a rebound name is still refused
    finally:
        served.close()


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
        with pytest.raises(TokenFileError, match=r"no such file \(VLLM_MCP_HTTP_TOKEN_FILE\)") as e:
            asyncio.run(absent.startup())
        assert e.value.exit_code == 2


# --- the transport in process, around an SDK Server with no tools (no engine) ------------------


def own_non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (no packet is sent to find it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_chat_url_warns_before_sending_a_token_over_plain_http_to_another_host(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vllm_mcp.cli.chat import plain_http_warning

    assert plain_http_warning("http://127.0.0.2:8000/mcp") is None
    assert plain_http_warning("http://[::1]:8000/mcp") is None
    assert plain_http_warning("https://mcp.example.org/mcp") is None
    assert "mcp.example.org" in (plain_http_warning("HTTP://mcp.example.org:8000/mcp") or "")
    address = own_non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with socket.socket() as s:
        s.bind((address, 0))
        port = s.getsockname()[1]  # closed again: the connection is refused
    token_file = tmp_path / "t"
    token_file.write_text("alice:" + "a" * 32 + "\n")
    runs = {}
    for token in (["--token-file", str(token_file)], []):
        runs[bool(token)] = subprocess.run(
            [sys.executable, "-m", "vllm_mcp", "chat", "--url", f"http://{address}:{port}/mcp", *token, "hi"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    lines = runs[True].stderr.splitlines()
    warned = [
        n for n, line in enumerate(lines) if "warning: sending the bearer token over plain HTTP" in line
    ]
    failed = [n for n, line in enumerate(lines) if "cannot connect" in line]
    assert warned and failed and warned[0] < failed[0], runs[True].stderr
    assert address in lines[warned[0]] and "a" * 32 not in runs[True].stderr
    assert "plain HTTP" not in runs[False].stderr  # no token, nothing to warn about


# --- the transport in process, around an SDK Server with no tools (no engine) ------------------


@pytest.fixture
def double(tmp_path):  # type: ignore[no-untyped-def]
    token_file = tmp_path / "tokens"
    token_file.write_text("alice:" + "a" * 32 + "\n")
    token_file.chmod(0o600)
    served = ServedDouble(tmp_path, VLLM_MCP_HTTP_TOKEN_FILE=str(token_file))
    yield served
    served.close()


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
