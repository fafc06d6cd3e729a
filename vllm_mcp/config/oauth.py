"""The rules for the OAuth settings (``VLLM_MCP_OAUTH_*``, ``VLLM_MCP_HTTP_PUBLIC_URL``).

Kept apart from settings.py so that the one place that validates settings stays short, and
apart from protocol/oauth.py (which talks to the issuer) so that reading settings needs no
HTTP client. Each rule raises ``ValueError`` with a sentence that says what to send instead.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from vllm_mcp.config.rules import is_loopback

# An OAuth scope token (RFC 6749 section 3.3): visible ASCII except space, '"' and '\'.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


def check_endpoint(value: str, what: str) -> str:
    """An absolute https URL (http only on loopback): the rule for every URL tokens, keys or
    the client secret travel to, whether a setting names it or the issuer's metadata does."""
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https:// URL such as https://auth.example.org")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{what} must use https:// (plain http:// is accepted on loopback only: "
            "127.0.0.1, ::1, localhost), since tokens and keys would travel in the clear"
        )
    return value


def check_url(value: str, what: str, *, path_allowed: bool = True) -> str:
    """An absolute https URL (http only on loopback), without query, fragment or credentials."""
    value = check_endpoint(value, what)
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry a user name or password")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} must not have a query or fragment")
    if not path_allowed and parts.path not in ("", "/"):
        raise ValueError(
            f"{what} is this server's public origin (scheme://host[:port]), without a path; "
            f"drop {parts.path!r}"
        )
    return value.rstrip("/") if not path_allowed else value


def check_scopes(value: str) -> str | None:
    """Space-separated scope tokens, normalised to single spaces."""
    scopes = value.split()
    bad = [s for s in scopes if not _SCOPE.fullmatch(s)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not an OAuth scope (space-separated, e.g. 'mcp:tools')")
    return " ".join(dict.fromkeys(scopes)) or None


def check_claim(value: str) -> str:
    value = value.strip()
    if not _CLAIM.fullmatch(value):
        raise ValueError("must be a claim name such as 'sub', 'email' or 'client_id'")
    return value


def problem(settings: Any) -> str | None:
    """A combination of OAuth settings that cannot serve, as one sentence; None when they can."""
    s = settings
    if (s.oauth_client_id is None) != (s.oauth_client_secret_file is None):
        return (
            "token introspection needs both VLLM_MCP_OAUTH_CLIENT_ID and "
            "VLLM_MCP_OAUTH_CLIENT_SECRET_FILE (the client this server authenticates as); set both or neither"
        )
    if s.oauth_introspection_url is not None and s.oauth_client_id is None:
        return "VLLM_MCP_OAUTH_INTROSPECTION_URL is set without VLLM_MCP_OAUTH_CLIENT_ID and its secret file"
    if s.oauth_issuer is None:
        extra = [n for n, v in _OAUTH_ONLY.items() if getattr(s, v) is not None]
        if extra:
            return f"{extra[0]} is set but VLLM_MCP_OAUTH_ISSUER is not; set the issuer or unset it"
        return None
    named = s.oauth_audience is not None or s.http_public_url is not None
    if s.transport == "http" and not named and not is_loopback(s.http_host):
        return (
            f"with VLLM_MCP_OAUTH_ISSUER and VLLM_MCP_HTTP_HOST={s.http_host}, clients reach this "
            "server under a name it cannot know: set VLLM_MCP_HTTP_PUBLIC_URL (e.g. "
            "https://mcp.example.org) or VLLM_MCP_OAUTH_AUDIENCE"
        )
    return None


_OAUTH_ONLY = {
    "VLLM_MCP_OAUTH_AUDIENCE": "oauth_audience",
    "VLLM_MCP_OAUTH_JWKS_URL": "oauth_jwks_url",
    "VLLM_MCP_OAUTH_CLIENT_ID": "oauth_client_id",
}
