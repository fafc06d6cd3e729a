"""What one call may ask for, checked before it is admitted, and whose sessions it reaches.

Everything a caller controls and the server must process on the event loop is bounded here
first (settings ``VLLM_MCP_MAX_*``), so that one call cannot stall the others: a 1 MB
``json_schema`` or a regex of a million characters is refused by name in microseconds. The
costly checks that remain (the schema against the meta-schema, the grammar compile) run in
a thread, after admission (``handlers.py``, ``engine/core.py``).

Session keys: each authenticated caller has its own namespace, ``<namespace>\\x1f<session_id>``.
A ``session_id`` may hold no control character, so it can never carry the separator into
another caller's namespace.
"""

from __future__ import annotations

import json
from typing import Any, overload

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import lora
from vllm_mcp.errors import InvalidArguments
from vllm_mcp.sessions.base import SEPARATOR

NO_NAMESPACE = ""
"""The caller is authenticated but its token names no one (an OAuth token without the
caller claim): it may generate, but has no session namespace."""


def control_character(text: str) -> str | None:
    """The first control character (C0, DEL, C1) in ``text`` as ``U+XXXX``, or None."""
    for c in text:
        if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F:
            return f"U+{ord(c):04X}"
    return None


def check_session_id(value: str) -> str:
    """A pydantic validator's body: ``ValueError`` naming the character."""
    bad = control_character(value)
    if bad is not None:
        raise ValueError(f"contains the control character {bad}; use printable characters only")
    return value


@overload
def session_key(caller: str | None, session_id: str) -> str: ...
@overload
def session_key(caller: str | None, session_id: None) -> None: ...
def session_key(caller: str | None, session_id: str | None) -> str | None:
    """Where a caller's session lives in the store: each authenticated caller has its own
    namespace, so one cannot read or end another's conversation by guessing its id. The
    caller still sees its own ``session_id``; without authentication (stdio) the key is the id.
    """
    if session_id is None:
        return None
    if caller is None:
        return session_id
    if caller == NO_NAMESPACE:
        raise InvalidArguments(
            "invalid arguments: session_id: this caller's token names no user (it lacks the claim "
            "VLLM_MCP_OAUTH_CALLER_CLAIM names), so it has no session namespace; call without "
            "session_id, or ask the operator to name a claim the token has"
        )
    return f"{caller}{SEPARATOR}{session_id}"


def _too_long(where: str, size: int, limit: int, setting: str, unit: str = "characters") -> InvalidArguments:
    return InvalidArguments(f"invalid arguments: {where}: {size} {unit}, more than {limit} ({setting})")


def check_generation(args: Any, settings: Settings) -> None:
    """The bounds every generating tool shares (stop, json_schema, choice, regex, adapter)."""
    s = settings
    for i, stop in enumerate(args.stop or ()):
        if len(stop) > s.max_stop_chars:
            raise _too_long(f"stop[{i}]", len(stop), s.max_stop_chars, "VLLM_MCP_MAX_STOP_CHARS")
    if args.regex is not None and len(args.regex) > s.max_regex_chars:
        raise _too_long("regex", len(args.regex), s.max_regex_chars, "VLLM_MCP_MAX_REGEX_CHARS")
    if args.choice is not None:
        if len(args.choice) > s.max_choices:
            raise InvalidArguments(
                f"invalid arguments: choice: {len(args.choice)} strings, more than {s.max_choices} "
                "(VLLM_MCP_MAX_CHOICES)"
            )
        for i, c in enumerate(args.choice):
            if len(c) > s.max_choice_chars:
                raise _too_long(f"choice[{i}]", len(c), s.max_choice_chars, "VLLM_MCP_MAX_CHOICE_CHARS")
    if args.adapter is not None and args.adapter not in lora.adapters(s.lora_modules):
        # Refused before any work (it used to be found under the session's lock).
        names = ", ".join(lora.adapters(s.lora_modules)) or "none are configured (VLLM_MCP_LORA_MODULES)"
        raise InvalidArguments(
            f"invalid arguments: adapter: unknown adapter {args.adapter!r}; known adapters: {names}"
        )
    if args.json_schema is not None:
        size = _json_size(args.json_schema)
        if size > s.max_json_schema_bytes:
            raise _too_long(
                "json_schema", size, s.max_json_schema_bytes, "VLLM_MCP_MAX_JSON_SCHEMA_BYTES", "bytes"
            )


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (the C encoder: a 4 MiB body, the largest a request
    may carry, takes milliseconds); a nesting too deep to encode counts as too large."""
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (RecursionError, ValueError):
        return 1 << 62


def check_messages(messages: list[Any], settings: Settings) -> None:
    """Count, length and NUL: all refused before the call is admitted."""
    s = settings
    if len(messages) > s.max_messages:
        raise InvalidArguments(
            f"invalid arguments: messages: {len(messages)} messages, more than {s.max_messages} "
            "(VLLM_MCP_MAX_MESSAGES); send the conversation's new messages only (session_id keeps "
            "the rest)"
        )
    for i, m in enumerate(messages):
        content = m.text()  # text parts only: images have their own limits (media.py)
        if len(content) > s.max_content_chars:
            raise InvalidArguments(
                f"invalid arguments: messages[{i}].content: longer than "
                f"{s.max_content_chars} characters (VLLM_MCP_MAX_CONTENT_CHARS)"
            )
        if "\x00" in content:
            raise InvalidArguments(
                f"invalid arguments: messages[{i}].content: contains a NUL character (U+0000), "
                "which a conversation cannot keep; remove it"
            )
