"""vllm_mcp/protocol/oauth.py: the verifier on local keys, then the HTTP transport against a
real authorization server (oidc-provider from npm, tests/support/oauthserver.py) with every bad token.

The HTTP part serves a bare SDK ``Server`` with one tool that reports its caller (no engine);
tests/e2e/test_oauth.py does the same against a real ``vllm-mcp serve`` with real clients.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.oauthcalls import post, whoami_server, write_secret
from tests.support.oauthserver import SCOPE, AuthServer, rsa_jwk
from vllm_mcp.errors import OAuthSetupError
from vllm_mcp.protocol import oauth

ISSUER = "https://auth.example.test"
AUD = "https://mcp.example.test/mcp"
JWKS = f"{ISSUER}/jwks"


def public(jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in jwk.items() if k in ("kty", "kid", "alg", "use", "n", "e")}


class Issuer:
    """Local keys and a JWKS served through httpx's MockTransport (no network)."""

    def __init__(self) -> None:
        self.jwk, self.key = rsa_jwk("k1")
        self.published = [public(self.jwk)]
        self.fetches = 0
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("down")
        if str(request.url) == JWKS:
            self.fetches += 1
            return httpx.Response(200, json={"keys": self.published})
        if str(request.url) == f"{ISSUER}/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": JWKS})
        return httpx.Response(404)

    def verifier(self, **kw: Any) -> oauth.OAuthVerifier:
        keys = oauth.KeySet(JWKS, oauth.parse_keys({"keys": self.published}))
        v = oauth.OAuthVerifier(oauth.Issuer(ISSUER, JWKS), keys, AUD, **kw)
        v._client = httpx.AsyncClient(transport=httpx.MockTransport(self.handler))
        return v

    def token(
        self, key: Any = None, headers: dict[str, Any] | None = None, alg: str = "RS256", **claims: Any
    ) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": AUD,
            "sub": "alice",
            "exp": now + 60,
            "iat": now,
            "scope": SCOPE,
            **claims,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm=alg, headers={"kid": "k1", **(headers or {})})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check(v: oauth.OAuthVerifier, token: str) -> Any:
    return asyncio.run(v.verify_token(token))


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


def test_a_good_token_names_its_caller_and_scopes(issuer: Issuer) -> None:
    found = check(issuer.verifier(), issuer.token(scope="mcp:tools other"))
    assert (found.client_id, found.scopes, found.resource) == ("alice", ["mcp:tools", "other"], AUD)
    assert found.token == "[redacted]"
    assert check(issuer.verifier(caller_claim="email"), issuer.token(email="a@example.org")).client_id == (
        "a@example.org"
    )


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://other.example.test/mcp"},
        {"aud": None},
        {"iss": "https://evil.example.test"},
        {"exp": int(time.time()) - 120},  # beyond the 30 s leeway
        {"exp": None},
        {"nbf": int(time.time()) + 300},
        {"sub": "a\x1fb"},
        {"sub": "x" * 300},
    ],
    ids=[
        "audience",
        "no-audience",
        "issuer",
        "expired",
        "no-expiry",
        "not-yet",
        "control",
        "long",
    ],
)
def test_a_token_wrong_in_one_claim_is_refused(issuer: Issuer, claims: dict[str, Any]) -> None:
    assert check(issuer.verifier(), issuer.token(**claims)) is None


