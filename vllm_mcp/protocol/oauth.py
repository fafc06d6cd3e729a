"""vllm-mcp as an OAuth 2.1 resource server (MCP authorization, RFC 9728 / 8707 / 7662).

The SDK serves the Protected Resource Metadata route and answers 401 / 403 with
``WWW-Authenticate`` (``AuthSettings`` + ``RequireAuthMiddleware``); this module is the
``TokenVerifier`` behind it. A JWT access token is checked with PyJWT: its signature against
the issuer's JWKS (found through discovery, cached, fetched again when a token names an
unknown ``kid``, at most every ``REFETCH_SECONDS``), an asymmetric algorithm its key allows
(never ``none``, never HS* with a public key), issuer, audience, expiry (``LEEWAY_SECONDS``)
and the required scopes (checked by the SDK). An opaque token goes to RFC 7662 introspection
when a client for it is configured (introspection.py: cached by token hash, limited toward the
issuer). Anything that cannot be checked (issuer down, bad reply) is refused: the SDK answers
401. Tokens never reach a log line or an error. The key set and introspection URLs that
discovery finds are held to the settings' rule (https, http on loopback only).

The issuer is reached once when the server starts (``start``): an issuer that cannot be
reached, or whose metadata or keys are unusable, is an ``OAuthSetupError`` naming the URL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings

from vllm_mcp.config.oauth import check_endpoint
from vllm_mcp.config.secret_file import read_secret_file
from vllm_mcp.errors import ConfigError, OAuthSetupError
from vllm_mcp.protocol.introspection import Introspection, TokenRejected

log = logging.getLogger(__name__)

LEEWAY_SECONDS = 30
REFETCH_SECONDS = 30.0  # the least time between two key-set fetches a token can trigger
KEYS_MAX_AGE = 3600.0  # keys are fetched again after this, so a withdrawn key stops working
HTTP_TIMEOUT = 10.0
MAX_CALLER_CHARS = 256
# Asymmetric JWS algorithms by key type; symmetric (oct / HS*) and "none" are never accepted.
_ALGORITHMS = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512", "ES256K"),
    "OKP": ("EdDSA",),
}


@dataclass(frozen=True)
class Issuer:
    """What discovery tells about the authorization server."""

    issuer: str
    jwks_uri: str
    introspection_endpoint: str | None = None


def discovery_urls(issuer: str) -> list[str]:
    """OpenID Connect Discovery first, then RFC 8414 (path inserted after the host)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [
        f"{issuer.rstrip('/')}/.well-known/openid-configuration",
        f"{origin}/.well-known/oauth-authorization-server{path}",
    ]


def _get_json(client: httpx.Client, url: str, what: str) -> dict[str, Any]:
    try:
        reply = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as e:
        raise OAuthSetupError(f"cannot reach {what} at {url}: {type(e).__name__} {e}".strip()) from None
    if reply.status_code != 200:
        raise OAuthSetupError(f"{what} at {url} answered HTTP {reply.status_code}")
    try:
        body = reply.json()
    except ValueError:
        raise OAuthSetupError(f"{what} at {url} is not JSON") from None
    if not isinstance(body, dict):
        raise OAuthSetupError(f"{what} at {url} is not a JSON object")
    return body


def discover(client: httpx.Client, issuer: str, jwks_url: str | None = None) -> Issuer:
    """The issuer's metadata; its ``issuer`` must be exactly the configured one (RFC 8414 3.3)."""
    problems = []
    for url in discovery_urls(issuer):
        try:
            meta = _get_json(client, url, "the issuer's metadata")
        except OAuthSetupError as e:
            problems.append(str(e))
            continue
        if meta.get("issuer") != issuer:
            raise OAuthSetupError(
                f"{url} names the issuer {meta.get('issuer')!r}, not VLLM_MCP_OAUTH_ISSUER={issuer!r}; "
                "set VLLM_MCP_OAUTH_ISSUER to exactly the issuer its tokens carry"
            )
        jwks = jwks_url or meta.get("jwks_uri")
        if not isinstance(jwks, str) or not jwks:
            raise OAuthSetupError(f"{url} names no jwks_uri; set VLLM_MCP_OAUTH_JWKS_URL")
        try:  # the rule the settings follow: https, plain http on loopback only
            check_endpoint(jwks, f"the jwks_uri {jwks!r} it names")
        except ValueError as e:
            raise OAuthSetupError(f"{url}: {e}; or set VLLM_MCP_OAUTH_JWKS_URL") from None
        endpoint = meta.get("introspection_endpoint")
        return Issuer(issuer, jwks, endpoint if isinstance(endpoint, str) else None)
    raise OAuthSetupError(
        "cannot discover the issuer VLLM_MCP_OAUTH_ISSUER="
        f"{issuer}: {'; '.join(problems)}; check the URL and that the server can reach it"
    )


@dataclass
class _Key:
    kid: str | None
    kty: str
    data: dict[str, Any]
    algorithms: tuple[str, ...]


