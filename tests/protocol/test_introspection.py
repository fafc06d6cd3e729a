"""vllm_mcp/protocol/introspection.py: opaque tokens cost the issuer one request, not one each.

The unit tests count the POSTs an httpx MockTransport answers; the last test runs the HTTP
transport against a real authorization server (oidc-provider, tests/oauthserver.py) and counts
the introspection requests it answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.support.oauthserver import SCOPE, AuthServer
from vllm_mcp.protocol import introspection
from vllm_mcp.protocol.introspection import Introspection, TokenRejected

URL = "https://auth.example.test/introspect"


class Issuer:
    """An introspection endpoint (MockTransport): ``active`` maps token -> claims."""

    def __init__(self) -> None:
        self.active: dict[str, dict[str, Any]] = {}
        self.posts: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.release = asyncio.Event()
        self.hold = False
        self.down = False

    async def handler(self, request: httpx.Request) -> httpx.Response:
        token = parse_qs(request.content.decode())["token"][0]
        self.posts.append(token)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold:
                await self.release.wait()
            if self.down:
                return httpx.Response(503)
            claims = self.active.get(token)
            return httpx.Response(200, json={"active": True, **claims} if claims else {"active": False})
        finally:
            self.in_flight -= 1

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


async def verdict(intro: Introspection, token: str, client: httpx.AsyncClient) -> dict[str, Any] | str:
    try:
        return await intro.claims(token, client)
    except TokenRejected as e:
        return str(e)


def test_a_refused_token_is_asked_about_once_even_by_fifty_concurrent_requests() -> None:
    issuer = Issuer()

    async def main() -> list[Any]:
        intro = Introspection(URL, "rs", "secret")
        async with issuer.client() as client:
            return await asyncio.gather(*(verdict(intro, "bad-token", client) for _ in range(50)))

    results = asyncio.run(main())
    assert results == ["introspection says the token is not active"] * 50
    assert issuer.posts == ["bad-token"]


def test_an_active_token_is_cached_but_never_past_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = Issuer()
    now = time.time()
    issuer.active = {"long": {"sub": "a", "exp": now + 3600}, "short": {"sub": "b", "exp": now + 0.2}}
    clock = [1000.0]
    monkeypatch.setattr(introspection.time, "monotonic", lambda: clock[0])

    async def main() -> None:
        intro = Introspection(URL, "rs", "secret")
        async with issuer.client() as client:
            for _ in range(3):
                assert (await intro.claims("long", client))["sub"] == "a"
                assert (await intro.claims("short", client))["sub"] == "b"
            assert issuer.posts == ["long", "short"]
            clock[0] += 1.0  # past "short"'s exp, within ACTIVE_TTL
            await intro.claims("long", client)
            await intro.claims("short", client)
            clock[0] += introspection.ACTIVE_TTL  # past ACTIVE_TTL: asked again (a revoked token stops)
            await intro.claims("long", client)

    asyncio.run(main())
    assert issuer.posts == ["long", "short", "short", "long"]


def test_the_cache_holds_hashes_only_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(introspection, "MAX_ENTRIES", 5)
    issuer = Issuer()

    async def main() -> Introspection:
        intro = Introspection(URL, "rs", "secret")
        async with issuer.client() as client:
            for n in range(12):
                await verdict(intro, f"token-{n}", client)
        return intro

    intro = asyncio.run(main())
    assert len(intro._cache) == 5
    assert all(len(key) == 32 and b"token" not in key for key in intro._cache)
    assert "token-" not in repr(intro) and "secret" not in repr(intro)


def test_the_issuer_gets_a_bounded_number_of_concurrent_introspections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(introspection, "MAX_WAITING", 10)
    issuer = Issuer()
    issuer.hold = True

    async def main() -> list[Any]:
        intro = Introspection(URL, "rs", "secret")
        async with issuer.client() as client:
            calls = [asyncio.ensure_future(verdict(intro, f"t{n}", client)) for n in range(40)]
            while issuer.in_flight < introspection.MAX_IN_FLIGHT:
                await asyncio.sleep(0)
            refused_at_once = [c for c in calls if c.done()]
            issuer.release.set()
            results = await asyncio.gather(*calls)
            assert len(refused_at_once) == 40 - introspection.MAX_IN_FLIGHT - 10
            return results

    results = asyncio.run(main())
    assert issuer.most_in_flight == introspection.MAX_IN_FLIGHT
    assert len(issuer.posts) == introspection.MAX_IN_FLIGHT + 10
    assert results.count("too many introspections in flight") == 40 - len(issuer.posts)


def test_an_issuer_that_fails_is_asked_again_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(introspection.time, "monotonic", lambda: clock[0])
    issuer = Issuer()
    issuer.down = True
    issuer.active = {"good": {"sub": "a"}}

    async def main() -> Any:
        intro = Introspection(URL, "rs", "secret")
        async with issuer.client() as client:
            assert await verdict(intro, "good", client) == "introspection answered HTTP 503"
            assert await verdict(intro, "good", client) == "introspection answered HTTP 503"
            issuer.down = False
            clock[0] += introspection.UNREACHABLE_TTL
            return await verdict(intro, "good", client)

    assert asyncio.run(main())["sub"] == "a"
    assert len(issuer.posts) == 2


# --- the HTTP transport against a real authorization server ---------------------------------


def test_fifty_unauthenticated_requests_make_at_most_one_introspection(tmp_path: Any) -> None:
    from tests.support.oauthcalls import post, whoami_server, write_secret
    from tests.support.served import ServedDouble, wait_listening

    auth = AuthServer(tmp_path)
    served = None
    try:
        served = ServedDouble(
            tmp_path,
            server=whoami_server(),
            VLLM_MCP_OAUTH_ISSUER=auth.issuer,
            VLLM_MCP_OAUTH_SCOPES=SCOPE,
            VLLM_MCP_OAUTH_CLIENT_ID="mcp-server",
            VLLM_MCP_OAUTH_CLIENT_SECRET_FILE=str(write_secret(tmp_path, auth.secret)),
        )
        wait_listening(served.base + "/healthz")
        before = auth.requests("POST", "/token/introspection")

        async def flood() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                from tests.support.httpserver import ACCEPT
                from tests.support.served import INIT

                headers = {**ACCEPT, "Authorization": "Bearer not-a-token-of-this-issuer"}
                replies = await asyncio.gather(
                    *(client.post(served.url, json=INIT, headers=headers) for _ in range(50))
                )
                return [r.status_code for r in replies]

        assert asyncio.run(flood()) == [401] * 50
        assert auth.requests("POST", "/token/introspection") - before <= 1
        # A real opaque token still gets in, and costs one introspection of its own.
        token = auth.token(served.url, client="opaque-client")
        assert [post(served, token).status_code for _ in range(5)] == [200] * 5
        assert auth.requests("POST", "/token/introspection") - before <= 2
    finally:
        if served is not None:
            served.close()
        auth.close()
