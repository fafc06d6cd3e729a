"""The MCP-over-HTTP contenders: what a deployed vllm-mcp looks like to its HTTP clients.

- ``vllm-mcp-http``: ``vllm-mcp serve --transport http`` (bearer token on, as deployed),
  driven like ``vllm-serve``: aiohttp POSTs ``tools/call`` with a progressToken to ``/mcp``
  and reads the SSE stream; TTFT = first ``notifications/progress`` event.
- ``vllm-mcp-http-2026``: the same server and calls over the stateless 2026-07-28 protocol
  (no handshake, no session; the version in every request's ``_meta`` and headers).
- ``fluidmcp``: the FluidMCP 0.1.0 gateway (the shipped vllm-mcp-gateway.service) in front
  of ``vllm-mcp serve`` over stdio, driven over HTTP with aiohttp; its ``/vllm/mcp`` reads one
  line per request, so no progress (variant ``no-stream``; TTFT not visible to the client).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.contenders import REQUEST_TIMEOUT, Contender, free_port
from bench.load import round_trips
from bench.procs import tree
from bench.stats import RequestRecord
from bench.workload import Workload, messages

# --- vllm-mcp over MCP Streamable HTTP ---------------------------------------------------------------

PROTOCOL_VERSION = "2025-11-25"


async def sse_messages(resp: Any) -> Any:
    """The JSON-RPC messages of a response: one JSON body, or every SSE event's data."""
    if not resp.headers.get("Content-Type", "").startswith("text/event-stream"):
        yield await resp.json()
        return
    data: list[bytes] = []
    async for raw in resp.content:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif not line and data:  # end of an event
            payload = b"\n".join(data)
            data = []
            if payload.strip():
                yield json.loads(payload)
    if data and b"".join(data).strip():
        yield json.loads(b"\n".join(data))