def test_a_token_without_the_caller_claim_is_served_without_a_session_namespace(issuer: Issuer) -> None:
    """Issue 27, finding 4: on main a token without ``sub`` was named by its ``client_id``, so a
    client and a user of that name shared one namespace. Now it has none (sessions refused,
    tests/tools/test_limits.py) unless the operator names a claim it has."""
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

    from vllm_mcp.protocol.auth import session_namespace
    from vllm_mcp.tools.limits import NO_NAMESPACE

    def namespace(found: Any) -> str | None:
        request = type("Request", (), {"scope": {"user": AuthenticatedUser(found)}})()
        return session_namespace(type("Ctx", (), {"request": request})())

    found = check(issuer.verifier(), issuer.token(sub=None, client_id="alice"))
    assert found is not None and found.client_id == "alice"  # the SDK's owner and the metrics label
    assert namespace(found) == NO_NAMESPACE
    named = check(issuer.verifier(caller_claim="client_id"), issuer.token(sub=None, client_id="alice"))
    assert namespace(named) == "oauth:alice"
    assert namespace(check(issuer.verifier(), issuer.token())) == "oauth:alice"


def test_an_expiry_within_the_leeway_is_accepted(issuer: Issuer) -> None:
    found = check(issuer.verifier(), issuer.token(exp=int(time.time()) - 5))
    assert found is not None and found.expires_at > time.time()  # the SDK's own check passes too


def test_a_list_audience_containing_ours_is_accepted(issuer: Issuer) -> None:
    assert check(issuer.verifier(), issuer.token(aud=["https://a.example.test", AUD])) is not None


def test_unsigned_and_symmetric_tokens_are_refused(issuer: Issuer) -> None:
    v = issuer.verifier()
    body = {"iss": ISSUER, "aud": AUD, "sub": "alice", "exp": int(time.time()) + 60}
    unsigned = f"{b64(json.dumps({'alg': 'none', 'kid': 'k1'}).encode())}.{b64(json.dumps(body).encode())}."
    assert check(v, unsigned) is None
    # HS256 keyed with the issuer's public key (the classic algorithm confusion).
    pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    sig = b64(hmac.new(pem, f"{head}.{b64(json.dumps(body).encode())}".encode(), hashlib.sha256).digest())
    assert check(v, f"{head}.{b64(json.dumps(body).encode())}.{sig}") is None
    assert check(v, issuer.token(alg="PS256")) is None  # the key says RS256


def test_a_foreign_key_is_refused_and_refetches_are_rate_limited(issuer: Issuer) -> None:
    v = issuer.verifier()
    _, foreign = rsa_jwk("k1")
    assert check(v, issuer.token(key=foreign)) is None  # same kid, other key: signature fails
    assert issuer.fetches == 0
    assert check(v, issuer.token(key=foreign, headers={"kid": "k9"})) is None
    assert check(v, issuer.token(key=foreign, headers={"kid": "k8"})) is None
    assert issuer.fetches == 0  # fetched at start less than REFETCH_SECONDS ago: no fetch
    v.keys.tried -= oauth.REFETCH_SECONDS
    assert check(v, issuer.token(key=foreign, headers={"kid": "k9"})) is None
    assert check(v, issuer.token(key=foreign, headers={"kid": "k7"})) is None
    assert issuer.fetches == 1


def test_a_rotated_key_is_fetched_on_its_first_token(issuer: Issuer) -> None:
    v = issuer.verifier()
    v.keys.tried -= oauth.REFETCH_SECONDS
    jwk2, key2 = rsa_jwk("k2")
    issuer.published.append(public(jwk2))
    assert check(v, issuer.token(key=key2, headers={"kid": "k2"})).client_id == "alice"
    assert issuer.fetches == 1


def test_old_keys_are_fetched_again_once_for_many_requests(issuer: Issuer) -> None:
    v = issuer.verifier()
    v.keys.fetched = v.keys.tried = v.keys.fetched - oauth.KEYS_MAX_AGE - 1
    issuer.published = []  # the key was withdrawn: its tokens stop working
    issuer.published.append(public(rsa_jwk("k3")[0]))

    async def many() -> list[Any]:
        return await asyncio.gather(*(v.verify_token(issuer.token()) for _ in range(5)))

    assert asyncio.run(many()) == [None] * 5
    assert issuer.fetches == 1


