"""What every session store does the same way: how a turn merges into a history, the limits.

A store keeps at most ``max_sessions`` sessions and at most ``max_per_caller`` of one caller
(the namespace before ``SEPARATOR`` in a key; keys without one are one caller): a new session
evicts its caller's own oldest *created* first, and only a caller with none evicts the oldest
of all, so one caller cannot erase another's conversations. At most ``max_messages``
messages each (the oldest dropped, a leading system prompt kept);
with a ``ttl`` a session idle longer than that is gone. ``append_turn`` records one
completed turn as one committed transaction that reads the stored history, merges the turn
onto it and writes it back under a lock on the session, so two servers appending to one
session at once never lose or interleave a turn. ``lock`` is the in-process lock that
orders one server's concurrent calls on a session (read the history, generate, append); an
entry lives only while a call holds or waits for it, so the map stays as small as the calls
in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]  # role, content (a string, or parts with images), tool calls
EvictHook = Callable[[int], None]
SEPARATOR = "\x1f"
"""Between a caller's namespace and its ``session_id`` in a key (a session_id cannot hold it)."""


def caller_of_key(key: str) -> str:
    """The namespace part of a session key ('' for a key without one: the unauthenticated)."""
    caller, sep, _ = key.partition(SEPARATOR)
    return caller if sep else ""


@dataclass
class _LockEntry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SessionStore(ABC):
    """The interface the tools use; backends implement the ``async`` methods."""

    kind = "memory"

    def __init__(
        self,
        max_sessions: int,
        max_messages: int,
        *,
        ttl: float | None = None,
        on_evict: EvictHook = lambda n: None,
        clock: Callable[[], float] = time.time,
        max_per_caller: int | None = None,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_per_caller = max_per_caller
        self.max_messages = max_messages
        self.ttl = ttl
        self._on_evict = on_evict
        self._clock = clock
        self._locks: dict[str, _LockEntry] = {}

    @property
    def name(self) -> str:
        """How errors and logs name the store (never with a password)."""
        return self.kind

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """The in-process lock of one session: a server's calls on it run one after another.

        The entry is removed when its last user leaves, so the map never outgrows the calls
        in flight (main kept one per session id ever seen, even for refused calls).
        """
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _LockEntry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and self._locks.get(key) is entry:
                del self._locks[key]

    async def open(self) -> None:
        """Connect and create the schema; ``SessionStoreError`` if the store cannot be used."""
        return None

    @abstractmethod
    async def history(self, key: str) -> list[Message]:
        """The session's messages, oldest first; [] for an unknown or expired session."""

    @abstractmethod
    async def append_turn(self, key: str, new: Sequence[Message], reply: Message) -> None:
        """Record one completed turn (the caller's new messages and the reply), atomically."""

    @abstractmethod
    async def end(self, key: str) -> bool:
        """Forget a session; False when there was none."""

    @abstractmethod
    async def count(self) -> int:
        """Sessions held (expired ones not counted), by every server sharing the store."""

    async def aclose(self) -> None:
        """Release connections and files."""
        return None

    # --- shared by the backends ------------------------------------------------------------

    def merged(self, stored: Sequence[Message], new: Sequence[Message], reply: Message) -> list[Message]:
        return merge_turn(stored, new, reply, self.max_messages)

    def expired_before(self) -> float | None:
        """Sessions last updated before this time are expired (None: no TTL)."""
        return None if self.ttl is None else self._clock() - self.ttl

    def is_expired(self, updated: float) -> bool:
        cutoff = self.expired_before()
        return cutoff is not None and updated < cutoff

    def evicted(self, keys: Iterable[str]) -> None:
        """Sessions dropped to make room: counted (metrics)."""
        n = sum(1 for _ in keys)
        if n:
            self._on_evict(n)

    def to_evict(self, caller_count: int, total: int) -> tuple[int, int]:
        """How many sessions a new one of a caller holding ``caller_count`` (of ``total``) evicts:
        (its own oldest, then the oldest of all). Its own go first, at its own limit and at the
        store's, so one caller filling the store erases its own conversations, not others'."""
        own = 0
        if self.max_per_caller is not None and caller_count >= self.max_per_caller:
            own = caller_count - self.max_per_caller + 1
        over = max(0, total - own - self.max_sessions + 1)
        extra_own = min(over, caller_count - own)
        return own + extra_own, over - extra_own


def merge_turn(
    stored: Sequence[Message], new: Sequence[Message], reply: Message, limit: int
) -> list[Message]:
    """The history after one turn: a new system prompt replaces (or leads) the old, then truncation."""
    messages = [dict(m) for m in stored]
    for m in new:
        if m["role"] == "system" and messages and messages[0]["role"] == "system":
            messages[0] = dict(m)
        elif m["role"] == "system" and messages:
            messages.insert(0, dict(m))
        else:
            messages.append(dict(m))
    messages.append(dict(reply))
    return truncate(messages, limit)


def truncate(messages: list[Message], limit: int) -> list[Message]:
    """Keep the newest ``limit`` messages; a leading system prompt always stays."""
    if len(messages) <= limit:
        return messages
    if messages and messages[0]["role"] == "system":
        return [messages[0], *messages[len(messages) - (limit - 1) :]]
    return messages[len(messages) - limit :]


def decode_messages(raw: object) -> list[Message]:
    """Stored messages as role/content pairs; ``ValueError`` if they are not that."""
    if not isinstance(raw, list):
        raise ValueError("not a list of messages")
    try:
        return [
            {"role": str(m["role"]), "content": _content(m["content"])}
            # A tool-calling turn's calls and a tool result's call id (tools/tool_calls.py).
            | {k: m[k] for k in ("tool_calls", "tool_call_id") if k in m}
            for m in raw
        ]
    except (TypeError, KeyError) as e:
        raise ValueError(f"not a message: {e}") from None


def _content(content: Any) -> Any:
    """A string, or a list of parts: text and images as data URLs (tools/media.py)."""
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return content
    return str(content)
