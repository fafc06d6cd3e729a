"""End to end: `vllm-mcp serve --transport http` as an OAuth resource server, with real clients.

A real authorization server (oidc-provider from npm, tests/support/oauthserver.py) issues tokens by
client credentials, and by the authorization-code flow with PKCE, with a resource indicator for
the server's /mcp URL; the official SDK
client and the MCP Inspector CLI call tools with them. One server (one engine start) serves the
module, on loopback with OAuth only: a tokenless call is refused there too. Bad tokens are
refused with the status the spec names (tests/protocol/test_oauth.py has every case; here a few against
the real server), callers are the tokens' subjects (sessions, metrics), no token reaches a log.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.support.httpserver import ACCEPT, HttpServer, initialize_body, mcp_client, metrics_settle
from tests.support.nodetools import BIN, run
from tests.support.oauthserver import SCOPE, AuthServer

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = AuthServer(tmp_path_factory.mktemp("oidc"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def served(tiny_model: Path, auth_server: AuthServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("oauth")
    server = HttpServer(
        tiny_model,
        VLLM_MCP_OAUTH_ISSUER=auth_server.issuer,
        VLLM_MCP_OAUTH_SCOPES=SCOPE,
        VLLM_MCP_METRICS_TEXTFILE=str(d / "metrics.prom"),
        VLLM_MCP_METRICS_INTERVAL="0.3",
        VLLM_MCP_METRICS_CALLER_LABEL="token-file",
    )
    try:
        server.wait_ready()
        server.dir = d  # type: ignore[attr-defined]
        server.issued = []  # type: ignore[attr-defined]  # every token handed out, for the log check
        yield server
    finally:
        server.close()


def token(served: Any, auth_server: AuthServer, **kw: Any) -> str:
    issued = auth_server.token(served.url, **kw)
    served.issued.append(issued)
    return issued


def post(served: Any, token: str | None) -> httpx2.Response:
    headers = {**ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx2.post(served.url, json=initialize_body(), headers=headers, timeout=60)


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def test_the_sdk_client_calls_tools_with_a_token_from_the_issuer(
    served: Any, auth_server: AuthServer
) -> None:
    async def main() -> None:
        async with mcp_client(served.url, token(served, auth_server)) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"chat_completion", "complete", "model_info", "end_session"}
            args = {"messages": user("hello"), "max_tokens": 6, "min_tokens": 6}
            result = await client.call_tool("chat_completion", args)
            assert result.is_error is False
            assert result.structured_content["usage"]["completion_tokens"] == 6

    asyncio.run(main())


def test_the_inspector_cli_calls_a_tool_with_the_bearer_header(served: Any, auth_server: AuthServer) -> None:
    if not (BIN / "mcp-inspector").exists():
        pytest.skip("needs the MCP Inspector (.ci/run installs it)")
    header = f"Authorization: Bearer {token(served, auth_server)}"
    base = [str(BIN / "mcp-inspector"), "--cli", served.url, "--header", header]
    done = run([*base, "--method", "tools/call", "--tool-name", "model_info"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["isError"] is False
    # Without a token the Inspector reads the 401's challenge and would start an OAuth flow.
    refused = run([str(BIN / "mcp-inspector"), "--cli", served.url, "--method", "tools/list"])
    assert refused.returncode != 0 and '"auth_required"' in refused.stderr


def test_bad_tokens_get_the_status_the_spec_names(served: Any, auth_server: AuthServer) -> None:
    metadata = f'resource_metadata="{served.base}/.well-known/oauth-protected-resource/mcp"'
    none = post(served, None)  # loopback, yet OAuth is on: no exemption
    assert none.status_code == 401 and metadata in none.headers["www-authenticate"]
    elsewhere = auth_server.token("https://elsewhere.example.test/mcp")
    expired = auth_server.mint({"aud": served.url, "exp": int(time.time()) - 300})
    for bad in (elsewhere, expired, auth_server.mint({"aud": served.url, "iss": "http://127.0.0.1:9"})):
        reply = post(served, bad)
        assert reply.status_code == 401 and 'error="invalid_token"' in reply.headers["www-authenticate"]
    reply = post(served, token(served, auth_server, scope="mcp:read"))
    assert reply.status_code == 403 and 'error="insufficient_scope"' in reply.headers["www-authenticate"]
    doc = httpx2.get(served.base + "/.well-known/oauth-protected-resource/mcp", timeout=60).json()
    assert doc["resource"] == served.url and doc["authorization_servers"] == [auth_server.issuer]


def test_callers_are_token_subjects_with_their_own_sessions_but_no_metrics_series(
    served: Any, auth_server: AuthServer
) -> None:
    sid = "shared-name"
    # Users logged in through the authorization-code flow with PKCE, as hosted clients do it.
    alice = auth_server.login_token(served.url, "alice")
    bob = auth_server.login_token(served.url, "bob")
    served.issued += [alice, bob]
    before = metrics_settle(served)

    async def main() -> None:
        async with mcp_client(served.url, alice) as a, mcp_client(served.url, bob) as b:
            args = {"messages": user("secret plan"), "max_tokens": 4, "min_tokens": 4, "session_id": sid}
            await a.call_tool("chat_completion", args)
            ended = await b.call_tool("end_session", {"session_id": sid})
            assert ended.structured_content["ended"] is False  # the id names nothing of Bob's
            ended = await a.call_tool("end_session", {"session_id": sid})
            assert ended.structured_content["ended"] is True

    asyncio.run(main())
    after = metrics_settle(served)
    # A subject is personal data and one series per user: every OAuth caller is "oauth".
    assert after.get("oauth", 0) - before.get("oauth", 0) == 3
    assert "alice" not in after and "bob" not in after


def test_a_token_without_sub_has_no_session_namespace(served: Any, auth_server: AuthServer) -> None:
    """Issue 27, finding 4: on main a token without ``sub`` took its ``client_id`` as the
    caller, the namespace a user of that name would have; now it generates, but a session_id
    is refused by name (VLLM_MCP_OAUTH_CALLER_CLAIM can name a claim such tokens carry).
    (oidc-provider puts the client in ``sub`` of its client-credentials tokens: minted here.)"""
    nameless = auth_server.mint({"aud": served.url, "sub": None, "client_id": "alice"})
    served.issued.append(nameless)

    async def main() -> None:
        async with mcp_client(served.url, nameless) as client:
            args = {"messages": user("hello"), "max_tokens": 2}
            assert (await client.call_tool("chat_completion", args)).is_error is False
            refused = await client.call_tool("chat_completion", {**args, "session_id": "mine"})
            assert refused.is_error is True
            assert "session_id: this caller's token names no user" in refused.content[0].text
            assert "VLLM_MCP_OAUTH_CALLER_CLAIM" in refused.content[0].text

    asyncio.run(main())


def test_no_token_reaches_the_log(served: Any, auth_server: AuthServer) -> None:
    good = token(served, auth_server)
    bad = auth_server.mint({"aud": "https://elsewhere.example.test/mcp"})
    assert post(served, good).status_code == 200 and post(served, bad).status_code == 401
    log = bytes(served.stderr).decode(errors="replace") + bytes(served.stdout).decode(errors="replace")
    assert not [t for t in [*served.issued, bad] if t in log or t.split(".")[-1] in log]