def test_a_token_that_cannot_be_checked_is_refused(issuer: Issuer) -> None:
    v = issuer.verifier()
    v.keys.fetched -= oauth.KEYS_MAX_AGE + 1  # stale keys must be fetched, and the issuer is down
    v.keys.tried = v.keys.fetched
    issuer.down = True
    assert check(v, issuer.token(headers={"kid": "k2"})) is None
    assert check(v, "not-a-jwt") is None  # opaque, and no introspection configured


def test_key_sets_keep_only_asymmetric_signing_keys() -> None:
    jwk, _ = rsa_jwk("r")
    keys = oauth.parse_keys(
        {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, {**public(jwk), "use": "enc"}, public(jwk)]}
    )
    assert [(k.kid, k.algorithms) for k in keys] == [("r", ("RS256",))]
    with pytest.raises(ValueError, match="no usable signing key"):
        oauth.parse_keys({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})


def test_discovery_names_a_mismatched_or_unreachable_issuer(issuer: Issuer) -> None:
    client = httpx.Client(transport=httpx.MockTransport(issuer.handler))
    assert oauth.discover(client, ISSUER).jwks_uri == JWKS
    with pytest.raises(oauth.OAuthSetupError, match=r"names the issuer 'https://auth\.example\.test'"):
        oauth.discover(client, ISSUER + "/")
    issuer.down = True
    with pytest.raises(oauth.OAuthSetupError, match=r"cannot discover the issuer .*cannot reach"):
        oauth.discover(client, ISSUER)


@pytest.mark.parametrize(
    ("meta", "refused"),
    [
        ({"jwks_uri": "http://keys.example.test/jwks"}, "jwks_uri 'http://keys.example.test/jwks'"),
        ({"jwks_uri": "ftp://keys.example.test/jwks"}, "jwks_uri"),
        ({"jwks_uri": "http://127.0.0.2:9/jwks", "introspection_endpoint": "http://[::1]:9/i"}, None),
        ({"jwks_uri": JWKS, "introspection_endpoint": "http://auth.example.test/i"}, "introspection_"),
    ],
)
def test_discovered_endpoints_must_be_https_as_the_settings_are(
    meta: dict[str, str], refused: str | None, tmp_path: Any
) -> None:
    from vllm_mcp.config.settings import Settings

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/openid-configuration"):
            return httpx.Response(200, json={"issuer": ISSUER, **meta})
        return httpx.Response(200, json={"keys": [public(rsa_jwk("k")[0])]})

    secret = write_secret(tmp_path, "s3cret-of-this-server")
    settings = Settings.load(
        environ={"VLLM_MCP_OAUTH_ISSUER": ISSUER, "VLLM_MCP_OAUTH_AUDIENCE": AUD,
                 "VLLM_MCP_OAUTH_CLIENT_ID": "rs", "VLLM_MCP_OAUTH_CLIENT_SECRET_FILE": str(secret)}
    )  # fmt: skip
    client = httpx.Client(transport=httpx.MockTransport(handler))
    if refused is None:
        assert oauth.start(settings, AUD, client=client).keys.url == meta["jwks_uri"]
        return
    with pytest.raises(oauth.OAuthSetupError, match="https://") as err:
        oauth.start(settings, AUD, client=client)
    assert refused in str(err.value)


def test_the_client_secret_file_is_read_stripped_and_one_line_only(tmp_path: Any) -> None:
    path = tmp_path / "secret"
    path.write_text("  s3cret\r\n")
    assert oauth.read_secret(path) == "s3cret"
    path.write_text("alpha-secret\nbeta-secret\n")
    with pytest.raises(oauth.OAuthSetupError, match="more than one line") as err:
        oauth.read_secret(path)
    assert "secret\n" not in str(err.value) and "alpha" not in str(err.value)


