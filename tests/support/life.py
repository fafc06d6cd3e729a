"""One server through its whole life, shared by a module's tests: loading, ready, the end.

An engine start costs most of a minute of one CPU core here, so a module whose tests want
one configuration at different moments of a server's life asks a ``Life`` for what each
test needs, and the tests that run in file order share one server:

- ``fresh()``: a server that no earlier test has touched, its model still loading (the
  test that watches the load goes first in the file);
- ``ready()``: the running server, model loaded (waited for here);
- ``last()``: the running server, for a test that ends it (end of input, SIGTERM): the
  next test that asks gets a new one.

Whatever the order, or with a test run alone, each test still gets what it asks for: a
server that was touched, has exited or was taken by ``last()`` is replaced, at the price of
another start. No test depends on another's effects, only on its own request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar


class Server(Protocol):
    """What McpClient, RawServer and HttpServer all have."""

    def wait_ready(self, timeout: float = ...) -> Any: ...
    def running(self) -> bool: ...
    def close(self) -> Any: ...


S = TypeVar("S", bound=Server)


class Life(Generic[S]):
    def __init__(self, start: Callable[[], S], ready_within: float = 600) -> None:
        self._start, self._ready_within = start, ready_within
        self._server: S | None = None
        self._touched = False
        self._all: list[S] = []
        self.starts = 0  # how many servers this module started: 1 in file order

    def _new(self) -> S:
        self._retire()
        self._server = self._start()
        self._all.append(self._server)
        self._touched = False
        self.starts += 1
        return self._server

    def _retire(self) -> None:
        if self._server is not None and self._server.running():
            self._server.close()
        self._server = None

    def fresh(self) -> S:
        server = self._server if self._server is not None and not self._touched else self._new()
        self._touched = True
        return server

    def ready(self) -> S:
        if self._server is None or not self._server.running():
            self._new()
        assert self._server is not None
        self._touched = True
        self._server.wait_ready(timeout=self._ready_within)
        return self._server

    def last(self) -> S:
        server = self.ready()
        self._server = None  # the caller ends it; close() still stops it if the test fails
        return server

    def close(self) -> None:
        self._server = None
        for server in self._all:
            if server.running():
                server.close()
        self._all.clear()


# --- what a client hears while the model loads --------------------------------------------

LOADING_PHASES = {"importing", "starting_engine", "loading_weights", "compiling", "warming_up"}


class Heard:
    """Progress notifications of one call, from the client's own thread or loop."""

    def __init__(self) -> None:
        self.notes: list[tuple[float, float | None, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        with self._lock:
            self.notes.append((progress, total, message))

    def waits(self) -> list[str]:
        return [m or "" for _, total, m in self.notes if total is None]

    def check(self) -> None:
        """It heard it wait for the load, in notes whose progress only ever increases."""
        waits = self.waits()
        assert waits and all(w.startswith("waiting for the model to load: ") for w in waits), self.notes
        assert any(" s so far" in w for w in waits)
        values = [p for p, _, _ in self.notes]
        assert values == sorted(values) and len(set(values)) == len(values)
