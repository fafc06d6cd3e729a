"""The MCP side: the only package that speaks the protocol.

- ``server``: the tools mapped onto the official SDK's low-level ``Server`` (tools/list,
  tools/call, progress, errors). One ``Server`` serves every transport.
- ``transport``: the ``Transport`` base class the process life cycle (``vllm_mcp.server.app``)
  drives: start up, serve until told to stop, refuse new calls, drain what is in flight; and
  ``ServerHooks``, what a transport asks of the server, given when it is built.
- ``stdio``: newline-delimited JSON-RPC on stdin/stdout, for gateways that spawn us.
- ``http``: MCP Streamable HTTP (the SDK's app under uvicorn) for many clients at once;
  ``auth``: its bearer tokens, read from a file, one caller per token; ``oauth``: access
  tokens from an OAuth authorization server (vllm-mcp as a resource server).
- ``tasks``: MCP tasks, 2025-11-25 (experimental); ``tasks_ext``: the 2026-07-28
  ``io.modelcontextprotocol/tasks`` extension; both over ``vllm_mcp.tools.tasks``.
- ``client``: the MCP client behind ``vllm-mcp chat``.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from vllm_mcp.protocol.server import build_server
from vllm_mcp.protocol.transport import ServerHooks, Transport

if TYPE_CHECKING:
    from vllm_mcp.config.settings import Settings

__all__ = ["ServerHooks", "Transport", "build_server", "make_transport"]


def make_transport(
    settings: Settings, hooks: ServerHooks, listening: socket.socket | None = None
) -> Transport:
    """The transport ``settings`` ask for (``VLLM_MCP_TRANSPORT``); HTTP on ``listening`` if given.

    Nothing is bound or opened yet: that is the transport's ``startup``.
    """
    if settings.transport == "http":
        from vllm_mcp.protocol.http import HttpTransport

        return HttpTransport(settings, hooks, listening)
    from vllm_mcp.protocol.stdio import StdioTransport

    return StdioTransport(settings.max_message_bytes, hooks)
