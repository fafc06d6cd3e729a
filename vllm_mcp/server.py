"""The MCP side: the only module that speaks the protocol.

The official SDK (``mcp``, low-level ``Server``) does the protocol: lifecycle and
version negotiation, tools/list, tools/call (one task per request, so calls run
concurrently and vLLM batches them), ping, progress, cancellation. We add the stdio
*transport*, because the SDK's drops lines it cannot parse without a reply and
reads lines of any size: ours answers -32700/-32600, bounds the line length, and
tracks which requests are unanswered so a shutdown can drain them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from vllm_mcp import __version__
from vllm_mcp import logging as vlogging
from vllm_mcp.config import Settings
from vllm_mcp.engine import (
    Engine,
    EngineDead,
    EngineState,
    EngineUnavailable,
    prepare_process_environment,
)
from vllm_mcp.metrics import Metrics
from vllm_mcp.sessions import open_store
from vllm_mcp.tools import (
    ChatArguments,
    ChatResult,
    EndSessionArguments,
    EndSessionResult,
    ModelInfo,
    NoArguments,
    ToolError,
    Tools,
    engine_error_message,
    schema,
)

log = logging.getLogger(__name__)

PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS, INTERNAL_ERROR = -32700, -32600, -32602, -32603
SERVER_SHUTTING_DOWN = -32000
EXIT_OK, EXIT_ENGINE_DIED = 0, 1

_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


# --- tools/list ---------------------------------------------------------------------------------

TOOLS = [
    types.Tool(
        name="chat_completion",
        title="Chat completion",
        description=(
            "Generate a reply from the served model. Pass session_id to continue a "
            "conversation: earlier turns are remembered. Send _meta.progressToken to "
            "receive the reply as it is generated (progress notifications carry the new text)."
        ),
        input_schema=schema(ChatArguments, "validation"),
        output_schema=schema(ChatResult, "serialization"),
    ),
    types.Tool(
        name="model_info",
        title="Model information",
        description="The served model, the server's settings and its current state.",
        input_schema=schema(NoArguments, "validation"),
        output_schema=schema(ModelInfo, "serialization"),
        annotations=types.ToolAnnotations(read_only_hint=True, idempotent_hint=True),
    ),
    types.Tool(
        name="end_session",
        title="End session",
        description="Forget one session's conversation history.",
        input_schema=schema(EndSessionArguments, "validation"),
        output_schema=schema(EndSessionResult, "serialization"),
        annotations=types.ToolAnnotations(destructive_hint=True, idempotent_hint=True),
    ),
]


def build_server(tools: Tools) -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        name = params.name
        if name not in ("chat_completion", "model_info", "end_session"):
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"Unknown tool: {name!r}; this server offers "
                "chat_completion, model_info and end_session",
            )
        started = time.monotonic()
        tools.metrics.request_started(name)
        outcome = "error"
        try:
            if name == "chat_completion":
                send = _progress_sender(ctx) if _progress_token(ctx) is not None else None
                result: Any = await tools.chat_completion(params.arguments, send)
            elif name == "model_info":
                result = tools.model_info(params.arguments)
            else:
                result = tools.end_session(params.arguments)
            outcome = "ok"
            return _ok(result)
        except ToolError as e:
            outcome = e.outcome
            return _error(str(e))
        except EngineUnavailable as e:
            return _error(engine_error_message(e))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            tools.metrics.request_finished(name, outcome, time.monotonic() - started)

    return Server(
        "vllm-mcp",
        version=__version__,
        instructions="Chat with the vLLM model this server runs: call chat_completion.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _progress_token(ctx: Any) -> Any:
    meta = getattr(ctx, "meta", None)
    if meta is None:
        return None
    if isinstance(meta, dict):
        return meta.get("progressToken") or meta.get("progress_token")
    return getattr(meta, "progress_token", None)


def _progress_sender(ctx: Any) -> Callable[[str, int, int], Any]:
    async def send(text: str, tokens: int, total: int) -> None:
        await ctx.session.report_progress(tokens, total, text)

    return send


def _ok(result: Any) -> types.CallToolResult:
    data = result.model_dump(mode="json")
    text = data["text"] if isinstance(result, ChatResult) else json.dumps(data)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=data)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


# --- stdio transport ----------------------------------------------------------------------------


class StdioTransport:
    """Newline-delimited JSON-RPC over the process's stdin/stdout.

    While it runs, fd 0 reads the null device and fd 1 points at stderr, so the
    engine's child processes and stray prints can never touch the protocol stream.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.pending: set[Any] = set()
        self.intake_open = True
        self.on_eof: Callable[[], None] = lambda: None
        self._drained = asyncio.Event()
        self._drained.set()
        sys.stdout.flush()
        self._in_fd = os.dup(0)
        self._out_fd = os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        self._reader = os.fdopen(self._in_fd, "rb", buffering=1 << 16)
        self._to_server, self.read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](64)
        self.write_stream, self._from_server = anyio.create_memory_object_stream[SessionMessage](64)

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[StdioTransport]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_loop)
            tg.start_soon(self._write_loop)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def close_input(self) -> None:
        """End the session: the SDK's loop returns once its read stream closes."""
        self._to_server.close()

    async def wait_drained(self) -> None:
        await self._drained.wait()

    # --- reading -------------------------------------------------------------------

    def _read_line(self) -> bytes | None:
        """One line, or ``None`` at end of input; an oversized line is skipped, not stored."""
        line = self._reader.readline(self.max_message_bytes + 1)
        if not line:
            return None
        if len(line) > self.max_message_bytes and not line.endswith(b"\n"):
            size = len(line)
            while True:  # discard the rest of it in bounded pieces
                rest = self._reader.readline(1 << 16)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            return b"\x00" + str(size).encode()
        return line

    async def _read_loop(self) -> None:
        while True:
            line = await anyio.to_thread.run_sync(self._read_line, abandon_on_cancel=True)
            if line is None:
                log.info("end of input")
                self.on_eof()
                return
            if line.startswith(b"\x00"):
                await self._reply_error(
                    None,
                    INVALID_REQUEST,
                    f"message of {int(line[1:])} bytes exceeds VLLM_MCP_MAX_MESSAGE_BYTES "
                    f"({self.max_message_bytes}); it was discarded",
                )
                continue
            if not line.strip():
                continue
            await self._handle_line(line)

    async def _handle_line(self, line: bytes) -> None:
        try:
            await self._handle_message(line)
        except Exception as e:  # one bad line must never end the session
            log.error("could not handle a message", extra={"error": f"{type(e).__name__}: {e}"})
            await self._reply_error(None, INTERNAL_ERROR, "internal error while reading a message")

    async def _handle_message(self, line: bytes) -> None:
        try:
            text = line.decode("utf-8")
            obj = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            await self._reply_error(None, PARSE_ERROR, f"Parse error: {_describe(e)}")
            return
        except RecursionError:
            await self._reply_error(None, PARSE_ERROR, "Parse error: JSON nested too deeply")
            return
        if not isinstance(obj, dict):
            kind = "batch" if isinstance(obj, list) else type(obj).__name__
            await self._reply_error(
                None, INVALID_REQUEST, f"Invalid request: expected a JSON object, got a {kind}"
            )
            return
        rid = obj.get("id")
        if "id" in obj and not _valid_id(rid) and "method" in obj:
            # Unanswerable by its own id (null, fractional, bool, object): the spec says
            # answer with a null id rather than drop it or treat it as a notification.
            await self._reply_error(
                None, INVALID_REQUEST, "Invalid request: 'id' must be a string or an integer"
            )
            return
        rid = rid if _valid_id(rid) else None
        if "method" in obj and ("result" in obj or "error" in obj):
            # Would otherwise pass as a response to nothing and go unanswered.
            await self._reply_error(
                rid, INVALID_REQUEST, "Invalid request: a request cannot carry 'result' or 'error'"
            )
            return
        try:
            if _LONE_SURROGATE.search(line) and _has_lone_surrogate(obj):
                await self._reply_error(rid, PARSE_ERROR, "Parse error: lone UTF-16 surrogate in string")
                return
            message = types.jsonrpc_message_adapter.validate_python(obj, by_name=False)
        except ValidationError as e:
            await self._reply_error(rid, INVALID_REQUEST, f"Invalid request: {_first_error(e)}")
            return
        except RecursionError:
            await self._reply_error(rid, INVALID_REQUEST, "Invalid request: JSON nested too deeply")
            return
        if isinstance(message, types.JSONRPCRequest):
            if not self.intake_open:
                await self._reply_error(
                    message.id, SERVER_SHUTTING_DOWN, "server is shutting down; request refused"
                )
                return
            self.pending.add(message.id)
            self._drained.clear()
        elif isinstance(message, types.JSONRPCNotification) and (message.method == "notifications/cancelled"):
            self._settle((message.params or {}).get("requestId"))
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._to_server.send(SessionMessage(message))

    async def _reply_error(self, rid: Any, code: int, message: str) -> None:
        error = types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code, message=message))
        await self.write_stream.send(SessionMessage(error))

    # --- writing -------------------------------------------------------------------

    async def _write_loop(self) -> None:
        async with self._from_server:
            async for first in self._from_server:
                batch = [first]
                with contextlib.suppress(anyio.WouldBlock):
                    while len(batch) < 256:
                        batch.append(self._from_server.receive_nowait())
                data = b"".join(self._encode(m) for m in batch)
                await anyio.to_thread.run_sync(_write_all, self._out_fd, data, abandon_on_cancel=True)
                for m in batch:
                    msg = m.message
                    if isinstance(msg, (types.JSONRPCResponse, types.JSONRPCError)):
                        self._settle(msg.id)

    def _encode(self, m: SessionMessage) -> bytes:
        try:
            text = m.message.model_dump_json(by_alias=True, exclude_unset=True)
            return text.encode("utf-8") + b"\n"
        except Exception as e:  # never let one bad message kill the writer
            log.error("could not encode a message", extra={"error": repr(e)})
            rid = getattr(m.message, "id", None)
            if rid is None:
                return b""
            return (
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": rid,
                        "error": {"code": -32603, "message": "internal error: unencodable result"},
                    }
                )
                + "\n"
            ).encode()

    def _settle(self, rid: Any) -> None:
        self.pending.discard(rid)
        if isinstance(rid, str) and rid.isdigit():
            self.pending.discard(int(rid))
        if not self.pending:
            self._drained.set()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _describe(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {e.start}"
    assert isinstance(e, json.JSONDecodeError)
    return f"{e.msg} at line {e.lineno} column {e.colno}"


def _first_error(e: ValidationError) -> str:
    errors = e.errors(include_url=False)
    messages = {err["msg"] for err in errors}
    if any("jsonrpc" in str(err["loc"]) for err in errors):
        return "'jsonrpc' must be \"2.0\""
    return f"not a JSON-RPC 2.0 request, notification or response ({sorted(messages)[0]})"


def _valid_id(rid: Any) -> bool:
    return isinstance(rid, (str, int)) and not isinstance(rid, bool)


def _has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# --- the server process ---------------------------------------------------------------------


@dataclass
class _Shutdown:
    reason: str = ""
    exit_code: int = EXIT_OK
    started: bool = False


async def _serve(settings: Settings, pump: vlogging.LogPump) -> int:
    transport = StdioTransport(settings.max_message_bytes)
    engine = Engine(settings, recent_log_lines=pump.tail)
    metrics = Metrics(engine.model_name, settings.metrics_textfile, settings.metrics_interval)
    sessions = open_store(
        settings.session_store,
        settings.max_sessions,
        settings.max_session_messages,
        on_evict=metrics.session_evicted,
    )
    metrics.set_sessions(len(sessions))
    tools = Tools(settings, engine, sessions, metrics)
    server = build_server(tools)
    shutdown = _Shutdown()
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def drain(grace: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transport.wait_drained(), grace)
        if transport.pending:
            log.warning(
                "shutdown grace over; failing unfinished calls",
                extra={"unfinished": len(transport.pending)},
            )
            tools.abort_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transport.wait_drained(), 5)
        transport.close_input()

    def begin_shutdown(reason: str, exit_code: int = EXIT_OK, grace: float | None = None) -> None:
        if shutdown.started:
            if reason.startswith("signal"):  # a second signal: stop waiting
                tools.abort_all()
            return
        shutdown.started, shutdown.reason, shutdown.exit_code = True, reason, exit_code
        log.info("shutting down", extra={"reason": reason, "in_flight": len(transport.pending)})
        transport.intake_open = False
        tools.stop_intake()
        spawn(drain(settings.shutdown_grace if grace is None else grace))

    async def watch_engine() -> None:
        while True:
            await asyncio.sleep(0.5)
            metrics.set_engine_state(engine.state.value)
            metrics.set_log_lines_dropped(pump.dropped_lines)
            if engine.state is EngineState.READY and engine.errored:
                log.error("the vLLM engine died; exiting so the supervisor restarts the server")
                engine.state, engine.failure = EngineState.FAILED, "the vLLM engine process died"
                begin_shutdown("engine died", EXIT_ENGINE_DIED, grace=2.0)
                return

    transport.on_eof = lambda: begin_shutdown("end of input")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, begin_shutdown, f"signal {signal.Signals(sig).name}")

    log.info("starting", extra={"version": __version__, "settings": settings.public_dict()})
    metrics.set_engine_state(EngineState.LOADING.value)
    engine_task = loop.create_task(engine.start())
    spawn(watch_engine())
    spawn(metrics.run())
    try:
        async with transport.run():
            await server.run(
                transport.read_stream, transport.write_stream, server.create_initialization_options()
            )
    finally:
        for task in list(background):
            task.cancel()
        if not engine_task.done():
            engine_task.cancel()
        await engine.aclose()
        metrics.set_engine_state(engine.state.value)
        metrics.write()
        sessions.close()
    log.info("stopped", extra={"reason": shutdown.reason or "input closed"})
    return shutdown.exit_code


