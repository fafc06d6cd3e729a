"""Sessions in this process's memory: gone when it exits, not shared with another server."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_mcp.sessions.base import Message, SessionStore, caller_of_key


@dataclass
class _Session:
    messages: list[Message]
    updated: float


class MemorySessionStore(SessionStore):
    """Sessions in creation order, the order eviction follows (a caller's own first)."""

    kind = "memory"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def _live(self, key: str) -> _Session | None:
        session = self._sessions.get(key)
        if session is not None and self.is_expired(session.updated):
            del self._sessions[key]
            return None
        return session

    async def history(self, key: str) -> list[Message]:
        session = self._live(key)
        return [dict(m) for m in session.messages] if session else []

    async def append_turn(self, key: str, new: Sequence[Message], reply: Message) -> None:
        session = self._live(key)
        now = self._clock()
        if session is not None:
            session.messages, session.updated = self.merged(session.messages, new, reply), now
            return
        self._purge_expired()
        caller = caller_of_key(key)
        mine = [k for k in self._sessions if caller_of_key(k) == caller]  # oldest first
        own, oldest = self.to_evict(len(mine), len(self._sessions))
        evicted = mine[:own]
        for k in evicted:
            del self._sessions[k]
        for _ in range(oldest):
            evicted.append(self._sessions.popitem(last=False)[0])
        self.evicted(evicted)
        self._sessions[key] = _Session(self.merged([], new, reply), now)

    def _purge_expired(self) -> None:
        cutoff = self.expired_before()
        if cutoff is None:
            return
        for key in [k for k, s in self._sessions.items() if s.updated < cutoff]:
            del self._sessions[key]

    async def end(self, key: str) -> bool:
        existed = self._live(key) is not None
        self._sessions.pop(key, None)
        return existed

    async def count(self) -> int:
        self._purge_expired()
        return len(self._sessions)
