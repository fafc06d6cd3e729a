"""MCP over stdin/stdout: one JSON-RPC message per line, for gateways that spawn us.

The SDK's own stdio transport drops lines it cannot parse without a reply and reads
lines of any size; this one answers -32700/-32600, bounds the line length, and tracks
which requests are unanswered so a shutdown can drain them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from vllm_mcp.errors import RequestError
from vllm_mcp.protocol.invalid_params import explain_invalid_params, needs_explaining
from vllm_mcp.protocol.transport import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    SERVER_SHUTTING_DOWN,
    ServerHooks,
    Transport,
)

log = logging.getLogger(__name__)

_LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

# Clients (by initialize's clientInfo.name) that read our stdout one line per select():
# FluidMCP main waits in select() on the pipe, then calls readline() on a buffered text file.
# When a call's last progress notification and its result arrive in one read, the result
# waits in that buffer while select() sees an empty pipe: the call's SSE stream ends after
# 30 s without it, and the next request is handed it instead (seen in CI under load).
# For them, a reply never goes out within LINE_GAP_S of a notification written before it.
LINE_AT_A_TIME_CLIENTS = frozenset({"fluidmcp-client"})
LINE_GAP_S = 0.05


class StdioTransport(Transport):
    """Newline-delimited JSON-RPC over the process's stdin/stdout.

    While it runs, fd 0 reads the null device and fd 1 points at stderr, so the
    engine's child processes and stray prints can never touch the protocol stream.
    Given ``in_fd``/``out_fd`` (tests: pipes), it uses those and leaves fds 0 and 1 alone;
    it then owns ``in_fd``. The fds change hands in ``startup``, never in the constructor.
    """

    def __init__(
        self,
        max_message_bytes: int,
        hooks: ServerHooks | None = None,
        *,
        in_fd: int | None = None,
        out_fd: int | None = None,
    ) -> None:
        super().__init__(hooks)
        self.max_message_bytes = max_message_bytes
        self._requests: dict[Any, tuple[str, Any]] = {}  # id -> (method, params), to explain errors
        self.initialized = False
        self.line_at_a_time = False  # set by the client's initialize (LINE_AT_A_TIME_CLIENTS)
        self._last_notification_at = -1.0
        self._pipes = (in_fd, out_fd) if in_fd is not None and out_fd is not None else None
        self._in_fd = self._out_fd = -1  # set by startup
        self._reader: Any = None
        self._to_server, self.read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](64)
        self.write_stream, self._from_server = anyio.create_memory_object_stream[SessionMessage](64)

    async def startup(self) -> None:
        """Take over fds 0 and 1 (unless given pipes): the protocol stream is ours alone from now."""
        if self._reader is not None:
            return
        if self._pipes is not None:
            self._in_fd, self._out_fd = self._pipes
        else:
            sys.stdout.flush()
            self._in_fd, self._out_fd = os.dup(0), os.dup(1)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.dup2(2, 1)
        self._reader = os.fdopen(self._in_fd, "rb", buffering=1 << 16)

    async def serve(self, server: Any) -> None:
        await self.startup()
        async with self.run():
            await server.run(self.read_stream, self.write_stream, server.create_initialization_options())

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[StdioTransport]:
        """Read and write loops around a block that runs the SDK's session on our streams."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._read_loop)
            tg.start_soon(self._write_loop)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    def close(self) -> None:
        """End the session: the SDK's loop returns once its read stream closes."""
        self._to_server.close()

    # --- reading -------------------------------------------------------------------

    def _read_line(self) -> bytes | int | None:
        """One line, ``None`` at end of input, or the size of an oversized line (skipped, not stored).

        The size is an int, not a marker inside the bytes: any byte can start a line.
        """
        line = self._reader.readline(self.max_message_bytes + 1)
        if not line:
            return None
        if len(line) > self.max_message_bytes and not line.endswith(b"\n"):
            size = len(line)
            while True:  # discard the rest of it in bounded pieces
                rest = self._reader.readline(1 << 16)
                size += len(rest.removesuffix(b"\n"))  # the message's size, as the limit counts it
                if not rest or rest.endswith(b"\n"):
                    break
            return size
        return line

    async def _read_loop(self) -> None:
        while True:
            line = await anyio.to_thread.run_sync(self._read_line, abandon_on_cancel=True)
            if line is None:
                log.info("end of input")
                self.hooks.on_eof()
                return
            if isinstance(line, int):
                await self._reply_error(
                    None,
                    INVALID_REQUEST,
                    f"message of {line} bytes exceeds VLLM_MCP_MAX_MESSAGE_BYTES "
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
            obj = json.loads(text, parse_constant=_not_json)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            await self._reply_error(None, PARSE_ERROR, f"Parse error: {_describe(e)}")
            return
        except RecursionError:
            await self._reply_error(None, PARSE_ERROR, "Parse error: JSON nested too deeply")
            return
        except ValueError as e:  # NaN/Infinity, or an integer past Python's digit limit
            await self._reply_error(None, PARSE_ERROR, f"Parse error: {_describe_value(e)}")
            return
        if not isinstance(obj, dict):
            kind = "batch" if isinstance(obj, list) else _json_kind(obj)
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
        if "method" in obj and obj.get("params") is not None and not isinstance(obj["params"], dict):
            # MCP's params are always an object; pydantic would only say "Field required".
            await self._reply_error(
                rid,
                INVALID_REQUEST,
                f"Invalid request: 'params' must be an object, got a {_json_kind(obj['params'])}",
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
            if message.method == "initialize":
                self._note_client(message.params)
            self._call_started(message.id)
            self._requests[message.id] = (message.method, message.params)
        elif isinstance(message, types.JSONRPCNotification) and (message.method == "notifications/cancelled"):
            self._settle((message.params or {}).get("requestId"))
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._to_server.send(SessionMessage(message))

    async def _reply_error(self, rid: Any, code: int, message: str) -> None:
        error = types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code, message=message))
        await self.write_stream.send(SessionMessage(error))

    # --- writing -------------------------------------------------------------------

    def _note_client(self, params: Any) -> None:
        info = params.get("clientInfo") if isinstance(params, dict) else None
        name = info.get("name") if isinstance(info, dict) else None
        if name in LINE_AT_A_TIME_CLIENTS:
            self.line_at_a_time = True
            log.info(
                "this client reads one line at a time: replies go out one line per write, "
                f"at least {LINE_GAP_S * 1000:g} ms after a notification",
                extra={"client": name},
            )

    async def _write_loop(self) -> None:
        async with self._from_server:
            async for first in self._from_server:
                batch = [first]
                with contextlib.suppress(anyio.WouldBlock):
                    while len(batch) < 256 and not self.line_at_a_time:
                        batch.append(self._from_server.receive_nowait())
                if self.line_at_a_time:
                    await self._space_after_notification(first)
                await self._write(b"".join(self._encode(self._explained(m)) for m in batch))
                for m in batch:
                    msg = m.message
                    if isinstance(msg, (types.JSONRPCResponse, types.JSONRPCError)):
                        self._settle(msg.id)

    async def _write(self, data: bytes) -> None:
        if rest := _write_now(self._out_fd, data):
            await anyio.to_thread.run_sync(_write_all, self._out_fd, rest, abandon_on_cancel=True)

    async def _space_after_notification(self, m: SessionMessage) -> None:
        """For a line-at-a-time client: a reply waits until LINE_GAP_S after the last notification."""
        now = time.monotonic()
        if isinstance(m.message, types.JSONRPCNotification):
            self._last_notification_at = now
        elif (wait := self._last_notification_at + LINE_GAP_S - now) > 0:
            await anyio.sleep(wait)

    def _explained(self, m: SessionMessage) -> SessionMessage:
        """The SDK's nameless -32602 replaced by one that says what is missing."""
        msg = m.message
        if isinstance(msg, types.JSONRPCResponse) and self._requests.get(msg.id, ("",))[0] == "initialize":
            self.initialized = True
        if not (isinstance(msg, types.JSONRPCError) and needs_explaining(msg.error)):
            return m
        method, params = self._requests.get(msg.id, (None, None))
        try:
            error = explain_invalid_params(method, params, self.initialized)
        except Exception:  # the generic error is better than none
            return m
        return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=msg.id, error=error))

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
        self._requests.pop(rid, None)
        if isinstance(rid, str) and rid.isdigit():
            self._call_finished(int(rid))
        self._call_finished(rid)


