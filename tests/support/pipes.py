"""The client's end of a ``StdioTransport`` running in the test's own process, over real pipes.

Unit tests of the transport and the app drive the real transport code through two
``os.pipe()`` pairs instead of a child process: the bytes, the framing and the pipe
buffer's back-pressure are real; only the engine behind them is a double.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

Message = dict[str, Any]


class StdioPeer:
    """Writes lines to the server's stdin pipe and reads its stdout pipe, line by line."""

    def __init__(self) -> None:
        self.server_in, self._to_server = os.pipe()  # the transport owns server_in
        self._from_server, self.server_out = os.pipe()
        self._reader: asyncio.StreamReader | None = None
        self._read_transport: asyncio.BaseTransport | None = None
        self.received: list[Message] = []  # every message, in arrival order
        self._ids = iter(range(1, 1 << 30))

    # --- writing --------------------------------------------------------------------------

    async def send_raw(self, data: bytes) -> None:
        """Write bytes as they are; in a thread, since a full pipe blocks the writer."""

        def write_all() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(self._to_server, view) :]

        await asyncio.to_thread(write_all)

    async def send(self, message: Message) -> None:
        await self.send_raw(json.dumps(message).encode() + b"\n")

    async def request(self, method: str, params: Any = None, rid: Any = None) -> Any:
        """Send a request; returns its id (a fresh integer unless given)."""
        rid = next(self._ids) if rid is None else rid
        message: Message = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return rid

    async def notify(self, method: str, params: Any = None) -> None:
        message: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def call_tool(self, name: str, arguments: Any, progress_token: Any = None) -> Any:
        params: Message = {"name": name, "arguments": arguments}
        if progress_token is not None:
            params["_meta"] = {"progressToken": progress_token}
        return await self.request("tools/call", params)

    def close_input(self) -> None:
        """End of input, as when a gateway closes our stdin."""
        with contextlib.suppress(OSError):
            os.close(self._to_server)

    # --- reading --------------------------------------------------------------------------

    async def start_reading(self) -> None:
        """Until this is called nothing is read: the server's writes fill the pipe and block."""
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=1 << 24, loop=loop)
        protocol = asyncio.StreamReaderProtocol(self._reader, loop=loop)
        pipe = os.fdopen(self._from_server, "rb", buffering=0)
        self._read_transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)

    def pause_reading(self) -> None:
        """Stop reading: what the server writes fills the pipe, then its writes block."""
        assert isinstance(self._read_transport, asyncio.ReadTransport)
        self._read_transport.pause_reading()

    def resume_reading(self) -> None:
        assert isinstance(self._read_transport, asyncio.ReadTransport)
        self._read_transport.resume_reading()

    async def recv(self, timeout: float = 5.0) -> Message:
        """The next line the server wrote, parsed (each line must be one JSON object)."""
        if self._reader is None:
            await self.start_reading()
        assert self._reader is not None
        line = await asyncio.wait_for(self._reader.readline(), timeout)
        assert line.endswith(b"\n"), f"no complete line (end of output?): {line[:200]!r}"
        message = json.loads(line)
        assert isinstance(message, dict), line
        self.received.append(message)
        return message

    async def reply(self, rid: Any, timeout: float = 5.0) -> Message:
        """The response to ``rid``, read earlier or now; what came before stays in ``received``."""
        for message in self.received:
            if "method" not in message and message.get("id") == rid:
                return message
        while True:
            message = await self.recv(timeout)
            if "method" not in message and message.get("id") == rid:
                return message

    async def initialize(self) -> Message:
        rid = await self.request(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "pipes", "version": "0"},
            },
        )
        reply = await self.reply(rid)
        await self.notify("notifications/initialized")
        return reply

    def close(self) -> None:
        """Close the client's ends and the server's stdout (the transport does not own it)."""
        self.close_input()
        if self._read_transport is not None:
            self._read_transport.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._from_server)
        with contextlib.suppress(OSError):
            os.close(self.server_out)