def parse_keys(body: dict[str, Any]) -> list[_Key]:
    """The signing keys of a JWKS document that an asymmetric algorithm can use."""
    keys = body.get("keys")
    if not isinstance(keys, list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    out = []
    for data in keys:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        kty = data.get("kty")
        allowed = _ALGORITHMS.get(kty) if isinstance(kty, str) else None
        if not allowed:
            continue
        alg = data.get("alg")
        if alg is not None:
            if alg not in allowed:
                continue
            allowed = (alg,)
        elif kty == "EC":  # the curve fixes the algorithm
            try:
                allowed = (jwt.PyJWK(data).algorithm_name,)
            except jwt.PyJWKError:
                continue
        kid = data.get("kid")
        out.append(_Key(kid if isinstance(kid, str) else None, str(kty), data, tuple(allowed)))
    if not out:
        raise ValueError("no usable signing key (RSA, EC or OKP) in it")
    return out


class KeySet:
    """The issuer's JWKS, cached; fetched again for an unknown ``kid`` (rate-limited) or when old."""

    def __init__(self, url: str, keys: list[_Key]) -> None:
        self.url = url
        self.keys = keys
        self.fetched = self.tried = time.monotonic()  # last success, last attempt
        self._lock = asyncio.Lock()

    @classmethod
    def load(cls, client: httpx.Client, url: str) -> KeySet:
        try:
            return cls(url, parse_keys(_get_json(client, url, "the issuer's key set (JWKS)")))
        except ValueError as e:
            raise OAuthSetupError(f"the key set at {url}: {e}") from None

    def find(self, kid: str | None) -> _Key | None:
        if kid is None:
            return self.keys[0] if len(self.keys) == 1 else None
        return next((k for k in self.keys if k.kid == kid), None)

    async def key_for(self, kid: str | None, client: httpx.AsyncClient) -> _Key:
        stale = time.monotonic() - self.fetched > KEYS_MAX_AGE
        key = None if stale else self.find(kid)
        if key is None:
            await self._refetch(client)
            key = self.find(kid)
        if key is None:
            raise TokenRejected(f"no key {kid!r} in the issuer's key set")
        return key

    async def _refetch(self, client: httpx.AsyncClient) -> None:
        """One fetch at a time, at most one per ``REFETCH_SECONDS`` (a failure waits too)."""
        async with self._lock:
            if time.monotonic() - self.tried < REFETCH_SECONDS:
                return
            self.tried = time.monotonic()
            try:
                reply = await client.get(self.url, headers={"Accept": "application/json"})
                reply.raise_for_status()
                self.keys = parse_keys(reply.json())
                self.fetched = time.monotonic()
            except (httpx.HTTPError, ValueError) as e:
                log.warning(
                    "cannot fetch the issuer's key set; keeping the keys it had",
                    extra={"url": self.url, "error": f"{type(e).__name__}: {e}"},
                )


def read_secret(path: Path) -> str:
    try:
        return read_secret_file(path, "VLLM_MCP_OAUTH_CLIENT_SECRET_FILE")
    except ConfigError as e:
        raise OAuthSetupError(str(e)) from None


def scopes_of(claims: dict[str, Any]) -> list[str]:
    """``scope`` (RFC 9068 / 7662: space-separated) or ``scp`` (a list, as some issuers send)."""
    value = claims.get("scope", claims.get("scp"))
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str)]
    return []


def caller_name(claims: dict[str, Any], claim: str) -> str | None:
    """The caller: ``claim``'s value, or None where the token has none (a client-credentials
    token has no ``sub``): such a token is served but has no session namespace, since falling
    back to ``client_id`` let a client and a user share one (issue 27). The operator who wants
    one for it names a claim it has (VLLM_MCP_OAUTH_CALLER_CLAIM=client_id)."""
    value = claims.get(claim)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > MAX_CALLER_CHARS:
        raise TokenRejected(f"no usable {claim!r} claim to name the caller")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise TokenRejected(f"the {claim!r} claim holds control characters")
    return value


