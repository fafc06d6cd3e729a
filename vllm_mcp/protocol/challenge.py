"""RFC 6750's ``WWW-Authenticate`` details, around the SDK's 401 and 403 replies.

The SDK (``RequireAuthMiddleware``) answers every unauthenticated request with
``error="invalid_token"`` and a 403 without the scope it wanted. RFC 6750 section 3.1 says a
request that carried no credentials gets no error code ("SHOULD NOT include an error code or
other error information"), and that a resource server may name the ``scope`` needed, which
tells a client what to ask its authorization server for. This wrapper rewrites those two
replies and passes everything else through untouched.
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            return value[:7].lower() == b"bearer " and bool(value[7:].strip())
    return False


class Challenges:
    """ASGI wrapper: a 401 without credentials carries no ``error``; a 403 names ``scope``."""

    def __init__(self, app: ASGIApp, scopes: list[str]) -> None:
        self.app = app
        self.scope_param = " ".join(scopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_credentials = not _has_bearer(scope)
        new_body: bytes | None = None

        async def rewrite(message: Message) -> None:
            nonlocal new_body
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                message, new_body = self._challenge(message, no_credentials)
            elif message["type"] == "http.response.body" and new_body is not None:
                message = {**message, "body": new_body if not message.get("more_body") else b""}
                if not message.get("more_body"):
                    new_body = None
            await send(message)

        await self.app(scope, receive, rewrite)

    def _challenge(self, message: Message, no_credentials: bool) -> tuple[Message, bytes | None]:
        headers = list(message.get("headers", ()))
        at = next((i for i, (k, _) in enumerate(headers) if k.lower() == b"www-authenticate"), None)
        if at is None:
            return message, None
        value = headers[at][1].decode("latin-1")
        if not value.lower().startswith("bearer"):
            return message, None
        params = dict(_PARAM.findall(value))
        body = None
        if message["status"] == 401 and no_credentials:
            params.pop("error", None)
            params.pop("error_description", None)
            body = json.dumps({"error_description": "Authentication required: send a bearer token"}).encode()
        elif message["status"] == 403 and self.scope_param:
            params["scope"] = self.scope_param
        shown = ", ".join(f'{k}="{v}"' for k, v in params.items())
        headers[at] = (b"www-authenticate", f"Bearer {shown}".rstrip().encode("latin-1"))
        if body is not None:
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
        return {**message, "headers": headers}, body
