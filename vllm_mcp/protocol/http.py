"""MCP Streamable HTTP at ``http://HOST:PORT/mcp``, for many clients at once.

The official SDK does the protocol (``Server.streamable_http_app``: both eras, sessions,
SSE, Host/Origin checks, body limit, bearer authentication) and uvicorn serves it. This
module adds what a production service needs around it:

- ``GET /healthz``: 200 once the model is ready, 503 with the state before and after; the
  body also says the load phase and its seconds so far (``load_phase.py``);
- a gate in front of ``/mcp`` that counts calls in flight (for the shutdown drain) and,
  once a shutdown starts, refuses new requests with 503;
- an HTTP client that disconnects in the middle of a call cancels that call, so its
  vLLM request is aborted (the SDK's 2025-era transport otherwise lets it run on);
- one listening socket, bound before the engine starts, so a port in use is one clear
  error rather than a traceback after a minute of model loading.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Generator
from typing import Any

import anyio
import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import HttpSetupError, OAuthSetupError
from vllm_mcp.protocol.auth import TokenFileVerifier
from vllm_mcp.protocol.challenge import Challenges
from vllm_mcp.protocol.transport import SERVER_SHUTTING_DOWN, ServerHooks, Transport

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
_EXCHANGE = "vllm_mcp.exchange"
CLIENT_DISCONNECTED = -32001


def security_settings(host: str, extra_hosts: list[str]) -> TransportSecuritySettings:
    """Host/Origin checks against DNS rebinding: loopback names, the bound address, the extras.

    A wildcard bind (0.0.0.0, ::) names no host of its own; without
    ``VLLM_MCP_HTTP_ALLOWED_HOSTS`` it then accepts any Host (the bearer token still
    guards it, and a browser on a rebound name has no token to send).
    """
    if "*" in extra_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = ["127.0.0.1", "localhost", "[::1]"]
    wildcard = host in ("0.0.0.0", "::", "[::]", "")
    own = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if not wildcard and own not in names:  # 127.0.0.2 or 10.0.0.5 alike: its own address
        names.append(own)
    if wildcard and not extra_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts: list[str] = []
    for name in names:
        hosts += [name, f"{name}:*"]
    for entry in extra_hosts:
        # An entry without a port allows any port; "host:port" only that one.
        has_port = entry.rsplit("]", 1)[-1].count(":") == 1 if entry.startswith("[") else ":" in entry
        hosts += [entry] if has_port else [entry, f"{entry}:*"]
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket, or ``HttpSetupError`` naming the address and the setting to change."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise HttpSetupError(f"cannot listen on {host}: {e.strerror} (VLLM_MCP_HTTP_HOST)") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as e:
        sock.close()
        raise HttpSetupError(
            f"cannot listen on {host}:{port}: {e.strerror or e} (set VLLM_MCP_HTTP_HOST / VLLM_MCP_HTTP_PORT)"
        ) from None
    return sock


class _Exchange:
    """One POST to /mcp: the tool calls it carries are cancelled if its client goes away."""

    def __init__(self) -> None:
        self.disconnected = False
        self.scopes: set[anyio.CancelScope] = set()

    def disconnect(self) -> None:
        self.disconnected = True
        for scope in list(self.scopes):
            scope.cancel()


class _DisconnectCancels:
    """SDK server middleware: a ``tools/call`` runs in a scope its HTTP exchange can cancel."""

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        request = getattr(ctx, "request", None)
        scope = getattr(request, "scope", None)
        exchange = scope.get(_EXCHANGE) if isinstance(scope, dict) else None
        if exchange is None or ctx.request_id is None or ctx.method != "tools/call":
            return await call_next(ctx)
        with anyio.CancelScope() as cancel:
            exchange.scopes.add(cancel)
            try:
                if exchange.disconnected:
                    cancel.cancel()
                return await call_next(ctx)
            finally:
                exchange.scopes.discard(cancel)
        raise MCPError(code=CLIENT_DISCONNECTED, message="the client disconnected; the call was cancelled")


class _Gate:
    """In front of the SDK's app: counts calls in flight and refuses new ones while stopping."""

    def __init__(self, app: ASGIApp, transport: HttpTransport) -> None:
        self.app = app
        self.transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != MCP_PATH:
            await self.app(scope, receive, send)
            return
        t = self.transport
        if not t.intake_open:
            kept = await self._refuse_if_request(scope, receive, send)
            if kept is None:
                return
            receive = kept
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange()
        scope[_EXCHANGE] = exchange

        async def watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                exchange.disconnect()
            return message

        t._call_started(exchange)
        try:
            await self.app(scope, watched, send)
        finally:
            t._call_finished(exchange)

    async def _refuse_if_request(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """While stopping: 503 for anything that would start work; notifications still pass."""
        if scope["method"] == "POST":
            body, more = b"", True
            limit = self.transport.max_message_bytes
            while more and len(body) <= limit:
                message = await receive()
                if message["type"] != "http.request":
                    return None
                body += message.get("body", b"")
                more = message.get("more_body", False)
            with contextlib.suppress(ValueError, RecursionError):
                obj = json.loads(body)
                if isinstance(obj, dict) and "id" not in obj:  # a notification or stray response
                    replayed = False

                    async def replay() -> Message:
                        nonlocal replayed
                        if not replayed:
                            replayed = True
                            return {"type": "http.request", "body": body, "more_body": False}
                        return await receive()

                    return replay
        error = {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": SERVER_SHUTTING_DOWN, "message": "server is shutting down; request refused"},
        }
        await JSONResponse(error, status_code=503, headers={"Retry-After": "5"})(scope, receive, send)
        return None


class _Uvicorn(uvicorn.Server):
    """uvicorn's server without its signal handlers: ``vllm_mcp.server.app`` owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpTransport(Transport):
    """MCP Streamable HTTP served by uvicorn, for every client over one SDK ``Server``.

    The constructor only records what to do; ``startup`` reads the token file, binds the
    socket (or takes ``listening``, the one a parent bound for its front ends) and discovers
    the OAuth issuer, each failure an ``HttpSetupError`` naming the setting to change.
    """

    def __init__(
        self, settings: Settings, hooks: ServerHooks | None = None, listening: socket.socket | None = None
    ) -> None:
        super().__init__(hooks)
        self.settings = settings
        self.max_message_bytes = settings.max_message_bytes
        self._listening = listening
        self._uvicorn: Any = None
        self._closing = False
        self.socket: socket.socket | None = None
        self.port = 0
        self.verifier: TokenFileVerifier | None = None
        self.oauth: Any = None

    async def startup(self) -> None:
        if self.socket is not None:
            return
        settings = self.settings
        if settings.http_token_file is not None:
            self.verifier = TokenFileVerifier(settings.http_token_file)  # TokenFileError: exit 2
        # One of VLLM_MCP_HTTP_WORKERS front ends gets the socket its parent bound (frontends.py).
        self.socket = self._listening or bind_socket(settings.http_host, settings.http_port)
        self.port = int(self.socket.getsockname()[1])
        if settings.oauth_issuer is not None:
            from vllm_mcp.protocol import oauth

            try:  # blocking HTTP to the issuer: off the event loop
                self.oauth = await asyncio.to_thread(oauth.start, settings, self.url)
            except OAuthSetupError:  # exit 2, as a bad setting
                self.socket.close()
                raise

    @property
    def url(self) -> str:
        host = self.settings.http_host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.port}{MCP_PATH}"

    def build_app(self, server: Any) -> ASGIApp:
        s = self.settings
        auth = None
        verifier: Any = self.verifier
        if self.oauth is not None:  # the metadata route and WWW-Authenticate (protocol/oauth.py)
            from vllm_mcp.protocol import oauth

            auth, verifier = oauth.app_auth(self.oauth, self.verifier, s.oauth_scopes)
        elif self.verifier is not None:
            # The SDK wires BearerAuthBackend + RequireAuthMiddleware only with AuthSettings;
            # no OAuth routes are made (no provider, no resource_server_url).
            auth = AuthSettings(issuer_url=self.url.removesuffix(MCP_PATH), resource_server_url=None)
        server.middleware.append(_DisconnectCancels())
        app = server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            host=s.http_host,
            transport_security=security_settings(s.http_host, s.allowed_hosts),
            max_request_body_size=s.max_message_bytes,
            # Several workers share one socket: a 2025-era MCP session, kept in one worker's
            # memory, would not be found by the next connection's worker (workers.py).
            stateless_http=s.http_stateless or s.http_workers > 1,
            auth=auth,
            token_verifier=verifier,
            custom_starlette_routes=[Route(HEALTH_PATH, self._health, methods=["GET", "HEAD"])],
        )
        if s.max_sessions_per_caller is not None:  # MCP sessions (stateful HTTP) per caller
            from vllm_mcp.protocol.session_cap import cap_per_caller

            cap_per_caller(server._session_manager, s.max_sessions_per_caller)
        # RFC 6750's details in the SDK's 401 / 403 (no error code without credentials, scope).
        return _Gate(Challenges(app, (s.oauth_scopes or "").split()), self)

    async def _health(self, request: Request) -> JSONResponse:
        state = self.hooks.health()
        body = {"state": state, **self.hooks.load_status()}
        return JSONResponse(body, status_code=200 if state == "ready" else 503)

    async def serve(self, server: Any) -> None:
        await self.startup()
        assert self.socket is not None
        config = uvicorn.Config(
            self.build_app(server),
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,
            proxy_headers=False,
            ws="none",
            timeout_graceful_shutdown=3,
            timeout_keep_alive=30,
        )
        self._uvicorn = _Uvicorn(config)
        self._uvicorn.should_exit = self._closing
        log.info(
            "serving MCP over HTTP",
            extra={
                "url": self.url,
                "health": self.url.removesuffix(MCP_PATH) + HEALTH_PATH,
                "auth": self.oauth.describe(self.verifier)
                if self.oauth
                else ("bearer token file" if self.verifier else "none (loopback only)"),
                "callers": self.verifier.caller_names if self.verifier else [],
            },
        )
        try:
            await self._uvicorn.serve(sockets=[self.socket])
        finally:
            self.socket.close()

    def close(self) -> None:
        self._closing = True
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
