"""A real ``vllm-mcp serve`` over stdio for the tests: the official SDK client on a background
loop (``McpClient``), or the server driven line by line (``RawServer``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tests.support import ROOT

# The vLLM engines and servers the e2e tests started, by module (tests/e2e/conftest.py counts them).
ENGINE_COUNTS = ROOT / ".cache" / "e2e-engines.json"


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds: a test's helper server."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def serve_command() -> list[str]:
    return [sys.executable, "-m", "vllm_mcp", "serve"]


# --- talking to a real `vllm-mcp serve` ------------------------------------------------------


class McpClient:
    """The official MCP client on a background event loop, with a blocking facade.

    One server (and one engine start) then serves a whole test module.
    """

    def __init__(
        self, env: dict[str, str], protocol_version: str | None = None, prefix: Sequence[str] = ()
    ) -> None:
        self.env = env
        self.protocol_version = protocol_version
        self.prefix = list(prefix)  # a command that runs the server, such as taskset -c 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._stop: asyncio.Event | None = None
        self._main = asyncio.run_coroutine_threadsafe(self._hold(), self.loop)
        self.init_result = self._ready.result(timeout=300)

    async def _hold(self) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        self._stop = asyncio.Event()
        cmd = [*self.prefix, *serve_command()]
        params = StdioServerParameters(command=cmd[0], args=cmd[1:], env=self.env)
        try:
            async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
                self.session = session
                result = await session.initialize()
                self._ready.set_result(result)
                await self._stop.wait()
        except BaseException as e:
            if not self._ready.done():
                self._ready.set_exception(e)
            raise

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        progress: Callable[[float, float | None, str | None], Any] | None = None,
        timeout: float = 300,
    ) -> Any:
        return self.call_async(name, arguments, progress, timeout).result(timeout + 10)

    def call_async(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        progress: Callable[[float, float | None, str | None], Any] | None = None,
        timeout: float = 300,
    ) -> concurrent.futures.Future[Any]:
        async def cb(p: float, total: float | None, message: str | None) -> None:
            assert progress is not None
            progress(p, total, message)

        return self.submit(
            self.session.call_tool(
                name,
                arguments or {},
                read_timeout_seconds=timeout,
                progress_callback=cb if progress else None,
            )
        )

    def chat(self, content: str, **arguments: Any) -> dict[str, Any]:
        """A successful chat_completion's structured result (fails the test otherwise)."""
        result = self.call(
            "chat_completion", {"messages": [{"role": "user", "content": content}], **arguments}
        )
        assert not result.is_error, result.content[0].text
        return dict(result.structured_content)

    def info(self) -> dict[str, Any]:
        result = self.call("model_info")
        assert not result.is_error, result.content[0].text
        return dict(result.structured_content)

    def wait_ready(self, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.info()
            if info["server_state"] != "loading":
                assert info["server_state"] == "ready", info
                return info
            time.sleep(0.5)
        raise TimeoutError("model did not load")

    def running(self) -> bool:
        """The client still holds its session (the server has not exited under it)."""
        return not self._main.done()

    def close(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._main.result(timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


class RawServer:
    """`vllm-mcp serve` driven line by line, as FluidMCP drives it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            serve_command(),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._buffers()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _buffers(self) -> None:
        """What the readers fill (a subclass that starts its own process calls this too)."""
        self.lines: list[bytes] = []
        self._parsed: dict[int, Any] = {}  # line number -> its message, each line parsed once
        self._polls = 0
        self._cond = threading.Condition()
        self.stderr = bytearray()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):  # type: ignore[union-attr]
            self.stderr += chunk

    def send(self, message: dict[str, Any] | bytes | str) -> None:
        assert self.proc.stdin is not None
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode()
        self.proc.stdin.write(message if message.endswith(b"\n") else message + b"\n")
        self.proc.stdin.flush()

    def messages(self) -> list[dict[str, Any]]:
        with self._cond:
            return [self._message(i) for i in range(len(self.lines))]

    def _message(self, i: int) -> Any:
        """Line ``i`` parsed (once: a long test waits on thousands of lines); not JSON raises."""
        if i not in self._parsed:
            self._parsed[i] = json.loads(self.lines[i])
        return self._parsed[i]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(len(self.lines)):
                    msg = self._message(i)
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching message; stderr tail: {bytes(self.stderr[-2000:])!r}")
                self._cond.wait(left)

    def response(self, rid: Any, timeout: float = 120) -> dict[str, Any]:
        return self.wait_for(lambda m: m.get("id") == rid and "method" not in m, timeout)

    def request(
        self, rid: Any, method: str, params: dict[str, Any] | None = None, timeout: float = 120
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.response(rid, timeout)

    def wait_ready(self, timeout: float = 600) -> dict[str, Any]:
        """Ask model_info (ids ``ready-N``) until the model has loaded; its last answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._polls += 1
            params = {"name": "model_info", "arguments": {}}
            info = self.request(f"ready-{self._polls}", "tools/call", params)["result"]["structuredContent"]
            if info["server_state"] != "loading":
                assert info["server_state"] == "ready", info
                return dict(info)
            time.sleep(0.5)
        raise TimeoutError("model did not load")

    def running(self) -> bool:
        return self.proc.poll() is None

    def initialize(self, version: str = "2024-11-05") -> dict[str, Any]:
        reply = self.request(
            0,
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    def close(self, timeout: float = 180) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # it has exited: its code tells why
                self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
