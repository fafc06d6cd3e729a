"""The MCP side: the only package that speaks the protocol.

- ``server``: the tools mapped onto the official SDK's low-level ``Server`` (tools/list,
  tools/call, progress, errors). One ``Server`` serves every transport.
- ``transport``: the ``Transport`` base class the process life cycle (``vllm_mcp.server.app``)
  drives: serve until told to stop, refuse new calls, report what is still in flight.
- ``stdio``: newline-delimited JSON-RPC on stdin/stdout, for gateways that spawn us.
- ``http``: MCP Streamable HTTP (the SDK's app under uvicorn) for many clients at once;
  ``auth``: its bearer tokens, read from a file, one caller per token; ``oauth``: access
  tokens from an OAuth authorization server (vllm-mcp as a resource server).
- ``client``: the MCP client behind ``vllm-mcp chat``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from vllm_mcp.protocol.server import build_server
from vllm_mcp.protocol.transport import Transport

if TYPE_CHECKING:
    from vllm_mcp.config.settings import Settings

__all__ = ["Transport", "build_server", "make_transport"]


def make_transport(settings: Settings, listening: socket.socket | None = None) -> Transport:
    """The transport ``settings`` ask for (``VLLM_MCP_TRANSPORT``); HTTP on ``listening`` if given."""
    if settings.transport == "http":
        from vllm_mcp.protocol.http import HttpTransport

        return HttpTransport(settings, listening)
    from vllm_mcp.protocol.stdio import StdioTransport

    return StdioTransport(settings.max_message_bytes)
