"""Conversation history per ``session_id``, with the seed's limits.

At most ``max_sessions`` sessions (the oldest evicted first) and at most
``max_messages`` messages each (the oldest dropped, a leading system prompt kept).
Each session has a lock so that two concurrent calls on one session run one after
the other and neither turn is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Message = dict[str, str]


@dataclass
class Session:
    id: str
    messages: list[Message] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


class SessionStore:
    """In-memory sessions in creation order (the order eviction follows)."""

    def __init__(
        self,
        max_sessions: int,
        max_messages: int,
        on_evict: Callable[[int], None] = lambda n: None,
    ) -> None:
        self.max_sessions = max_sessions
        self.max_messages = max_messages
        self._on_evict = on_evict
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._sessions

    def lock(self, session_id: str) -> asyncio.Lock:
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        return lock

    def history(self, session_id: str) -> list[Message]:
        session = self._sessions.get(session_id)
        return list(session.messages) if session else []

    def append(self, session_id: str, new: Sequence[Message], reply: Message) -> None:
        """Record one completed turn: the caller's new messages and the reply."""
        session = self._sessions.get(session_id)
        if session is None:
            session = self._create(session_id)
        messages = session.messages
        for m in new:
            if m["role"] == "system" and messages and messages[0]["role"] == "system":
                messages[0] = dict(m)  # a new system prompt replaces the old one
            elif m["role"] == "system" and messages:
                messages.insert(0, dict(m))
            else:
                messages.append(dict(m))
        messages.append(dict(reply))
        session.messages = truncate(messages, self.max_messages)
        session.updated = time.time()
        self._saved(session)

    def end(self, session_id: str) -> bool:
        existed = self._sessions.pop(session_id, None) is not None
        self._forget_lock(session_id)
        if existed:
            self._deleted(session_id)
        return existed

    def _create(self, session_id: str) -> Session:
        evicted = 0
        while len(self._sessions) >= self.max_sessions:
            old_id, _ = self._sessions.popitem(last=False)
            self._forget_lock(old_id)
            self._deleted(old_id)
            evicted += 1
        if evicted:
            self._on_evict(evicted)
        session = self._sessions[session_id] = Session(session_id)
        return session

    def _forget_lock(self, session_id: str) -> None:
        lock = self._locks.get(session_id)
        if lock is not None and not lock.locked():
            del self._locks[session_id]

    # Persistence hooks: a durable store overrides these.
    def _saved(self, session: Session) -> None:
        pass

    def _deleted(self, session_id: str) -> None:
        pass

    def close(self) -> None:
        pass


def truncate(messages: list[Message], limit: int) -> list[Message]:
    """Keep the newest ``limit`` messages; a leading system prompt always stays."""
    if len(messages) <= limit:
        return messages
    if messages and messages[0]["role"] == "system":
        return [messages[0], *messages[len(messages) - (limit - 1) :]]
    return messages[len(messages) - limit :]
