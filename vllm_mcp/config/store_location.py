"""Where ``VLLM_MCP_SESSION_STORE`` says the sessions live: the one parsing rule.

Accepted forms::

    (unset)                               in this process's memory
    /var/lib/vllm-mcp/sessions.db         a SQLite file (relative paths too)
    sqlite:///var/lib/vllm-mcp/s.db       the same, as a URL
    postgresql://user@host:5432/db        PostgreSQL (postgres:// too); the password from
                                          PGPASSFILE or VLLM_MCP_SESSION_STORE_PASSWORD_FILE

Anything with a URL scheme that is not one of these (``redis://``), or a path that looks
like a mistyped URL (``postgresql:/x``, ``postgres:host/db``), is an error and never a file:
a typo must not quietly keep sessions in a stray SQLite file. A URL that carries a password
is refused, so that the password never reaches a log line, ``config show`` or an error.

A rule of the settings, so it lives in ``config`` (``Settings`` checks the value with it on every
load; ``vllm_mcp.sessions`` opens what it parses). Kept free of database imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_plus, urlsplit, urlunsplit

ACCEPTED = (
    "a file path (/var/lib/vllm-mcp/sessions.db), sqlite:///path/to/file.db, or "
    "postgresql://user@host:port/dbname (postgres:// too)"
)
_PG_SCHEMES = ("postgresql", "postgres")
# "word:" at the start: a scheme, unless it is a Windows drive letter (one letter).
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


@dataclass(frozen=True)
class StoreLocation:
    kind: Literal["sqlite", "postgres"]
    path: Path | None = None
    """The SQLite file."""
    url: str | None = None
    """The PostgreSQL connection URL (libpq reads it as is); it never holds a password."""

    @property
    def display(self) -> str:
        """How logs, errors and ``config show`` name the store."""
        return self.url if self.url is not None else str(self.path)


def parse_location(value: str) -> StoreLocation:
    """``VLLM_MCP_SESSION_STORE`` as a location; ``ValueError`` names the accepted forms."""
    text = value.strip()
    scheme = _SCHEME.match(text)
    if scheme is None:
        return StoreLocation("sqlite", path=Path(text))
    name = scheme.group(1).lower()
    if name == "sqlite":
        if not text[len(name) + 1 :].startswith("///") or len(text) <= len("sqlite:///"):
            raise ValueError(
                f"a SQLite URL is sqlite:///path/to/file.db (three slashes); accepted: {ACCEPTED}"
            )
        return StoreLocation("sqlite", path=Path(text[len("sqlite://") :]))
    if name in _PG_SCHEMES:
        return StoreLocation("postgres", url=_postgres_url(text))
    if text[len(name) + 1 :].startswith("//"):
        raise ValueError(f"unknown session store scheme {name}://; accepted: {ACCEPTED}")
    raise ValueError(
        f"looks like a URL, not a file path ({name}: without //); accepted: {ACCEPTED}; "
        "write ./ before a file name that really has a colon"
    )


def _postgres_url(text: str) -> str:
    if not re.match(r"^[A-Za-z]+://", text):
        raise ValueError(f"a PostgreSQL URL starts with postgresql:// (two slashes); accepted: {ACCEPTED}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as e:
        raise ValueError(f"not a valid PostgreSQL URL ({e}); accepted: {ACCEPTED}") from None
    if parts.password is not None or _names_a_password(parts.query):
        raise ValueError(
            "the URL carries a password; remove it and put it in a file named by "
            "VLLM_MCP_SESSION_STORE_PASSWORD_FILE (or in PGPASSFILE, libpq's password file), so it "
            "never shows in logs or config show"
        )
    if not parts.path.strip("/"):
        raise ValueError(f"name the database: postgresql://user@host:port/dbname; accepted: {ACCEPTED}")
    return urlunsplit(parts)


def _names_a_password(query: str) -> bool:
    """Whether a query names a password however it is spelt: libpq decodes ``%77`` in keys and
    values, and a value may itself be a connection string (``dbname=... password=...``)."""
    text = query
    for _ in range(4):  # decoded until it stops changing, so %2577 is seen too
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return "password" in text.lower()


def redact(value: str) -> str:
    """``value`` with any URL password replaced, for an error message about a bad value."""
    try:
        parts = urlsplit(value.strip())
        if _names_a_password(parts.query):
            parts = parts._replace(query="<hidden>")
        if parts.password is not None:
            parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":<hidden>@", 1))
        return urlunsplit(parts)
    except ValueError:
        return "<hidden>"
