"""``python -m bench --tasks``: what running calls as MCP tasks costs, on each task store.

One ``vllm-mcp serve --transport http`` per store (memory, the SQLite file, PostgreSQL), the
bench's lean HTTP client (bench/mcp_http.py). Per store, in alternating rounds:

- **direct**: ``calls`` concurrent ``tools/call`` of ``chat_completion``, as a client without
  tasks makes them;
- **tasks**: the same calls with ``params.task`` (2025-11-25): each answered with its handle,
  then ``tasks/result``, which waits for the end (no poll interval in the way: what is measured
  is the server's cost, the store writes and the background run, not a client's polling pace);
  meanwhile ``tasks/get`` for the running tasks, each once per its ``pollInterval`` (1 s), as
  clients poll: 64 tasks, 64 gets a second (a poller in a tight loop took the event loop's
  time from the generations and measured itself, not the tasks).

Reported: the wall time and tokens/s of each (median over rounds), tasks/get latency while the
tasks run and on ended ones (p50/p99). Every figure needs its machine and
``kernel.sched_autogroup_enabled``, which ``machine()`` records.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.mcp_http import McpHttpContender
from bench.stats import distribution
from bench.workload import messages

IDLE_GETS = 200
POLL_INTERVAL_S = 1.0
"""The server's suggested ``pollInterval`` (protocol/tasks.py), which clients honour."""


class TasksServer(McpHttpContender):
    """``vllm-mcp serve --transport http`` with its task store at ``store`` (None: memory)."""

    name = "vllm-mcp-tasks"

    def __init__(self, env: dict[str, str], log_dir: Path, store: str | None) -> None:
        extra = {"VLLM_MCP_SESSION_STORE": store} if store else {}
        # Every call of a round may be a task at once; the default (16) would refuse the rest.
        super().__init__({**env, **extra, "VLLM_MCP_MAX_TASKS_PER_CALLER": "100000"}, log_dir)

    def arguments(self, i: int, max_tokens: int) -> dict[str, Any]:
        return {
            "messages": messages(i),
            "max_tokens": max_tokens,
            "min_tokens": max_tokens,
            "temperature": 0.0,
        }

    async def direct(self, i: int, max_tokens: int) -> int:
        """One plain call; its completion tokens."""
        replies = await self._rpc(
            "tools/call", {"name": "chat_completion", "arguments": self.arguments(i, max_tokens)}
        )
        return _tokens(replies)

    async def create(self, i: int, max_tokens: int) -> str:
        params = {
            "name": "chat_completion",
            "arguments": self.arguments(i, max_tokens),
            "task": {"ttl": 600_000},
        }
        replies = await self._rpc("tools/call", params)
        reply = _only(replies)
        return str(reply["result"]["task"]["taskId"])

    async def result(self, task_id: str) -> int:
        return _tokens(await self._rpc("tasks/result", {"taskId": task_id}))

    async def get(self, task_id: str) -> str:
        return str(_only(await self._rpc("tasks/get", {"taskId": task_id}))["result"]["status"])


def _only(replies: list[dict[str, Any]]) -> dict[str, Any]:
    reply = next(m for m in replies if "id" in m and "method" not in m)
    if "error" in reply:
        raise RuntimeError(f"JSON-RPC error: {reply['error']}")
    return reply


def _tokens(replies: list[dict[str, Any]]) -> int:
    result = _only(replies)["result"]
    if result.get("isError"):
        raise RuntimeError(f"tool error: {result['content'][0]['text'][:300]}")
    return int(result["structuredContent"]["usage"]["completion_tokens"])


async def direct_round(server: TasksServer, calls: int, max_tokens: int) -> dict[str, float]:
    t0 = time.perf_counter()
    tokens = await asyncio.gather(*(server.direct(i, max_tokens) for i in range(calls)))
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "tokens": sum(tokens), "tokens_per_s": sum(tokens) / wall}


async def tasks_round(
    server: TasksServer, calls: int, max_tokens: int
) -> tuple[dict[str, float], list[float]]:
    """The calls as tasks, each followed by tasks/result; tasks/get latencies while they run."""
    t0 = time.perf_counter()
    ids: list[str] = []
    done = asyncio.Event()
    latencies: list[float] = []

    async def one(i: int) -> int:
        task_id = await server.create(i, max_tokens)
        ids.append(task_id)
        return await server.result(task_id)

    async def poll() -> None:
        k = 0
        while not done.is_set():
            if not ids:
                await asyncio.sleep(0.01)
                continue
            s = time.perf_counter()
            await server.get(ids[k % len(ids)])
            latencies.append(time.perf_counter() - s)
            k += 1
            await asyncio.sleep(POLL_INTERVAL_S / len(ids))  # every task once per interval

    poller = asyncio.create_task(poll())
    try:
        tokens = await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        done.set()
        await poller
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "tokens": sum(tokens), "tokens_per_s": sum(tokens) / wall}, latencies


