"""The MCP side: the only package that speaks the protocol.

- ``server``: the tools mapped onto the official SDK's low-level ``Server`` (tools/list,
  tools/call, progress, errors). One ``Server`` serves every transport.
- ``transport``: the ``Transport`` base class the process life cycle (``vllm_mcp.app``)
  drives: serve until told to stop, refuse new calls, report what is still in flight.
- ``stdio``: newline-delimited JSON-RPC on stdin/stdout, for gateways that spawn us.
- ``client``: the MCP client behind ``vllm-mcp chat``.
"""

from __future__ import annotations

from vllm_mcp.protocol.server import build_server
from vllm_mcp.protocol.transport import Transport

__all__ = ["Transport", "build_server", "make_transport"]


def make_transport(settings: object) -> Transport:
    """The transport ``settings`` ask for (stdio today)."""
    from vllm_mcp.protocol.stdio import StdioTransport

    return StdioTransport(settings.max_message_bytes)  # type: ignore[attr-defined]
