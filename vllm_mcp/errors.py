"""Every error vllm-mcp defines, in one tree (httpx's ``_exceptions.py`` is the model).

Each class says, as class attributes, what it means where it ends: ``exit_code``, the status
the process exits with when it stops on this error (``ExitCode``, the table ``--help``
prints), and ``outcome``, the label a tool call failing with it gets in the metrics. Every
message is a sentence for whoever reads it (a user at a shell, an MCP caller) that names what
is wrong and how to fix it, never a secret::

    VllmMcpError                  exit 1  the root: every exception vllm_mcp defines but Stop
    ├── SetupError                exit 1  the process cannot start (or a command cannot run)
    │   ├── ConfigError           exit 2  invalid settings, one line per problem (a ValueError)
    │   ├── TransportSetupError   exit 2  the transport cannot start
    │   │   └── HttpSetupError    exit 2  cannot listen on VLLM_MCP_HTTP_HOST:PORT
    │   ├── TokenFileError        exit 2  VLLM_MCP_HTTP_TOKEN_FILE (or --token-file) unusable
    │   ├── OAuthSetupError       exit 2  the OAuth issuer cannot be used at start
    │   ├── SessionStoreError     exit 1  the session store cannot be used at start (a
    │   │                                 supervisor may retry once the database is up)
    │   ├── ModelNotFound         exit 1  VLLM_MODEL_NAME names no path and no valid Hub id
    │   ├── EmbeddedModelError    exit 1  the embedded model cannot be prepared
    │   ├── PrefetchError         exit 1  a download failed
    │   └── ModelProblem                  (doctor.model) a finding about the model, and its fix
    ├── EngineError                       the vLLM engine failed a request
    │   ├── EngineUnavailable             not serving: still loading, failed, shut down
    │   │   └── EngineDead        exit 1  the engine process died: the server exits so that
    │   │                                 its supervisor restarts it
    │   └── PromptRejected                vLLM refused the request's input
    ├── SessionStoreFailed                the session store failed during a call (the tools
    │                                     layer turns it into SessionStoreUnavailable)
    ├── RequestError                      one request cannot be served as sent; the layer that
    │   │                                 called turns it into a tool or protocol error
    │   ├── OutOfTime                     the budget ran out before anything was generated
    │   ├── PromptTooLong                 (tools.prompts) no room for a reply even without history
    │   ├── UnknownAdapter                (tools.generation) an adapter that is not configured
    │   ├── IncompleteJson                (engine.structured) the reply stopped mid-value
    │   ├── TokenRejected                 (protocol.oauth) why one bearer token is refused
    │   └── _NotJson                      (protocol.stdio) NaN or Infinity in a message
    ├── ToolError                         an ``isError`` result; outcome "error"
    │   ├── InvalidArguments              a bad argument, named; outcome "invalid"
    │   ├── ServerBusy                    VLLM_MCP_MAX_CONCURRENCY and _MAX_QUEUE full; "busy"
    │   ├── ShuttingDown                  the server stopped taking calls, or its grace ran out
    │   ├── SessionStoreUnavailable       the store failed during the call; nothing of the
    │   │                                 turn was recorded; outcome "store"
    │   └── NotStarted                    the call's time budget ran out before its first
    │                                     token; outcome "timeout"
    └── CliError                  exit 1  a command ran and failed: message, then details
        ├── CheckFailed           exit 1  a report (on stdout) found a failure; its summary
        └── ChatFailed            exit 1  the server answered ``chat`` with an error

    Stop (a BaseException, outside the tree)  a signal handler's way out of a blocking vLLM
                                              call that catches Exception; never an error

A class shown without a status has the root's, 1, should a process ever stop on it. Classes
with a module in parentheses are defined next to the only code that raises them, on the branch
drawn here; ``tests/test_errors.py`` walks every module to keep it so. Where a class also
derives from ``ValueError`` or ``RuntimeError`` it did so before the tree, and callers
(pydantic among them) may still catch it by that name.
Exit 2 always means nothing was done: fix the command line or the configuration.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import ClassVar


class ExitCode(enum.IntEnum):
    """The process exit statuses of every ``vllm-mcp`` command, ``serve`` and ``worker`` too."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INTERRUPTED = 130


#: What each status means, for ``--help`` and docs/cli.md.
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failure (a check failed, a download or the server failed)",
    ExitCode.USAGE: "usage or configuration error (nothing was done)",
    ExitCode.INTERRUPTED: "interrupted",
}


