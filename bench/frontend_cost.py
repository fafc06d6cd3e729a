"""What the HTTP front end costs in CPU, per call and per progress notification, by process.

``python -m bench.frontend_cost --workers 1,2 --concurrency 16 --calls 64 --max-tokens 128``
starts ``vllm-mcp serve --transport http`` on the tiny model once per worker count, sends the
calls as the ``vllm-mcp-http`` contender does (one POST per call, progress on), and reads every
server process's CPU time (user + system, from /proc) around the level. CPU seconds, unlike
wall time, stay meaningful on a loaded machine. docs/performance.md ("Front-end workers") turns
the per-notification cost into the message rate one front end can stream on a GPU host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import psutil

from bench.load import run_level
from bench.mcp_http import McpHttpContender
from bench.run import model_env
from bench.workload import Workload


def cpu_by_role(pid: int, port: int) -> dict[str, float]:
    """CPU seconds of the server's processes: front end(s), supervisor, engine (core + workers).

    A front end is a process listening on ``port`` (one, or each of the workers sharing the
    socket); with workers the root process only supervises.
    """
    out = {"front_end": 0.0, "supervisor": 0.0, "engine": 0.0}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    listening = {p.pid for p in procs if _listens(p, port)}
    several = len(listening) > 1
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        if p.pid == pid and several:
            role = "supervisor"  # it holds the socket too, but never accepts on it
        elif p.pid in listening:
            role = "front_end"
        else:
            role = "engine"  # EngineCore, VLLM::Worker, the resource tracker
        out[role] += t.user + t.system
    return out


def _listens(p: psutil.Process, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp"))
    except psutil.Error:
        return False


async def measure(
    workers: int, concurrency: int, calls: int, max_tokens: int, log_dir: Path
) -> dict[str, Any]:
    env = model_env("tiny", None, 1024, 1)
    env["VLLM_MCP_HTTP_WORKERS"] = str(workers)
    if workers > 1:
        env["VLLM_MCP_SESSION_STORE"] = str(log_dir / f"sessions-{workers}.db")
    contender = McpHttpContender(env, log_dir)
    contender.name = f"vllm-mcp-http-w{workers}"
    workload = Workload(num_prompts=calls, max_tokens=max_tokens, concurrencies=(concurrency,))
    await contender.start()
    try:
        await run_level(lambda i: contender.send(i, workload, "stream"), 8, 4)  # warm-up
        port = int(contender.base.rsplit(":", 1)[1])
        before = cpu_by_role(contender.pid, port)
        records: list[Any] = []

        async def send(i: int) -> Any:
            rec = await contender.send(i, workload, "stream")
            records.append(rec)
            return rec

        summary = await run_level(send, calls, concurrency)
        after = cpu_by_role(contender.pid, port)
    finally:
        await contender.stop()
    cpu = {k: after[k] - before[k] for k in after}
    tokens = sum(r.output_tokens for r in records if not r.error)
    notes = sum(len(r.chunks) for r in records if not r.error)
    ok = sum(1 for r in records if not r.error)
    return {
        "workers": workers,
        "concurrency": concurrency,
        "calls_ok": ok,
        "output_tokens": tokens,
        "progress_notifications": notes,
        "output_tok_per_s": round(summary["output_throughput"], 1),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_ms_per_token_total": round(1000 * sum(cpu.values()) / max(tokens, 1), 4),
        "front_end_cpu_ms_per_token": round(1000 * cpu["front_end"] / max(tokens, 1), 4),
        "front_end_cpu_ms_per_call": round(1000 * cpu["front_end"] / max(ok, 1), 3),
        "front_end_cpu_ms_per_notification": round(1000 * cpu["front_end"] / max(notes, 1), 4),
        "other_cpu_pct": summary["load"]["other_cpu_pct"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--calls", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="frontend-cost-") as tmp:
        for n in (int(x) for x in args.workers.split(",")):
            result = asyncio.run(measure(n, args.concurrency, args.calls, args.max_tokens, Path(tmp)))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
