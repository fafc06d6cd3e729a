"""What the process life cycle needs from a transport, whichever it is.

Modelled on httpx's transports: one small base class, one subclass per way of carrying
messages. ``vllm_mcp.server.app.Server`` builds a transport with the ``ServerHooks`` it
answers to, then drives it: ``startup`` (bind, read files, contact issuers: a set-up error
here stops the process before the engine starts), ``serve``, and at shutdown
``stop_intake`` -> ``wait_drained`` -> ``close``.

The intake/drain bookkeeping lives here once: each subclass only says when a call starts
(``_call_started``) and when it is answered (``_call_finished``).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

# JSON-RPC error codes used by every transport.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR = (
    -32700,
    -32600,
    -32601,
    -32602,
    -32603,
)
SERVER_SHUTTING_DOWN = -32000


def _nothing() -> None:
    return None


def _ready() -> str:
    return "ready"


@dataclass(frozen=True)
class ServerHooks:
    """What a transport asks of the server process, handed over when the transport is built."""

    #: Called when the peer closes its side (stdio end of input); the server then shuts down.
    on_eof: Callable[[], None] = _nothing
    #: The server's state for health checks ("loading", "ready", "failed", "stopping", ...).
    health: Callable[[], str] = _ready
    #: Where the model load stands: {"phase": ..., "phase_s": ..., "load_s": ...} (load_phase.py).
    load_status: Callable[[], dict[str, Any]] = dict


class Transport(abc.ABC):
    """Carries MCP messages between clients and the one SDK ``Server``."""

    def __init__(self, hooks: ServerHooks | None = None) -> None:
        self.hooks = hooks or ServerHooks()
        #: False once a shutdown started: new requests are refused with SERVER_SHUTTING_DOWN.
        self.intake_open = True
        self._calls: set[Hashable] = set()
        self._drained = asyncio.Event()
        self._drained.set()

    async def startup(self) -> None:  # noqa: B027 - a transport with nothing to set up
        """Acquire what serving needs (sockets, files, issuers); ``TransportSetupError`` if it cannot."""

    @abc.abstractmethod
    async def serve(self, server: Any) -> None:
        """Serve ``server`` until ``close`` is called; runs ``startup`` first if nobody did."""

    @abc.abstractmethod
    def close(self) -> None:
        """Make ``serve`` return."""

    # --- intake and drain, the same for every transport ----------------------------

    def stop_intake(self) -> None:
        """Refuse new requests (with an error naming the shutdown); in-flight ones go on."""
        self.intake_open = False

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return len(self._calls)

    async def wait_drained(self, timeout: float | None = None) -> bool:
        """Whether no request is in flight, waiting up to ``timeout`` seconds for that."""
        with contextlib.suppress(asyncio.TimeoutError):  # not the builtin before 3.11
            await asyncio.wait_for(self._drained.wait(), timeout)
        return self._drained.is_set()

    def _call_started(self, key: Hashable) -> None:
        self._calls.add(key)
        self._drained.clear()

    def _call_finished(self, key: Hashable) -> None:
        self._calls.discard(key)
        if not self._calls:
            self._drained.set()
