"""vllm_mcp/doctor/oauth.py against a real authorization server (oidc-provider,
tests/support/oauthserver.py)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.support.oauthserver import AuthServer
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.oauth import check_oauth


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: Any) -> Any:
    server = AuthServer(tmp_path_factory.mktemp("oidc"))
    yield server
    server.close()


def settings(**env: str) -> Settings:
    return Settings.load(environ={"VLLM_MCP_TRANSPORT": "http", **env})


def test_oauth_off_is_no_check() -> None:
    assert check_oauth(settings()) is None


def test_a_reachable_issuer_behind_a_public_url_is_ok(auth_server: AuthServer) -> None:
    check = check_oauth(
        settings(VLLM_MCP_OAUTH_ISSUER=auth_server.issuer, VLLM_MCP_HTTP_PUBLIC_URL="https://mcp.example.org")
    )
    assert check is not None and check.status == "ok", check
    assert check.details["jwks_uri"] == f"{auth_server.issuer}/jwks" and check.details["keys"] == 1
    assert "tokens must be for https://mcp.example.org/mcp" in check.message


def test_an_audience_other_than_the_public_url_is_a_warning(auth_server: AuthServer) -> None:
    check = check_oauth(
        settings(
            VLLM_MCP_OAUTH_ISSUER=auth_server.issuer,
            VLLM_MCP_HTTP_PUBLIC_URL="https://mcp.example.org",
            VLLM_MCP_OAUTH_AUDIENCE="https://other.example.org/mcp",
        )
    )
    assert check is not None and check.status == "warn"
    assert "is not the URL clients connect to (https://mcp.example.org/mcp)" in check.message


def test_a_loopback_audience_warns_that_hosted_connectors_cannot_reach_it(auth_server: AuthServer) -> None:
    check = check_oauth(settings(VLLM_MCP_OAUTH_ISSUER=auth_server.issuer))
    assert check is not None and check.status == "warn" and "VLLM_MCP_HTTP_PUBLIC_URL" in (check.fix or "")


def test_an_unreachable_issuer_fails_with_its_url(auth_server: AuthServer, tmp_path: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = check_oauth(settings(VLLM_MCP_OAUTH_ISSUER=f"http://127.0.0.1:{port}"))
    assert check is not None and check.status == "fail"
    assert f"http://127.0.0.1:{port}/.well-known/openid-configuration" in check.message
    # An issuer whose metadata names another issuer (a trailing slash is another issuer).
    check = check_oauth(settings(VLLM_MCP_OAUTH_ISSUER=auth_server.issuer + "/"))
    assert check is not None and check.status == "fail" and "names the issuer" in check.message
    # A missing client secret file is named, its would-be content never shown.
    check = check_oauth(
        settings(
            VLLM_MCP_OAUTH_ISSUER=auth_server.issuer,
            VLLM_MCP_OAUTH_CLIENT_ID="mcp-server",
            VLLM_MCP_OAUTH_CLIENT_SECRET_FILE=str(tmp_path / "absent"),
        )
    )
    assert (
        check is not None and check.status == "fail" and "VLLM_MCP_OAUTH_CLIENT_SECRET_FILE" in check.message
    )
