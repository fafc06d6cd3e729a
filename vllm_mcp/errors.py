"""What a tool call can fail with, in one place (httpx's ``_exceptions.py`` is the model).

A ``ToolError`` becomes an ``isError`` result whose text is the message, so every message is
a sentence for the caller that names what is wrong and how to fix it::

    ToolError               the call failed; outcome "error"
    ├── InvalidArguments    a bad argument, named; outcome "invalid"
    ├── ServerBusy          VLLM_MCP_MAX_CONCURRENCY and VLLM_MCP_MAX_QUEUE are full; "busy"
    ├── ShuttingDown        the server stopped taking calls, or its grace ran out
    ├── SessionStoreUnavailable  the session store failed during the call; nothing of the
    │                       turn was recorded; outcome "store"
    └── NotStarted          the call's time budget ran out before its first token (the model
                            still loading, no free slot, the prompt still being read); "timeout"
    OutOfTime               internal: the budget ran out before anything was generated

The engine's own failures (``EngineUnavailable``, ``EngineDead``, ``PromptRejected``) live in
``vllm_mcp.engine.core``, next to the code that raises them.
"""

from __future__ import annotations


class ToolError(Exception):
    """A call that fails with a message meant for the caller (an ``isError`` result)."""

    outcome = "error"


class InvalidArguments(ToolError):
    outcome = "invalid"


class ServerBusy(ToolError):
    outcome = "busy"


class ShuttingDown(ToolError):
    pass


class SessionStoreUnavailable(ToolError):
    """The session store (named in the message, without a password) failed during a call."""

    outcome = "store"


class NotStarted(ToolError):
    outcome = "timeout"


class OutOfTime(Exception):
    """The call's time budget ran out before generation began (queued or model loading)."""
