"""vllm_mcp/config/oauth.py through ``Settings.load``: what the OAuth settings accept and refuse."""

from __future__ import annotations

from typing import Any

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ConfigError

HTTP = {"VLLM_MCP_TRANSPORT": "http"}


def load(**env: str) -> Settings:
    return Settings.load(environ={**HTTP, **env})


def refused(**env: str) -> str:
    with pytest.raises(ConfigError) as e:
        load(**env)
    return str(e.value)


def test_https_issuers_anywhere_http_on_loopback_only() -> None:
    assert load(VLLM_MCP_OAUTH_ISSUER="https://auth.example.org/realms/x").oauth_issuer == (
        "https://auth.example.org/realms/x"
    )
    assert load(VLLM_MCP_OAUTH_ISSUER="http://127.0.0.1:9000").oauth_issuer == "http://127.0.0.1:9000"
    message = refused(VLLM_MCP_OAUTH_ISSUER="http://auth.example.org")
    assert "VLLM_MCP_OAUTH_ISSUER" in message and "https://" in message and "loopback only" in message
    assert "absolute https:// URL" in refused(VLLM_MCP_OAUTH_ISSUER="auth.example.org")
    assert "user name or password" in refused(VLLM_MCP_OAUTH_ISSUER="https://u:p@auth.example.org")
    assert "query or fragment" in refused(VLLM_MCP_OAUTH_JWKS_URL="https://a.example.org/k?x=1")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"VLLM_MCP_OAUTH_SCOPES": 'mcp "x'}, "not an OAuth scope"),
        ({"VLLM_MCP_OAUTH_CALLER_CLAIM": "a b"}, "claim name"),
        ({"VLLM_MCP_HTTP_PUBLIC_URL": "https://mcp.example.org/mcp"}, "without a path"),
        ({"VLLM_MCP_OAUTH_CLIENT_ID": "rs"}, "needs both VLLM_MCP_OAUTH_CLIENT_ID"),
    ],
)
def test_a_bad_oauth_setting_says_what_to_set(env: dict[str, str], words: str) -> None:
    assert words in refused(VLLM_MCP_OAUTH_ISSUER="https://auth.example.org", **env)


def test_oauth_settings_without_an_issuer_are_refused() -> None:
    message = refused(VLLM_MCP_OAUTH_AUDIENCE="https://mcp.example.org/mcp")
    assert "VLLM_MCP_OAUTH_AUDIENCE is set but VLLM_MCP_OAUTH_ISSUER is not" in message


def test_scopes_are_normalised_and_the_public_url_loses_its_slash() -> None:
    s = load(
        VLLM_MCP_OAUTH_ISSUER="https://auth.example.org",
        VLLM_MCP_OAUTH_SCOPES="  mcp:tools   mcp:tools openid ",
        VLLM_MCP_HTTP_PUBLIC_URL="https://mcp.example.org/",
    )
    assert (s.oauth_scopes, s.http_public_url) == ("mcp:tools openid", "https://mcp.example.org")


def test_an_issuer_lets_a_named_server_listen_beyond_loopback() -> None:
    message = refused(VLLM_MCP_HTTP_HOST="0.0.0.0")
    assert "VLLM_MCP_HTTP_TOKEN_FILE" in message and "VLLM_MCP_OAUTH_ISSUER" in message
    message = refused(VLLM_MCP_HTTP_HOST="0.0.0.0", VLLM_MCP_OAUTH_ISSUER="https://auth.example.org")
    assert "VLLM_MCP_HTTP_PUBLIC_URL" in message  # the audience cannot be guessed from 0.0.0.0
    s = load(
        VLLM_MCP_HTTP_HOST="0.0.0.0",
        VLLM_MCP_OAUTH_ISSUER="https://auth.example.org",
        VLLM_MCP_HTTP_PUBLIC_URL="https://mcp.example.org",
    )
    assert s.http_host == "0.0.0.0"


def test_the_audience_comes_from_the_public_url(tmp_path: Any) -> None:
    from vllm_mcp.protocol.oauth import resource_url

    bound = "http://127.0.0.1:8000/mcp"
    base = {"VLLM_MCP_OAUTH_ISSUER": "https://auth.example.org"}
    assert resource_url(load(**base), bound) == bound
    assert resource_url(load(**base, VLLM_MCP_HTTP_PUBLIC_URL="https://mcp.example.org"), bound) == (
        "https://mcp.example.org/mcp"
    )
    assert resource_url(load(**base, VLLM_MCP_OAUTH_AUDIENCE="https://x.example.org/v"), bound) == (
        "https://x.example.org/v"
    )


def test_config_show_names_the_secret_file_never_the_secret(tmp_path: Any) -> None:
    from tests.support.cli import invoke

    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-introspection-secret\n")
    done = invoke(
        "config",
        "show",
        "--json",
        VLLM_MCP_OAUTH_ISSUER="https://auth.example.org",
        VLLM_MCP_OAUTH_CLIENT_ID="rs",
        VLLM_MCP_OAUTH_CLIENT_SECRET_FILE=str(secret),
    )
    assert done.exit_code == 0, done.output
    assert str(secret) in done.output and "s3cr3t" not in done.output
