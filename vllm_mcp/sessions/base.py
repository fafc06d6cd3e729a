"""What every session store does the same way: how a turn merges into a history, the limits.

A store keeps at most ``max_sessions`` sessions (the oldest *created* evicted first) and at
most ``max_messages`` messages each (the oldest dropped, a leading system prompt kept);
with a ``ttl`` a session idle longer than that is gone. ``append_turn`` records one
completed turn as one committed transaction that reads the stored history, merges the turn
onto it and writes it back under a lock on the session, so two servers appending to one
session at once never lose or interleave a turn. ``lock`` is the in-process lock that
orders one server's concurrent calls on a session (read the history, generate, append).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence

Message = dict[str, str]
EvictHook = Callable[[int], None]


class SessionStoreError(RuntimeError):
    """The store cannot be used at start (unreachable, no permission, an unknown schema)."""


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
    ) -> None:
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self.ttl = ttl
        self._on_evict = on_evict
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def name(self) -> str:
        """How errors and logs name the store (never with a password)."""
        return self.kind

    def lock(self, key: str) -> asyncio.Lock:
        """The in-process lock of one session: a server's calls on it run one after another."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

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
        """Sessions dropped to make room: counted (metrics) and their locks forgotten."""
        n = 0
        for key in keys:
            self.forget_lock(key)
            n += 1
        if n:
            self._on_evict(n)

    def forget_lock(self, key: str) -> None:
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]


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
            {"role": str(m["role"]), "content": str(m["content"])}
            # A tool-calling turn's calls and a tool result's call id (tools/tool_calls.py).
            | {k: m[k] for k in ("tool_calls", "tool_call_id") if k in m}
            for m in raw
        ]
    except (TypeError, KeyError) as e:
        raise ValueError(f"not a message: {e}") from None
