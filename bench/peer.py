"""The peer a user would otherwise pick: ``vllm-mcp-server`` (PyPI 0.1.4) in front of `vllm serve`.

vllm-mcp-server is an MCP stdio server (the SDK's low-level ``Server``, mcp 1.x) whose
``vllm_chat`` tool POSTs a non-streaming ``/v1/chat/completions`` to a running `vllm serve`
(a new aiohttp session per call) and returns the reply's text with a "Tokens: P prompt + C
completion" line. Here it fronts the ``vllm-serve`` contender's server (same engine
arguments), and is driven by the official SDK client over ``stdio_client``, as the ``vllm-mcp``
contender is. It needs mcp 1.x (its decorators are gone in mcp 2), so it lives in its own venv:

    python3 -m venv .cache/vllm-mcp-server
    .cache/vllm-mcp-server/bin/pip install 'vllm-mcp-server==0.1.4' 'mcp>=1,<2'

(``VLLM_MCP_SERVER_VENV`` names another venv.) Its settings come from ``VLLM_*`` variables
(pydantic-settings, prefix ``VLLM_``) and a ``.env`` file in its working directory, so it runs
in an empty directory with only its own variables: ``VLLM_BASE_URL``, ``VLLM_MODEL`` (the served
name), ``VLLM_DEFAULT_TEMPERATURE=0`` (it sends ``temperature or default``, so an explicit 0
would become its default 0.7) and ``VLLM_DEFAULT_TIMEOUT``. It has no ``min_tokens``: a reply may
end before ``max_tokens`` at an end-of-text token; tokens/s counts the tokens it reports.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.contenders import REQUEST_TIMEOUT, Contender, VllmServeContender
from bench.load import round_trips
from bench.procs import find_child
from bench.stats import RequestRecord
from bench.workload import Workload, messages

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VLLM_MCP_SERVER_VENV", ROOT / ".cache" / "vllm-mcp-server"))
_USAGE = re.compile(r"Tokens: (\d+) prompt \+ (\d+) completion")


class VllmMcpServerContender(Contender):
    """vllm-mcp-server 0.1.4 over stdio, in front of the ``vllm-serve`` contender's server."""

    name = "vllm-mcp-server"
    variants = ("no-stream",)

    async def start(self) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        exe = VENV / "bin" / "vllm-mcp-server"
        if not exe.exists():
            raise RuntimeError(
                f"vllm-mcp-server is not installed in {VENV}: python3 -m venv {VENV} && "
                f"{VENV}/bin/pip install 'vllm-mcp-server==0.1.4' 'mcp>=1,<2'"
            )
        self.backend = VllmServeContender(self.env, self.log_dir)
        await self.backend.start()
        self.command = [str(exe), "(in front of)", *self.backend.command]
        self._stack = contextlib.AsyncExitStack()
        self._stack.push_async_callback(self.backend.stop)
        cwd = Path(tempfile.mkdtemp(prefix="vllm-mcp-server-", dir=self.log_dir))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "PYTHONPATH"))}
        env.update(
            {
                "VLLM_BASE_URL": self.backend.base,
                "VLLM_MODEL": "bench",
                "VLLM_DEFAULT_TEMPERATURE": "0",
                "VLLM_DEFAULT_TIMEOUT": str(REQUEST_TIMEOUT),
            }
        )
        errlog = self._stack.enter_context(open(self.log_dir / f"{self.name}.stderr.log", "w"))  # noqa: SIM115
        params = StdioServerParameters(command=str(exe), args=[], env=env, cwd=str(cwd))
        read, write = await self._stack.enter_async_context(stdio_client(params, errlog=errlog))
        self.session = await self._stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()
        self.peer_pid = find_child("vllm-mcp-server")
        # RSS and the load window follow `vllm serve`'s tree; the front end is both processes.
        self.pid = self.backend.pid

    def front_end_pids(self) -> list[int]:
        return [self.peer_pid, self.backend.pid]

    async def stop(self) -> None:
        await self._stack.aclose()

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        args = {
            "messages": messages(i),
            "max_tokens": workload.max_tokens,
            "temperature": workload.temperature,
        }
        rec = RequestRecord(start=time.perf_counter())
        result = await self.session.call_tool("vllm_chat", args, read_timeout_seconds=REQUEST_TIMEOUT)
        rec.end = time.perf_counter()
        text = " ".join(getattr(c, "text", "") for c in result.content)
        usage = _USAGE.search(text)
        if getattr(result, "is_error", False) or usage is None:
            rec.error = text[:300]
            return rec
        rec.prompt_tokens, rec.output_tokens = int(usage[1]), int(usage[2])
        return rec

    async def overhead(self, n: int) -> dict[str, Any]:
        return {
            "ping": await round_trips(self.session.send_ping, n),
            "tools_list": await round_trips(self.session.list_tools, n),
        }
