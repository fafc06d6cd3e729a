"""What the process life cycle needs from a transport, whichever it is.

Modelled on httpx's transports: one small base class, one subclass per way of
carrying messages. ``vllm_mcp.server.app`` starts the engine, then calls ``serve`` and, on
a signal or end of input, ``stop_intake`` -> ``wait_drained`` -> ``close``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
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


class Transport(abc.ABC):
    """Carries MCP messages between clients and the one SDK ``Server``."""

    #: Called when the peer closes its side (stdio end of input); the app then shuts down.
    on_eof: Callable[[], None] = staticmethod(lambda: None)
    #: The server's state for health checks ("loading", "ready", "failed", "stopping", ...).
    health: Callable[[], str] = staticmethod(lambda: "ready")
    #: Where the model load stands: {"phase": ..., "phase_s": ..., "load_s": ...} (load_phase.py).
    load_status: Callable[[], dict[str, Any]] = staticmethod(dict)

    @abc.abstractmethod
    async def serve(self, server: Any) -> None:
        """Serve ``server`` until ``close`` is called or the input ends."""

    @abc.abstractmethod
    def stop_intake(self) -> None:
        """Refuse new requests (with an error naming the shutdown); in-flight ones go on."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Requests received and not yet answered."""

    @abc.abstractmethod
    async def wait_drained(self) -> None:
        """Return once no request is in flight."""

    @abc.abstractmethod
    def close(self) -> None:
        """Make ``serve`` return."""