class McpHttpContender(Contender):
    """``vllm-mcp serve --transport http`` with a token file, one MCP session for all calls.

    A lean client, as ``vllm bench serve`` is for the OpenAI server: the initialize
    handshake once, then each call is one POST whose SSE stream carries the call's
    progress notifications and its result.
    """

    name = "vllm-mcp-http"
    variants = ("stream", "no-stream")

    async def start(self) -> None:

        port = free_port()
        token = secrets.token_urlsafe(32)
        token_file = self.log_dir / f"{self.name}.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        env = {
            **self.env,
            "VLLM_MCP_HTTP_HOST": "127.0.0.1",
            "VLLM_MCP_HTTP_PORT": str(port),
            "VLLM_MCP_HTTP_TOKEN_FILE": str(token_file),
        }
        self.command = [sys.executable, "-m", "vllm_mcp", "serve", "--transport", "http"]
        self._log = open(self.log_dir / f"{self.name}.stderr.log", "w")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, env=env, stdout=self._log, stderr=self._log
        )
        self.pid = self.proc.pid
        self._open_client(f"http://127.0.0.1:{port}", token)
        await self._wait_healthy(self.base + "/healthz", [self.proc])
        await self._initialize()

    def _open_client(self, base: str, token: str) -> None:
        """The aiohttp session and headers every request to ``base`` uses."""
        import aiohttp

        self.base = base
        self.ids = itertools.count(1)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        }
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        )

    async def _wait_healthy(self, url: str, procs: list[Any]) -> None:
        """Until ``url`` answers 200; a server process that exits meanwhile is an error."""
        import aiohttp

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            for proc in procs:
                if proc.returncode is not None:
                    raise RuntimeError(
                        f"{self.name}: a server exited ({proc.returncode}); see {self._log.name}"
                    )
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(url) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.name}: {url} never said ready")

    async def _initialize(self) -> None:
        body = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "vllm-mcp-bench", "version": "1"},
            },
        }
        async with self.http.post(self.base + "/mcp", json=body, headers=self.headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"initialize: HTTP {resp.status}: {(await resp.text())[:300]}")
            replies = [m async for m in sse_messages(resp)]
            if session := resp.headers.get("Mcp-Session-Id"):
                self.headers["Mcp-Session-Id"] = session
        version = next((m["result"]["protocolVersion"] for m in replies if "result" in m), PROTOCOL_VERSION)
        self.headers["MCP-Protocol-Version"] = version
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with self.http.post(self.base + "/mcp", json=note, headers=self.headers) as resp:
            await resp.read()

    def _stamp(self, body: dict[str, Any]) -> dict[str, str]:
        """The headers of one request (2025: the session's); ``McpHttp2026Contender`` adds more."""
        return self.headers

    async def _rpc(self, method: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            body["params"] = params
        async with self.http.post(self.base + "/mcp", json=body, headers=self._stamp(body)) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            return [m async for m in sse_messages(resp)]

    async def stop(self) -> None:
        await self.http.close()
        if self.proc.returncode is None:
            self.proc.terminate()  # SIGTERM: drains, stops the engine, exits
            try:
                await asyncio.wait_for(self.proc.wait(), 90)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        rid = next(self.ids)
        body = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {
                "name": "chat_completion",
                "arguments": {
                    "messages": messages(i),
                    "max_tokens": workload.max_tokens,
                    "min_tokens": workload.max_tokens,
                    "temperature": workload.temperature,
                },
            },
        }
        if variant == "stream":
            body["params"]["_meta"] = {"progressToken": f"p{rid}"}
        rec = RequestRecord(start=time.perf_counter())
        result: dict[str, Any] | None = None
        headers = self._stamp(body)
        async with self.http.post(self.base + "/mcp", json=body, headers=headers) as resp:
            if resp.status != 200:
                rec.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                rec.end = time.perf_counter()
                return rec
            async for message in sse_messages(resp):
                if message.get("method") == "notifications/progress":
                    rec.chunks.append(time.perf_counter())
                elif message.get("id") == rid:
                    result = message
                    break
        rec.end = time.perf_counter()
        if result is None or "result" not in result or result["result"].get("isError"):
            rec.error = json.dumps(result)[:300]
            return rec
        data = result["result"]["structuredContent"]
        rec.take_reply(data)
        return rec

    async def overhead(self, n: int) -> dict[str, Any]:
        return {
            "ping": await round_trips(lambda: self._rpc("ping"), n),
            "tools_list": await round_trips(lambda: self._rpc("tools/list"), n),
        }

    async def batching_check(self, rounds: int = 5) -> dict[str, Any]:
        """Wall time of 8 concurrent calls over that of one (median of ``rounds``), progress on.

        vLLM batches concurrent requests, so 8 calls should take little longer than one.
        """
        import statistics

        w = self.workload

        async def timed(k: int) -> float:
            t0 = time.perf_counter()
            records = await asyncio.gather(*(self.send(i, w, "stream") for i in range(k)))
            if any(r.error for r in records):
                raise RuntimeError(next(r.error for r in records if r.error))
            return time.perf_counter() - t0

        one = statistics.median([await timed(1) for _ in range(rounds)])
        eight = statistics.median([await timed(8) for _ in range(rounds)])
        return {"one_s": one, "eight_s": eight, "ratio": eight / one, "max_tokens": w.max_tokens}


class McpHttp2026Contender(McpHttpContender):
    """The same server and calls over the stateless 2026-07-28 protocol (issue 31).

    What the SDK's high-level ``Client`` speaks by default: no initialize and no
    ``Mcp-Session-Id``; every request carries the protocol version and client capabilities in
    its ``_meta`` and the ``Mcp-Protocol-Version``/``Mcp-Method``/``Mcp-Name`` headers, and the
    server routes it through the SDK's per-request (modern) path. One ``server/discover`` at
    start, as the client's probe.
    """

    name = "vllm-mcp-http-2026"

    async def _initialize(self) -> None:
        self.headers.pop("Mcp-Session-Id", None)
        replies = await self._rpc("server/discover", {})
        if not any("result" in m for m in replies):
            raise RuntimeError(f"server/discover: {json.dumps(replies)[:300]}")

    async def overhead(self, n: int) -> dict[str, Any]:
        # 2026-07-28 has no ping: its round trip is tools/list.
        return {"tools_list": await round_trips(lambda: self._rpc("tools/list"), n)}

    def _stamp(self, body: dict[str, Any]) -> dict[str, str]:
        params = body.setdefault("params", {})
        meta = params.setdefault("_meta", {})
        meta[META_VERSION] = MODERN_VERSION
        meta.setdefault(META_CAPABILITIES, {})
        headers = {**self.headers, "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": body["method"]}
        if body["method"] == "tools/call":
            headers["Mcp-Name"] = params["name"]
        return headers


MODERN_VERSION = "2026-07-28"
META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


# --- the FluidMCP gateway -------------------------------------------------------------------------