class VllmMcpError(Exception):
    """The root: anything vllm-mcp raises on purpose."""

    #: The process's exit status when it stops on this error.
    exit_code: ClassVar[int] = ExitCode.FAILURE
    #: The metrics' outcome label of a tool call that fails with this error.
    outcome: ClassVar[str] = "error"


def exit_code_of(error: BaseException) -> int:
    """The exit status a process that stops on ``error`` returns: the class's, else failure."""
    return error.exit_code if isinstance(error, VllmMcpError) else ExitCode.FAILURE


# --- set-up: before anything is served ------------------------------------------------------


class SetupError(VllmMcpError):
    """What the process needs cannot be had: it does not start (or the command does not run)."""


class ConfigError(SetupError, ValueError):
    """Invalid configuration; ``lines`` are complete, user-facing sentences."""

    exit_code = ExitCode.USAGE

    def __init__(self, lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines


class TransportSetupError(SetupError, RuntimeError):
    """The transport cannot start (a port in use); one clear line."""

    exit_code = ExitCode.USAGE


class HttpSetupError(TransportSetupError):
    """The HTTP transport cannot listen where the settings say."""


class TokenFileError(SetupError, ValueError):
    """The token file cannot be used; the message names the file and line, never a token."""

    exit_code = ExitCode.USAGE


class OAuthSetupError(SetupError, RuntimeError):
    """The issuer cannot be used at start; the message names the URL and the setting."""

    exit_code = ExitCode.USAGE


class SessionStoreError(SetupError, RuntimeError):
    """The store cannot be used at start (unreachable, no permission, an unknown schema).

    Exit 1, not 2: the settings may be right and the database merely down.
    """


class ModelNotFound(SetupError, ValueError):
    """``VLLM_MODEL_NAME`` names a path that does not exist, or no valid Hub id."""


class EmbeddedModelError(SetupError, RuntimeError):
    """The embedded model cannot be prepared; the message says what to do."""


class PrefetchError(SetupError, RuntimeError):
    """One line that says what went wrong and what to do; never contains the token."""


# --- the engine -----------------------------------------------------------------------------


class EngineError(VllmMcpError):
    """The vLLM engine could not serve a request."""


class EngineUnavailable(EngineError, RuntimeError):
    """The engine cannot serve: still loading, failed to load, dead, or shut down."""


class EngineDead(EngineUnavailable):
    """The engine process died; the server must exit so its supervisor restarts it."""


class PromptRejected(EngineError, ValueError):
    """vLLM refused the request's input (too long, bad parameters)."""


# --- the session store during calls ---------------------------------------------------------


class SessionStoreFailed(VllmMcpError):
    """The session store (named in the message, without a password) failed during a call."""


# --- one request ----------------------------------------------------------------------------


class RequestError(VllmMcpError):
    """One request cannot be served as sent; internal, its caller says so in its own terms."""


class OutOfTime(RequestError):
    """The call's time budget ran out before generation began (queued or model loading)."""


# --- tool calls -----------------------------------------------------------------------------


class ToolError(VllmMcpError):
    """A call that fails with a message meant for the caller (an ``isError`` result)."""


class InvalidArguments(ToolError):
    outcome = "invalid"


class ServerBusy(ToolError):
    outcome = "busy"


class ShuttingDown(ToolError):
    pass


class SessionStoreUnavailable(ToolError):
    """The session store failed during the call (``SessionStoreFailed``, as a tool error)."""

    outcome = "store"


class NotStarted(ToolError):
    outcome = "timeout"


# --- the command line -----------------------------------------------------------------------


class CliError(VllmMcpError):
    """A failure the user should read: ``message``, then ``details`` lines as they are."""

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class CheckFailed(CliError):
    """A check's report (on stdout) found a failure; the message summarises it."""


class ChatFailed(CliError, RuntimeError):
    """The server answered with an error; the message is for the user."""


# --- outside the tree -----------------------------------------------------------------------


class Stop(BaseException):
    """Raised by a SIGTERM/SIGINT handler in the main thread, to leave a blocking vLLM call.

    A ``BaseException``, as vLLM's own ``SystemExit``: vLLM's waits catch ``Exception``, and a
    stop must not be taken for a failure there. Not an error, so not in the tree.
    """
