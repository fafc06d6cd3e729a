"""Bearer tokens for the HTTP transport, read from a file that may change while we run.

The file holds one caller per line: ``name:token``, or a bare ``token`` (the caller
``default``). Blank lines and ``#`` comments are skipped. The caller's name is what the
rest of the server sees (session namespaces, metrics); the token itself stays here and is
never logged, shown in an error, or stored. The file is re-read when its size, mtime or
inode changes, so a rotated token takes effect on the next request, without a restart.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from vllm_mcp.errors import TokenFileError
from vllm_mcp.tools.limits import NO_NAMESPACE

log = logging.getLogger(__name__)

DEFAULT_CALLER = "default"
MIN_TOKEN_CHARS = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an Authorization header can carry


@dataclass(frozen=True)
class Caller:
    name: str
    token: bytes


def parse_tokens(text: str, source: str = "token file") -> list[Caller]:
    """The callers in a token file's text, or ``TokenFileError`` naming the bad line."""
    callers: list[Caller] = []
    names: set[str] = set()
    tokens: set[bytes] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, token = line.partition(":")
        if not sep or not _NAME.fullmatch(name):
            name, token = DEFAULT_CALLER, line
        where = f"{source}:{number}"
        if not _TOKEN.fullmatch(token):
            raise TokenFileError(f"{where}: a token must be printable ASCII without spaces")
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenFileError(
                f"{where}: token shorter than {MIN_TOKEN_CHARS} characters; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if name in names:
            raise TokenFileError(f"{where}: caller {name!r} appears twice (one line per caller)")
        encoded = token.encode("ascii")
        if encoded in tokens:
            raise TokenFileError(f"{where}: the same token is given to two callers")
        names.add(name)
        tokens.add(encoded)
        callers.append(Caller(name, encoded))
    if not callers:
        raise TokenFileError(f"{source}: no token in it (one 'token' or 'name:token' per line)")
    return callers


def read_tokens(path: Path) -> list[Caller]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenFileError(f"{path}: no such file (VLLM_MCP_HTTP_TOKEN_FILE)") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
        raise TokenFileError(f"{path}: cannot read the token file ({reason})") from None
    return parse_tokens(text, str(path))


def match(callers: list[Caller], presented: str) -> str | None:
    """The caller whose token is ``presented``; every entry is compared, in constant time."""
    try:
        given = presented.encode("ascii")
    except UnicodeEncodeError:
        return None
    found = None
    for caller in callers:
        if hmac.compare_digest(caller.token, given):
            found = caller.name
    return found


class TokenFileVerifier:
    """The SDK's ``TokenVerifier`` over a token file, re-read when the file changes.

    A file that becomes unreadable or invalid locks everyone out (fail closed) and is
    logged once, until it is fixed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._callers: list[Caller] = []
        self._problem: str | None = None
        self.reload(strict=True)

    @property
    def caller_names(self) -> list[str]:
        return [c.name for c in self._callers]

    def _file_stamp(self) -> tuple[int, int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def reload(self, strict: bool = False) -> None:
        """Re-read the file if it changed. ``strict``: raise instead of locking everyone out."""
        stamp = self._file_stamp()
        if stamp is not None and stamp == self._stamp:
            return
        with self._lock:
            try:
                callers = read_tokens(self.path)
            except TokenFileError as e:
                if strict:
                    raise
                if str(e) != self._problem:
                    log.error(
                        "token file unusable; refusing every HTTP client until it is fixed",
                        extra={"error": str(e)},
                    )
                self._problem, self._callers, self._stamp = str(e), [], stamp
                return
            if self._stamp is not None:
                log.info("token file re-read", extra={"path": str(self.path), "callers": len(callers)})
            self._warn_if_readable_by_others()
            self._callers, self._stamp, self._problem = callers, stamp, None

    def _warn_if_readable_by_others(self) -> None:
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning(
                "the token file is readable by other users; chmod 600 it",
                extra={"path": str(self.path), "mode": oct(mode & 0o777)},
            )

    async def verify_token(self, token: str) -> AccessToken | None:
        self.reload()
        name = match(self._callers, token)
        if name is None:
            return None
        # The secret itself is not kept on the request: only the caller's name travels on.
        return AccessToken(token="[redacted]", client_id=name, scopes=[])


def caller_of(ctx: Any) -> str | None:
    """The authenticated caller's name for one MCP request, or None (stdio, no token file)."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser):
        return user.access_token.client_id
    return None


OAUTH_NAMESPACE = "oauth:"
"""Before an OAuth caller's name in its session namespace: a token-file name cannot hold ':',
so an OAuth subject never meets a token-file caller of the same name (issue 27)."""


def session_namespace(ctx: Any) -> str | None:
    """Whose sessions one MCP request reaches: None without authentication (stdio, loopback
    HTTP: the key is the session id), the token-file caller's name, ``oauth:<caller>`` for an
    OAuth token, or ``NO_NAMESPACE`` for an OAuth token without the caller claim."""
    request = getattr(ctx, "request", None)
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, AuthenticatedUser):
        return None
    token = user.access_token
    if token.claims is None or "caller" not in token.claims:  # the token file's
        return token.client_id
    caller = token.claims["caller"]
    return NO_NAMESPACE if caller is None else OAUTH_NAMESPACE + str(caller)


def read_client_token(path: Path) -> str:
    """The token a client sends: the first entry of a token file (a bare token or name:token)."""
    return read_tokens(path)[0].token.decode("ascii")
