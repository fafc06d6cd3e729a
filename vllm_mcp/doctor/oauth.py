"""OAuth (``VLLM_MCP_OAUTH_ISSUER``): the issuer's discovery and key set, and the audience.

The server does the same discovery when it starts and refuses to start if it fails; doctor
says so beforehand, and warns where a hosted connector (Claude, ChatGPT) would ask for a
token for another URL than the audience the server checks.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from vllm_mcp.config.settings import Settings, is_loopback
from vllm_mcp.doctor.report import Check

MCP_PATH = "/mcp"


def expected_audience(s: Settings) -> str:
    """The URL clients connect to: the public origin (else the bound address) with /mcp."""
    if s.http_public_url:
        return s.http_public_url + MCP_PATH
    host = s.http_host
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{s.http_port}{MCP_PATH}"


def check_oauth(s: Settings, client: httpx.Client | None = None) -> Check | None:
    """None when OAuth is off; else whether the issuer is usable and the audience right."""
    if s.oauth_issuer is None:
        return None
    from vllm_mcp.protocol import oauth

    url = expected_audience(s)
    try:
        verifier = oauth.start(s, url, client)
    except oauth.OAuthSetupError as e:
        return Check(
            "oauth",
            "fail",
            str(e),
            "check VLLM_MCP_OAUTH_ISSUER (the exact issuer its tokens carry) and that this host reaches it; "
            "the server refuses to start until it does",
        )
    details = {
        "issuer": verifier.issuer.issuer,
        "jwks_uri": verifier.issuer.jwks_uri,
        "keys": len(verifier.keys.keys),
        "audience": verifier.audience,
        "introspection": verifier.introspection.url if verifier.introspection else None,
    }
    if verifier.audience.rstrip("/") != url.rstrip("/"):
        return Check(
            "oauth",
            "warn",
            f"VLLM_MCP_OAUTH_AUDIENCE={verifier.audience} is not the URL clients connect to ({url}); "
            "MCP clients ask for tokens for that URL (RFC 8707), and those would be refused",
            "unset VLLM_MCP_OAUTH_AUDIENCE, or set VLLM_MCP_HTTP_PUBLIC_URL to the origin clients use",
            details,
        )
    if urlsplit(url).scheme != "https" and not s.http_public_url and is_loopback(s.http_host):
        return Check(
            "oauth",
            "warn",
            f"issuer and {len(verifier.keys.keys)} signing key(s) found, but the audience {url} is a "
            "loopback address: hosted connectors (Claude, ChatGPT) cannot reach it",
            "put the server behind an https reverse proxy and set VLLM_MCP_HTTP_PUBLIC_URL (docs/http.md)",
            details,
        )
    return Check(
        "oauth",
        "ok",
        f"issuer {verifier.issuer.issuer}: discovery and {len(verifier.keys.keys)} signing key(s) ok; "
        f"tokens must be for {verifier.audience}",
        details=details,
    )
