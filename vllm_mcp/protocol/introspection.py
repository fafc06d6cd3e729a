"""RFC 7662 token introspection, cached and limited, so a stranger cannot drive the issuer.

Any bearer value that is not a JWT is an opaque token, and every request may carry one: were
each sent on, one unauthenticated client could make the server POST (with its client secret)
to the authorization server as often as it likes. So the verdicts are cached, keyed by the
SHA-256 of the token (the token itself is never kept):

- an active token for ``ACTIVE_TTL`` seconds, and never past its ``exp``: a revoked token
  stops working within that time (RFC 7662 section 4 leaves the trade-off to the resource
  server);
- a refusal (inactive, unknown, a reply that is not usable) for ``REFUSED_TTL`` seconds, an
  issuer that cannot be reached for ``UNREACHABLE_TTL``;
- at most ``MAX_ENTRIES`` verdicts, the least recently used dropped first.

Requests with the same token wait for one introspection rather than sending their own; at
most ``MAX_IN_FLIGHT`` introspections are in flight toward the issuer, and once
``MAX_WAITING`` more wait, further tokens are refused at once (401) rather than queued.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from vllm_mcp.errors import RequestError

log = logging.getLogger(__name__)

ACTIVE_TTL = 60.0
REFUSED_TTL = 60.0
UNREACHABLE_TTL = 5.0
MAX_ENTRIES = 10_000
MAX_IN_FLIGHT = 4
MAX_WAITING = 64


class TokenRejected(RequestError):
    """Why one token is refused (logged at debug level, never with the token)."""


@dataclass
class _Verdict:
    until: float  # time.monotonic() after which it is asked again
    claims: dict[str, Any] | None = None
    refused: str = ""


@dataclass
class Introspection:
    """RFC 7662 with client_secret_basic; the secret stays in this object."""

    url: str
    client_id: str
    secret: str = field(repr=False)
    posts: int = 0  # introspection requests sent, for tests and the curious
    _cache: collections.OrderedDict[bytes, _Verdict] = field(
        default_factory=collections.OrderedDict, repr=False
    )
    _pending: dict[bytes, asyncio.Future[_Verdict]] = field(default_factory=dict, repr=False)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT), repr=False)
    _waiting: int = 0

    async def claims(self, token: str, client: httpx.AsyncClient) -> dict[str, Any]:
        """The issuer's claims for an active ``token``, or ``TokenRejected`` saying why not."""
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        verdict = self._cached(key)
        if verdict is None:
            pending = self._pending.get(key)
            if pending is not None:
                verdict = await asyncio.shield(pending)
            else:
                verdict = await self._ask_once(key, token, client)
        if verdict.claims is None:
            raise TokenRejected(verdict.refused)
        return verdict.claims

    def _cached(self, key: bytes) -> _Verdict | None:
        verdict = self._cache.get(key)
        if verdict is None:
            return None
        if verdict.until <= time.monotonic():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return verdict

    async def _ask_once(self, key: bytes, token: str, client: httpx.AsyncClient) -> _Verdict:
        if self._waiting >= MAX_IN_FLIGHT + MAX_WAITING:
            log.warning("too many token introspections waiting; a token was refused unchecked")
            return _Verdict(0.0, refused="too many introspections in flight")
        future: asyncio.Future[_Verdict] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        self._waiting += 1
        try:
            async with self._slots:
                verdict = await self._ask(token, client)
        except BaseException as e:  # cancelled: those waiting on it ask again themselves
            future.set_exception(TokenRejected("introspection was cancelled"))
            future.exception()  # retrieved, so asyncio does not log it
            raise e from None
        finally:
            self._waiting -= 1
            del self._pending[key]
        self._cache[key] = verdict
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        future.set_result(verdict)
        return verdict

    async def _ask(self, token: str, client: httpx.AsyncClient) -> _Verdict:
        now = time.monotonic()
        self.posts += 1
        try:
            reply = await client.post(
                self.url,
                data={"token": token, "token_type_hint": "access_token"},
                auth=(self.client_id, self.secret),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as e:
            return _Verdict(now + UNREACHABLE_TTL, refused=f"introspection unreachable ({type(e).__name__})")
        if reply.status_code != 200:
            ttl = UNREACHABLE_TTL if reply.status_code >= 500 else REFUSED_TTL
            return _Verdict(now + ttl, refused=f"introspection answered HTTP {reply.status_code}")
        try:
            body = reply.json()
        except ValueError:
            return _Verdict(now + REFUSED_TTL, refused="introspection reply is not JSON")
        if not isinstance(body, dict) or body.get("active") is not True:
            return _Verdict(now + REFUSED_TTL, refused="introspection says the token is not active")
        ttl = ACTIVE_TTL
        exp = body.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            ttl = min(ttl, exp - time.time())
        return _Verdict(now + max(ttl, 0.0), claims=body)