def run(settings: Settings) -> int:
    """Serve MCP on stdin/stdout until end of input or a signal; the exit status."""
    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    try:
        code = asyncio.run(_serve(settings, pump))
    except Exception as e:  # last line of defence: one clear log line, no traceback on stdout
        log.critical("server failed", extra={"error": f"{type(e).__name__}: {e}"})
        code = 70
    finally:
        logging.shutdown()
        pump.close()
    return code


def exit_now(code: int) -> None:
    """Exit without waiting for threads stuck on a peer that stopped reading our output."""
    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            os._exit(code)
    sys.exit(code)


# --- client side: `vllm-mcp chat` ----------------------------------------------------------


class ChatFailed(RuntimeError):
    """The server answered with an error; the message is for the user."""


async def chat_once(
    question: str,
    server_command: list[str],
    env: dict[str, str],
    on_text: Callable[[str], None],
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    seed: int | None = None,
    timeout: float = 900.0,
) -> dict[str, Any]:
    """Start ``vllm-mcp serve`` as a child, ask one question, stream the reply to ``on_text``."""
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=server_command[0], args=server_command[1:], env=env)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    arguments: dict[str, Any] = {"messages": messages}
    for key, value in (("max_tokens", max_tokens), ("temperature", temperature), ("seed", seed)):
        if value is not None:
            arguments[key] = value
    streamed: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        if message:
            streamed.append(message)
            on_text(message)

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(
            "chat_completion",
            arguments,
            read_timeout_seconds=timeout,
            progress_callback=progress,
        )
    text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise ChatFailed(text)
    data = dict(result.structured_content or {})
    full = data.get("text", text)
    seen = "".join(streamed)
    if full.startswith(seen) and len(full) > len(seen):
        on_text(full[len(seen) :])  # whatever the last notification did not carry
    return data


__all__ = ["EngineDead", "StdioTransport", "build_server", "chat_once", "run"]