def test_either_verifier_gives_token_file_callers_the_scopes(issuer: Issuer, tmp_path: Any) -> None:
    from vllm_mcp.protocol.auth import TokenFileVerifier

    tokens = tmp_path / "tokens"
    tokens.write_text("ops:" + "o" * 32 + "\n")
    tokens.chmod(0o600)
    either = oauth.EitherVerifier(TokenFileVerifier(tokens), issuer.verifier(), [SCOPE])
    found = asyncio.run(either.verify_token("o" * 32))
    assert (found.client_id, found.scopes) == ("ops", [SCOPE])
    assert asyncio.run(either.verify_token(issuer.token())).client_id == "alice"
    # An identity at the issuer named like a token-file caller would share its sessions.
    assert asyncio.run(either.verify_token(issuer.token(sub="ops"))) is None


# --- the HTTP transport against a real authorization server ---------------------------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: Any) -> Any:
    server = AuthServer(tmp_path_factory.mktemp("oidc"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def served(auth_server: AuthServer, tmp_path_factory: Any) -> Any:
    from tests.support.served import ServedDouble, wait_listening

    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text("ops:" + "o" * 32 + "\n")
    tokens.chmod(0o600)
    server = ServedDouble(
        tokens.parent,
        server=whoami_server(),
        VLLM_MCP_OAUTH_ISSUER=auth_server.issuer,
        VLLM_MCP_OAUTH_SCOPES=SCOPE,
        VLLM_MCP_HTTP_TOKEN_FILE=str(tokens),
        VLLM_MCP_OAUTH_CLIENT_ID="mcp-server",
        VLLM_MCP_OAUTH_CLIENT_SECRET_FILE=str(write_secret(tokens.parent, auth_server.secret)),
    )
    wait_listening(server.base + "/healthz")
    yield server
    server.close()


def challenge(reply: httpx.Response) -> str:
    return reply.headers.get("www-authenticate", "")


def test_the_metadata_document_names_the_issuer_and_scopes(served: Any, auth_server: AuthServer) -> None:
    reply = httpx.get(served.base + "/.well-known/oauth-protected-resource/mcp", timeout=30)
    assert reply.status_code == 200
    doc = reply.json()
    assert doc["resource"] == served.url
    assert doc["authorization_servers"] == [auth_server.issuer]
    assert doc["scopes_supported"] == [SCOPE]


def test_no_token_on_loopback_is_401_with_the_metadata_url(served: Any) -> None:
    reply = post(served, None)
    assert reply.status_code == 401
    meta = f'resource_metadata="{served.base}/.well-known/oauth-protected-resource/mcp"'
    assert challenge(reply) == f"Bearer {meta}"  # RFC 6750 3.1: no credentials, no error code
    assert "invalid_token" not in reply.text


def test_a_token_from_the_issuer_for_this_resource_is_accepted(served: Any, auth_server: AuthServer) -> None:
    assert post(served, auth_server.token(served.url)).status_code == 200
    assert (
        post(served, auth_server.token(served.url, client="opaque-client")).status_code == 200
    )  # introspected
    assert post(served, "o" * 32).status_code == 200  # the token file works beside OAuth


BAD: dict[str, Callable[[AuthServer, str], str]] = {
    "wrong-audience": lambda a, url: a.token("https://elsewhere.example.test/mcp"),
    "wrong-audience-opaque": lambda a, url: a.token(
        "https://elsewhere.example.test/mcp", client="opaque-client"
    ),
    "expired": lambda a, url: a.mint({"aud": url, "exp": int(time.time()) - 300}),
    "wrong-issuer": lambda a, url: a.mint({"aud": url, "iss": "http://127.0.0.1:9"}),
    "foreign-key": lambda a, url: a.mint({"aud": url}, key=rsa_jwk("x")[1]),
    "unknown-kid": lambda a, url: a.mint({"aud": url}, key=rsa_jwk("x")[1], headers={"kid": "nope"}),
    "alg-none": lambda a, url: jwt.encode(
        {"iss": a.issuer, "aud": url, "sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"
    ),
    "garbage": lambda a, url: "x" * 40,
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_token_is_401_invalid_token(served: Any, auth_server: AuthServer, case: str) -> None:
    reply = post(served, BAD[case](auth_server, served.url))
    assert reply.status_code == 401
    assert 'error="invalid_token"' in challenge(reply) and "resource_metadata=" in challenge(reply)


def test_a_token_without_the_scope_is_403_insufficient_scope(served: Any, auth_server: AuthServer) -> None:
    for token in (
        auth_server.token(served.url, scope="mcp:read"),
        auth_server.mint({"aud": served.url, "scope": ""}),
    ):
        reply = post(served, token)
        assert reply.status_code == 403
        assert 'error="insufficient_scope"' in challenge(reply)
        assert f'scope="{SCOPE}"' in challenge(reply)  # what to ask the issuer for (RFC 6750 3)


def test_the_caller_is_the_token_subject(served: Any, auth_server: AuthServer) -> None:
    from tests.support.httpserver import mcp_client

    async def whoami(token: str) -> str:
        async with mcp_client(served.url, token) as client:
            result = await client.call_tool("whoami", {})
            return str(result.content[0].text)

    assert asyncio.run(whoami(auth_server.token(served.url))) == "mcp-client"
    assert asyncio.run(whoami(auth_server.login_token(served.url, "carol"))) == "carol"  # code + PKCE
    assert asyncio.run(whoami(auth_server.mint({"aud": served.url, "sub": "bob"}))) == "bob"
    assert asyncio.run(whoami("o" * 32)) == "ops"


def test_an_unreachable_issuer_stops_the_transport_at_start(tmp_path: Any) -> None:
    import socket

    from vllm_mcp.config.settings import Settings
    from vllm_mcp.protocol.http import HttpTransport

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "VLLM_MCP_TRANSPORT": "http",
        "VLLM_MCP_HTTP_PORT": "0",
        "VLLM_MCP_OAUTH_ISSUER": f"http://127.0.0.1:{port}",
    }
    with pytest.raises(OAuthSetupError, match=f"cannot discover the issuer .*127.0.0.1:{port}") as e:
        asyncio.run(HttpTransport(Settings.load(environ=env)).startup())
    assert e.value.exit_code == 2  # a setting to fix, as before the engine starts


def test_serve_refuses_to_start_without_its_issuer_and_no_traceback(tmp_path: Any) -> None:
    import socket
    import subprocess
    import sys

    from tests.support.models import serve_env

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "serve", "--transport", "http"],
        env=serve_env(
            tmp_path / "no-model", VLLM_MCP_HTTP_PORT="0", VLLM_MCP_OAUTH_ISSUER=f"http://127.0.0.1:{port}"
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == OAuthSetupError.exit_code == 2
    assert f"cannot discover the issuer VLLM_MCP_OAUTH_ISSUER=http://127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_once_the_issuer_is_down_unknown_keys_get_401_known_ones_still_work(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.served import ServedDouble, wait_listening

    monkeypatch.setattr(oauth, "REFETCH_SECONDS", 0.0)  # no wait before fetching the keys again
    auth = AuthServer(tmp_path)
    try:
        served = ServedDouble(tmp_path, server=whoami_server(), VLLM_MCP_OAUTH_ISSUER=auth.issuer)
        try:
            wait_listening(served.base + "/healthz")
            good = auth.token(served.url)
            auth.close()  # the issuer goes away while the server runs
            assert post(served, good).status_code == 200  # its key was fetched at start
            rotated = auth.mint({"aud": served.url}, key=rsa_jwk("k2")[1], headers={"kid": "k2"})
            reply = post(served, rotated)  # a key it would have to fetch, from an issuer that is down
            assert reply.status_code == 401 and 'error="invalid_token"' in challenge(reply)
            assert "cannot fetch the issuer's key set; keeping the keys it had" in caplog.messages
        finally:
            served.close()
    finally:
        auth.close()