def _write_now(fd: int, data: bytes) -> bytes:
    """Write what can go out without blocking; return the rest (empty when all went out).

    Most writes are one progress notification or a short result. Handing each to a worker
    thread cost more than the write (thread wake-ups were ~12 % of the front end's CPU over
    pipes at c=16/64 on the tiny model, docs/performance.md). A pipe that polls writable
    takes ``PIPE_BUF`` bytes without blocking (POSIX), so the data goes straight out in such
    pieces while the pipe has room (a batch of many messages is longer than one piece); the fd
    stays blocking (it may be shared with a parent, as a terminal is). What is left when the
    pipe is full goes through the thread as before, so a slow reader never blocks the loop.
    """
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view and any(ev & select.POLLOUT for _, ev in poller.poll(0)):
        view = view[os.write(fd, view[: select.PIPE_BUF]) :]
    return bytes(view)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _json_kind(value: Any) -> str:
    """A parsed JSON value's kind, in JSON's words."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    kinds: dict[type, str] = {str: "string", list: "list", dict: "object"}
    return kinds.get(type(value), "null")


def _describe(e: Exception) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"invalid UTF-8 at byte {e.start}"
    assert isinstance(e, json.JSONDecodeError)
    return f"{e.msg} at line {e.lineno} column {e.colno}"


class _NotJson(RequestError, ValueError):
    """NaN or Infinity in a message: Python's json reads them, JSON has none."""


def _not_json(constant: str) -> Any:
    """Python's json accepts NaN and Infinity; JSON does not."""
    raise _NotJson(f"{constant} is not a JSON value")


def _describe_value(e: ValueError) -> str:
    return str(e) if isinstance(e, _NotJson) else "a number has too many digits"


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