async def measure(server: TasksServer, calls: int, max_tokens: int, rounds: int) -> dict[str, Any]:
    await server.start()
    try:
        await asyncio.gather(*(server.direct(i, max_tokens) for i in range(4)))  # warm-up
        direct: list[dict[str, float]] = []
        tasks: list[dict[str, float]] = []
        busy: list[float] = []
        for _ in range(rounds):  # alternating, so a slow moment of the machine hits both
            direct.append(await direct_round(server, calls, max_tokens))
            figures, latencies = await tasks_round(server, calls, max_tokens)
            tasks.append(figures)
            busy.extend(latencies)
        ended = [await server.create(i, 1) for i in range(8)]
        for task_id in ended:
            await server.result(task_id)
        idle: list[float] = []
        for k in range(IDLE_GETS):
            s = time.perf_counter()
            await server.get(ended[k % len(ended)])
            idle.append(time.perf_counter() - s)
    finally:
        await server.stop()
    out: dict[str, Any] = {"direct": _median(direct), "tasks": _median(tasks)}
    out["tasks_vs_direct_tokens_per_s"] = out["tasks"]["tokens_per_s"] / out["direct"]["tokens_per_s"]
    out["tasks_get_ms_while_running"] = distribution(busy)
    out["tasks_get_ms_ended"] = distribution(idle)
    out["rounds"] = {"direct": direct, "tasks": tasks}
    return out


def _median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


@contextlib.contextmanager
def stores(log_dir: Path, postgres_url: str | None) -> Iterator[dict[str, str | None]]:
    """memory, SQLite and PostgreSQL (``postgres_url``, or a server started for the run)."""
    found: dict[str, str | None] = {"memory": None, "sqlite": str(log_dir / "tasks-bench.sqlite")}
    with contextlib.ExitStack() as stack:
        if postgres_url is None:
            try:
                from tests.support.postgres import running_postgres

                server = stack.enter_context(running_postgres(fsync=True))
                postgres_url = server.new_database()
            except BaseException as e:  # no PostgreSQL here (pytest's skip is a BaseException)
                found["postgresql (skipped)"] = None
                print(f"PostgreSQL left out: {e}")
        if postgres_url is not None:
            found["postgresql"] = postgres_url
        yield found


def run_tasks_bench(
    env: dict[str, str], log_dir: Path, calls: int, max_tokens: int, rounds: int, postgres_url: str | None
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with stores(log_dir, postgres_url) as found:
        for name, location in found.items():
            if name.endswith("(skipped)"):
                continue
            print(f"--- tasks bench: {name} store", flush=True)
            results[name] = asyncio.run(
                measure(TasksServer(env, log_dir, location), calls, max_tokens, rounds)
            )
    return results


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# Tasks against direct calls ({meta['calls']} concurrent `chat_completion`, "
        f"{meta['max_tokens']} tokens each, median of {meta['rounds']} rounds)",
        "",
        f"{meta['cpu']} ({meta['cpus']} CPUs), `kernel.sched_autogroup_enabled={meta['autogroup']}`, "
        f"load average at start {meta['loadavg_at_start'][0]:.2f}, {meta['model']}, vLLM {meta['vllm']}, "
        f"commit {meta['commit']}, {meta['started']}.",
        "",
        "| store | direct: wall s | direct: tokens/s | tasks: wall s | tasks: tokens/s | tasks / direct "
        "| tasks/get ms p50 / p99 (running) | tasks/get ms p50 / p99 (ended) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        busy, idle = r["tasks_get_ms_while_running"], r["tasks_get_ms_ended"]
        lines.append(
            f"| {name} | {r['direct']['wall_s']:.2f} | {r['direct']['tokens_per_s']:.0f} | "
            f"{r['tasks']['wall_s']:.2f} | {r['tasks']['tokens_per_s']:.0f} | "
            f"{r['tasks_vs_direct_tokens_per_s']:.3f} | {_ms(busy['p50'])} / {_ms(busy['p99'])} | "
            f"{_ms(idle['p50'])} / {_ms(idle['p99'])} |"
        )
    return "\n".join(lines) + "\n"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
