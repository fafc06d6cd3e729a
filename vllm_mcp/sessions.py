"""Conversation history per ``session_id``, with the seed's limits.

At most ``max_sessions`` sessions (the oldest evicted first) and at most
``max_messages`` messages each (the oldest dropped, a leading system prompt kept).
Each session has a lock so that two concurrent calls on one session run one after
the other and neither turn is lost.

``SqliteSessionStore`` (``VLLM_MCP_SESSION_STORE``) keeps the same sessions in a
SQLite file as well, so a restarted server continues every conversation: each
completed turn is one committed transaction before its response is sent, so a
crash loses at most the turn in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Message = dict[str, str]


@dataclass
class Session:
    id: str
    messages: list[Message] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    seq: int = 0
    """Creation order; eviction follows it, across restarts too."""


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
        self._next_seq = 1

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
        session = self._sessions[session_id] = Session(session_id, seq=self._next_seq)
        self._next_seq += 1
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


# --- persistence --------------------------------------------------------------------------

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    messages TEXT NOT NULL
)
"""


class SessionStoreError(RuntimeError):
    """The session store file cannot be used (a directory, no permission, another schema)."""


class SqliteSessionStore(SessionStore):
    """Sessions in memory and in a SQLite file (WAL), written through on every turn.

    The whole history of a session is one row, replaced in one transaction per turn:
    a reader (or a restart after SIGKILL) sees either the turn or nothing of it.
    ``synchronous=FULL`` makes the commit durable before the caller's response is sent.
    One server per file: the in-memory copy is the truth while it runs.
    """

    def __init__(
        self,
        path: Path,
        max_sessions: int,
        max_messages: int,
        on_evict: Callable[[int], None] = lambda n: None,
    ) -> None:
        super().__init__(max_sessions, max_messages, on_evict)
        self.path = path
        self.write_errors = 0
        self._db = self._open(path)
        self._load()

    def _open(self, path: Path) -> sqlite3.Connection:
        if path.is_dir():
            raise SessionStoreError(f"VLLM_MCP_SESSION_STORE={path} is a directory; give a file path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(path)
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
                raise SessionStoreError(f"cannot open session store {path}: {e}") from None
            # Not a database (or damaged beyond use): keep it for inspection, start afresh.
            # Refusing to start would turn one bad file into an outage.
            aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    src.replace(Path(str(aside) + suffix))
            log.error(
                "session store unreadable; moved aside, starting with no sessions",
                extra={"path": str(path), "moved_to": str(aside), "error": str(e)},
            )
            return self._connect(path)
        except OSError as e:
            raise SessionStoreError(f"cannot open session store {path}: {e.strerror or e}") from None

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 5000")
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.DatabaseError(f"journal_mode is {mode}, not wal")
            db.execute("PRAGMA synchronous = FULL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise SessionStoreError(
                    f"session store {path} has schema version {version}; this vllm-mcp "
                    f"knows version {_SCHEMA_VERSION}"
                )
            problem = db.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {problem}")
            db.execute(_SCHEMA)
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _load(self) -> None:
        rows = self._db.execute("SELECT id, seq, created, updated, messages FROM sessions ORDER BY seq")
        skipped = 0
        for sid, seq, created, updated, raw in rows.fetchall():
            try:
                messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in json.loads(raw)]
            except (ValueError, TypeError, KeyError):
                skipped += 1
                continue
            self._sessions[sid] = Session(
                sid, truncate(messages, self.max_messages), created, updated, int(seq)
            )
            self._next_seq = max(self._next_seq, int(seq) + 1)
        # The limits may have been lowered since the file was written.
        while len(self._sessions) > self.max_sessions:
            old_id, _ = self._sessions.popitem(last=False)
            self._deleted(old_id)
        if skipped:
            log.warning("skipped unreadable sessions in the store", extra={"count": skipped})
        log.info("sessions restored", extra={"path": str(self.path), "sessions": len(self._sessions)})

    def _saved(self, session: Session) -> None:
        self._write(
            "INSERT INTO sessions (id, seq, created, updated, messages) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET updated = excluded.updated, messages = excluded.messages",
            (session.id, session.seq, session.created, session.updated, json.dumps(session.messages)),
        )

    def _deleted(self, session_id: str) -> None:
        self._write("DELETE FROM sessions WHERE id = ?", (session_id,))

    def _write(self, sql: str, values: tuple[object, ...]) -> None:
        """One autocommitted statement; a failure (disk full) is logged, not raised.

        The memory copy stays right, and the next turn of that session rewrites its
        whole row, so the file catches up as soon as writing works again.
        """
        try:
            self._db.execute(sql, values)
        except sqlite3.Error as e:
            self.write_errors += 1
            log.error("could not write the session store", extra={"path": str(self.path), "error": str(e)})

    def close(self) -> None:
        """Checkpoint the WAL into the main file, so the store is one file again."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


def open_store(
    path: Path | None,
    max_sessions: int,
    max_messages: int,
    on_evict: Callable[[int], None] = lambda n: None,
) -> SessionStore:
    """The store the settings ask for: in memory, or SQLite at ``path``."""
    if path is None:
        return SessionStore(max_sessions, max_messages, on_evict)
    return SqliteSessionStore(path, max_sessions, max_messages, on_evict)
