"""A real `vllm-mcp serve --transport http` for the end-to-end tests, and SDK clients for it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2

from tests.support.models import serve_env
from tests.support.servers import serve_command

ACCEPT = {"accept": "application/json, text/event-stream"}


def write_tokens(path: Path, *names: str) -> dict[str, str]:
    """A token file with one fresh token per caller name, mode 0600; name -> token."""
    tokens = {name: secrets.token_urlsafe(32) for name in names}
    path.write_text("".join(f"{n}:{t}\n" for n, t in tokens.items()))
    path.chmod(0o600)
    return tokens


class HttpServer:
    """The server on an OS-chosen port (VLLM_MCP_HTTP_PORT=0); its URL is read from its log."""

    def __init__(self, model_dir: Path, **env: str) -> None:
        self.env = serve_env(model_dir, VLLM_MCP_TRANSPORT="http", VLLM_MCP_HTTP_PORT="0", **env)
        self.proc = subprocess.Popen(
            serve_command(),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.log: list[dict[str, Any]] = []
        self._url = threading.Event()
        self.url = ""
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not self._url.wait(300):
            self.kill()
            raise RuntimeError(f"server did not listen; stderr: {bytes(self.stderr[-3000:])!r}")
        self.base = self.url.removesuffix("/mcp")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr += line
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    self.log.append(record)
                    if record.get("message") == "serving MCP over HTTP":
                        self.url = record["url"]
                        self._url.set()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):  # type: ignore[union-attr]
            self.stdout += chunk

    def health(self) -> httpx2.Response:
        return httpx2.get(self.base + "/healthz", timeout=60)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {bytes(self.stderr[-3000:])!r}")
            if self.health().status_code == 200:
                return
            time.sleep(0.5)
        raise TimeoutError("model did not load")

    def running(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def close(self, timeout: float = 180) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()


def http_client(token: str | None = None, **headers: str) -> httpx2.AsyncClient:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))


@contextlib.asynccontextmanager
async def mcp_client(url: str, token: str | None, mode: str = "auto") -> AsyncIterator[Any]:
    """The official SDK client (``mcp.client.client.Client``) over Streamable HTTP."""
    from mcp.client.client import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        http_client(token) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,  # type: ignore[arg-type]
    ):
        yield client


def sse_messages(text: str) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an SSE (or JSON) response body.

    SSE lines end at CR, LF or CRLF only: ``str.splitlines`` would also split at U+2028, U+0085
    and the like, which JSON carries unescaped (the hostile test's echoed inputs hold them).
    """
    if text.lstrip().startswith("{"):
        return [json.loads(text)]
    lines = re.split(r"\r\n|\r|\n", text)
    return [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip()]


def initialize_body(version: str = "2025-06-18") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"},
        },
    }


def env_without_tokens() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VLLM_MCP_HTTP")}


def requests_by_caller(server: Any) -> dict[str, float]:
    """``vllm_mcp_requests_total`` by caller, from the server's metrics textfile."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (server.dir / "metrics.prom").read_text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vllm_mcp_requests_total":
                out[s.labels["caller"]] = out.get(s.labels["caller"], 0) + s.value
    return out


def metrics_settle(server: Any) -> dict[str, float]:
    """The per-caller counts once two textfile writes agree (the file is written every 0.3 s)."""
    last = requests_by_caller(server)
    for _ in range(50):
        time.sleep(0.7)
        now = requests_by_caller(server)
        if now == last:
            return now
        last = now
    return last