class FluidMcpContender(Contender):
    """FluidMCP 0.1.0 serving ``vllm-mcp serve``, set up as systemd/vllm-mcp-gateway.service does.

    The unit's shape: ``fluidmcp run config.json --file``, the bearer token from the
    environment (``FMCP_SECURE_MODE``/``FMCP_BEARER_TOKEN``), the package's metadata.json
    under ``MCP_INSTALLATION_DIR``. Two differences, both harmless to the figures: the port
    is a free one (``MCP_CLIENT_SERVER_ALL_PORT``; FluidMCP first kills whatever listens on
    its port, 8099 by default) and ``MCP_FETCH_URL`` points at a closed local port, so its
    start-up attempt to download the package from its registry fails at once, offline.
    """

    name = "fluidmcp"
    variants = ("no-stream",)

    async def start(self) -> None:
        import aiohttp

        fluidmcp = shutil.which("fluidmcp", path=str(Path(sys.executable).parent)) or shutil.which("fluidmcp")
        if fluidmcp is None:
            raise RuntimeError("fluidmcp is not installed: pip install '.[gateway]'")
        root = Path(tempfile.mkdtemp(prefix="fluidmcp-", dir=self.log_dir))
        version = "0.1.0"
        package = root / "packages" / "vllm-mcp" / "vllm" / version
        package.mkdir(parents=True)
        server = {"command": sys.executable, "args": ["-m", "vllm_mcp", "serve"]}
        (package / "metadata.json").write_text(json.dumps({"mcpServers": {"vllm": {**server, "env": {}}}}))
        config = root / "config.json"
        entry = {"fmcp_package": f"vllm-mcp/vllm@{version}", "install_path": str(package), **server}
        config.write_text(json.dumps({"mcpServers": {"vllm": entry}}))
        port = free_port()
        self.token = secrets.token_urlsafe(32)
        env = {
            **self.env,
            "MCP_INSTALLATION_DIR": str(root / "packages"),
            "MCP_CLIENT_SERVER_ALL_PORT": str(port),
            "MCP_FETCH_URL": f"http://127.0.0.1:{free_port()}/",
            "FMCP_SECURE_MODE": "true",
            "FMCP_BEARER_TOKEN": self.token,
            "PYTHONUNBUFFERED": "1",
        }
        self.command = [fluidmcp, "run", str(config), "--file"]
        self._log = open(self.log_dir / f"{self.name}.stderr.log", "w")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, env=env, cwd=root, stdout=self._log, stderr=self._log
        )
        self.pid = self.proc.pid
        self.url = f"http://127.0.0.1:{port}/vllm/mcp"
        self.ids = itertools.count(1)
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"fluidmcp exited ({self.proc.returncode}); see {self._log.name}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                info = await self._rpc("tools/call", {"name": "model_info", "arguments": {}})
                state = (info.get("result", {}).get("structuredContent") or {}).get("server_state")
                if state == "ready":
                    return
                if state not in ("loading", None):
                    raise RuntimeError(f"{self.name}: server state {state}: {info}")
            await asyncio.sleep(0.5)
        raise TimeoutError("fluidmcp: model did not load")

    async def _rpc(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            body["params"] = params
        async with self.http.post(self.url, json=body) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:200]}")
            return dict(await resp.json())

    async def stop(self) -> None:
        await self.http.close()
        children = [p.pid for p in tree(self.pid)[1:]]
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        # The server sees end of input when FluidMCP goes, drains and exits; wait for it.
        await asyncio.to_thread(_reap, children, 60)
        self._log.close()

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        args = {
            "messages": messages(i),
            "max_tokens": workload.max_tokens,
            "min_tokens": workload.max_tokens,
            "temperature": workload.temperature,
        }
        rec = RequestRecord(start=time.perf_counter())
        reply = await self._rpc("tools/call", {"name": "chat_completion", "arguments": args})
        rec.end = time.perf_counter()
        result = reply.get("result")
        if result is None or result.get("isError"):
            rec.error = json.dumps(reply)[:300]
            return rec
        data = result["structuredContent"]
        rec.take_reply(data)
        return rec

    async def overhead(self, n: int) -> dict[str, Any]:
        return {
            "ping": await round_trips(lambda: self._rpc("ping"), n),
            "tools_list": await round_trips(lambda: self._rpc("tools/list"), n),
        }


def _reap(pids: list[int], timeout: float) -> None:
    """Wait for these processes to exit; kill what is left after ``timeout`` seconds."""
    import psutil

    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