class OAuthVerifier:
    """The SDK's ``TokenVerifier`` for the issuer's access tokens."""

    def __init__(
        self,
        issuer: Issuer,
        keys: KeySet,
        audience: str,
        caller_claim: str = "sub",
        introspection: Introspection | None = None,
    ) -> None:
        self.issuer = issuer
        self.keys = keys
        self.audience = audience
        self.caller_claim = caller_claim
        self.introspection = introspection
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)
        return self._client

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self.claims(token)
            caller = caller_name(claims, self.caller_claim)
        except TokenRejected as e:
            log.debug("bearer token refused", extra={"reason": str(e)})
            return None
        except Exception as e:  # a token that cannot be checked is refused, never let through
            log.warning("bearer token could not be checked", extra={"error": type(e).__name__})
            return None
        exp = claims.get("exp")
        client = claims.get("client_id") or claims.get("azp")
        return AccessToken(
            token="[redacted]",
            # Without a caller claim: the client, for the SDK's session ownership and metrics;
            # the session namespace is claims["caller"] (protocol/auth.py session_namespace).
            client_id=caller if caller is not None else str(client or "unnamed-client"),
            scopes=scopes_of(claims),
            expires_at=int(exp) + LEEWAY_SECONDS if isinstance(exp, int | float) else None,
            resource=self.audience,
            subject=claims.get("sub") if isinstance(claims.get("sub"), str) else None,
            claims={"iss": self.issuer.issuer, "caller": caller},
        )

    async def claims(self, token: str) -> dict[str, Any]:
        """The checked claims of ``token``, or ``TokenRejected`` saying why not."""
        if token.count(".") == 2:
            return await self._jwt_claims(token)
        if self.introspection is None:
            raise TokenRejected("not a JWT, and token introspection is not configured")
        claims = await self.introspection.claims(token, self.client)
        self._check_introspected(claims)
        return claims

    async def _jwt_claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not any(alg in algs for algs in _ALGORITHMS.values()):
            raise TokenRejected(f"algorithm {alg!r} is not accepted")
        key = await self.keys.key_for(kid if isinstance(kid, str) else None, self.client)
        if alg not in key.algorithms:
            raise TokenRejected(f"algorithm {alg} does not match the key {key.kid!r}")
        try:
            return jwt.decode(
                token,
                key=jwt.PyJWK(key.data, algorithm=alg).key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as e:
            raise TokenRejected(f"{type(e).__name__}: {e}") from None

    def _check_introspected(self, claims: dict[str, Any]) -> None:
        now = time.time()
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp + LEEWAY_SECONDS < now:
            raise TokenRejected("introspected token expired")
        if "iss" in claims and claims["iss"] != self.issuer.issuer:
            raise TokenRejected("introspected token from another issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if self.audience not in audiences:
            raise TokenRejected("introspected token not issued for this resource")

    def describe(self, token_file: Any = None) -> str:
        """What the server accepts, for its start-up log line."""
        via = "bearer token file or " if token_file is not None else ""
        return f"{via}OAuth tokens from {self.issuer.issuer} for {self.audience}"

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class EitherVerifier:
    """Token file or OAuth: either is accepted. A token-file caller has every required scope.

    An OAuth caller whose name is also a token-file caller's is refused, so that an identity
    at the issuer can never share the sessions of an operator-issued token.
    """

    def __init__(self, token_file: Any, oauth: OAuthVerifier, scopes: list[str]) -> None:
        self.token_file = token_file
        self.oauth = oauth
        self.scopes = scopes

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await self.token_file.verify_token(token)
        if found is not None:
            return found.model_copy(update={"scopes": list(self.scopes)})
        found = await self.oauth.verify_token(token)
        if found is not None and found.client_id in self.token_file.caller_names:
            log.warning(
                "an OAuth caller has a token-file caller's name; refused", extra={"caller": found.client_id}
            )
            return None
        return found


def resource_url(settings: Any, bound_url: str) -> str:
    """The audience: the setting, or the public (else the bound) origin with ``/mcp``."""
    if settings.oauth_audience:
        return str(settings.oauth_audience)
    path = urlsplit(bound_url).path
    if settings.http_public_url:
        return f"{settings.http_public_url}{path}"
    return bound_url


def start(settings: Any, bound_url: str, client: httpx.Client | None = None) -> OAuthVerifier:
    """Discover the issuer and fetch its keys now, so a bad issuer stops the server at start."""
    issuer = str(settings.oauth_issuer)
    introspection = None
    with client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False) as http:
        found = discover(http, issuer, settings.oauth_jwks_url)
        keys = KeySet.load(http, found.jwks_uri)
    if settings.oauth_client_id:
        url = settings.oauth_introspection_url or found.introspection_endpoint
        if not url:
            raise OAuthSetupError(
                "the issuer's metadata names no introspection_endpoint; set VLLM_MCP_OAUTH_INTROSPECTION_URL"
            )
        if not settings.oauth_introspection_url:  # the client secret goes there: the settings' rule
            try:
                check_endpoint(url, f"the issuer's introspection_endpoint {url!r}")
            except ValueError as e:
                raise OAuthSetupError(f"{e}; or set VLLM_MCP_OAUTH_INTROSPECTION_URL") from None
        secret = read_secret(Path(settings.oauth_client_secret_file))
        introspection = Introspection(url, str(settings.oauth_client_id), secret)
    return OAuthVerifier(
        found,
        keys,
        resource_url(settings, bound_url),
        settings.oauth_caller_claim,
        introspection,
    )


def auth_settings(verifier: OAuthVerifier, scopes: list[str]) -> AuthSettings:
    """The SDK's resource-server settings: metadata route, 401/403 with WWW-Authenticate.

    The audience is checked by the verifier (PyJWT), so the SDK's own resource check is off.
    """
    return AuthSettings(
        issuer_url=verifier.issuer.issuer,
        resource_server_url=verifier.audience,
        required_scopes=scopes or None,
        validate_token_resource=False,
    )


def app_auth(verifier: OAuthVerifier, token_file: Any, scopes: str | None) -> tuple[AuthSettings, Any]:
    """What the SDK's app gets: the resource-server settings and the one verifier behind them."""
    required = (scopes or "").split()
    either = EitherVerifier(token_file, verifier, required) if token_file is not None else verifier
    return auth_settings(verifier, required), either
