"""``python -m bench``: run the contenders one after another and write JSON, Markdown and a plot."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import click
import psutil

from bench import report
from bench.contenders import log_dir
from bench.registry import CONTENDERS
from bench.workload import Workload
from tests.support.models import make_tiny_model, serve_env

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SMOKE = Workload(num_prompts=16, max_tokens=32, concurrencies=(1, 16), overhead_calls=30)
# `vllm serve` takes ~50 s to start here, and FluidMCP as long as a server: the smoke run
# leaves them out to stay near 3 minutes.
SMOKE_CONTENDERS = "engine,vllm-mcp,vllm-mcp-pipe,sequential,vllm-mcp-http"
ALL_CONTENDERS = (
    "engine,vllm-mcp,vllm-mcp-pipe,vllm-serve,sequential,vllm-mcp-http,vllm-mcp-http-2026,fluidmcp"
)


def model_env(model: str, dtype: str | None, max_model_len: int, kv_cache_gib: int) -> dict[str, str]:
    """The `vllm-mcp serve` environment (offline, enforce_eager) for the tiny model, 'embedded' or a path."""
    if model == "tiny":
        target: str = str(make_tiny_model(ROOT / ".cache" / "test-models" / "tiny-llama"))
        dtype = dtype or "float32"
    else:
        target = model
        # The embedded checkpoint is bfloat16; keep a checkpoint's own dtype unless told.
        dtype = dtype or ("bfloat16" if model == "embedded" else "auto")
    return serve_env(
        target,
        VLLM_DTYPE=dtype,
        VLLM_MAX_MODEL_LEN=str(max_model_len),
        VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gib),
        # Every child (server, engine worker) runs this checkout's vllm_mcp and bench.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    )


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    from vllm_mcp.engine.core import vllm_version

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "vllm": vllm_version(),
        "commit": commit,
        "loadavg_at_start": os.getloadavg(),
        "autogroup": autogroup(),
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def autogroup() -> int | None:
    """``kernel.sched_autogroup_enabled`` as found (users' machines: 1); None where there is none.

    On 2 cores it changes the ratios between process layouts by 2-4x, so every figure says it.
    """
    try:
        return int(Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip())
    except (OSError, ValueError):
        return None


async def run_bench(
    workload: Workload,
    contenders: list[str],
    env: dict[str, str],
    meta: dict[str, Any],
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    logs = log_dir()
    results: dict[str, Any] = {"meta": {**meta, "logs": str(logs)}, "workload": workload.to_dict()}
    results["contenders"] = {}
    for name in contenders:
        click.echo(f"--- {name} (logs in {logs})", err=True)
        t0 = time.perf_counter()
        contender = CONTENDERS[name](env, logs, profile_dir)
        try:
            res = await contender.run(workload, progress=lambda s: click.echo(s, err=True))
        except Exception as e:
            res = {"error": f"{type(e).__name__}: {e}"[:500]}
            click.echo(f"{name} failed: {res['error']}", err=True)
        if cmd := getattr(contender, "command", None):
            res["command"] = cmd
        res["wall_s"] = time.perf_counter() - t0
        results["contenders"][name] = res
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    return results


def run_sessions(turns: int, store_url: str | None, out: Path) -> None:
    """``--sessions``: the stores' cost per turn, written as sessions.json and sessions.md."""
    from bench import sessions

    meta = {"turns": turns, "sessions": 20, "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    meta["started"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = sessions.run_sessions_bench(turns, 20, 8, store_url)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sessions.json").write_text(json.dumps({"meta": meta, "stores": results}, indent=1))
    md = sessions.markdown(results, meta)
    (out / "sessions.md").write_text(md)
    click.echo(md)


def run_several(out: Path, calls: int, concurrency: int, max_tokens: int, inputs: int) -> None:
    """``--several``: two models in one server against two servers, and ``embed``'s throughput."""
    import tempfile

    from bench import several

    meta = machine()
    meta["started"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory() as directory:
        results = several.run(Path(directory), calls, concurrency, max_tokens, inputs)
    out.mkdir(parents=True, exist_ok=True)
    (out / "several.json").write_text(json.dumps({"meta": meta, **results}, indent=1))
    md = several.markdown(results, meta)
    (out / "several.md").write_text(md)
    click.echo(md)


def run_tasks(
    env: dict[str, str], meta: dict[str, Any], calls: int, rounds: int, store_url: str | None, out: Path
) -> None:
    """``--tasks``: calls as MCP tasks against the same calls made directly, per task store."""
    from bench import tasks

    meta = {**meta, "calls": calls, "rounds": rounds}
    results = tasks.run_tasks_bench(env, log_dir(), calls, meta["max_tokens"], rounds, store_url)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.json").write_text(json.dumps({"meta": meta, "stores": results}, indent=1))
    md = tasks.markdown(results, meta)
    (out / "tasks.md").write_text(md)
    click.echo(md)


@click.command()
@click.option("--several", "several_mode", is_flag=True, help="Several models behind one server, and embed.")
@click.option("--embed-inputs", type=int, default=256, show_default=True, help="With --several: inputs.")
@click.option(
    "--model", default="tiny", show_default=True, help="'tiny' (made on the spot), 'embedded' or a path."
)
@click.option("--label", default=None, help="Name of the output files (default: the model).")
@click.option(
    "--smoke", is_flag=True, help="Small and quick: c=1 (16 requests) and c=16 (two waves), 32 tokens each."
)
@click.option(
    "--contenders",
    default=None,
    help="Comma-separated subset of: "
    + ", ".join(CONTENDERS)
    + f" (default: all; smoke: {SMOKE_CONTENDERS}).",
)
@click.option("--concurrency", default=None, help="Comma-separated levels (default 1,4,16,64).")
@click.option("--num-prompts", type=int, default=None, help="Requests per level (default 128).")
@click.option("--max-tokens", type=int, default=None, help="Output tokens per request (default 128).")
@click.option("--dtype", default=None, help="VLLM_DTYPE (default: float32 tiny, bfloat16 embedded).")
@click.option("--max-model-len", type=int, default=1024, show_default=True)
@click.option("--kv-cache-gib", type=int, default=1, show_default=True, help="VLLM_CPU_KVCACHE_SPACE.")
@click.option("--out", type=click.Path(path_type=Path), default=RESULTS, show_default=True)
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Run py-spy on each server and on the client during the levels; write stacks here.",
)
@click.option(
    "--sessions",
    "sessions_mode",
    is_flag=True,
    help="Instead: the session stores' cost per turn (memory, SQLite, PostgreSQL), no engine.",
)
@click.option("--turns", type=int, default=2000, show_default=True, help="With --sessions: turns per store.")
@click.option(
    "--store-url",
    default=None,
    help="With --sessions or --tasks: a PostgreSQL URL to use (default: a server started for the run).",
)
@click.option(
    "--tasks",
    "tasks_mode",
    is_flag=True,
    help="Instead: N concurrent calls as MCP tasks against the same calls made directly, per task "
    "store, and tasks/get latency (--calls, --max-tokens, --rounds).",
)
@click.option("--calls", type=int, default=64, show_default=True, help="With --tasks: concurrent calls.")
@click.option("--rounds", type=int, default=3, show_default=True, help="With --tasks: rounds of each.")
def main(
    model: str,
    label: str | None,
    smoke: bool,
    contenders: str | None,
    concurrency: str | None,
    num_prompts: int | None,
    max_tokens: int | None,
    dtype: str | None,
    max_model_len: int,
    kv_cache_gib: int,
    out: Path,
    profile_dir: Path | None,
    sessions_mode: bool,
    turns: int,
    store_url: str | None,
    several_mode: bool,
    embed_inputs: int,
    tasks_mode: bool,
    calls: int,
    rounds: int,
) -> None:
    """Benchmark vllm-mcp against the raw engine, `vllm serve`, a one-at-a-time server and FluidMCP."""
    if sessions_mode:
        run_sessions(turns, store_url, out)
        return
    if several_mode:  # c=16 per model by default, as the issue asks
        levels = [int(c) for c in (concurrency or "16").split(",")]
        run_several(out, num_prompts or 64, levels[-1], max_tokens or 64, embed_inputs)
        return
    workload = SMOKE if smoke else Workload()
    changes: dict[str, Any] = {}
    if concurrency:
        changes["concurrencies"] = tuple(int(c) for c in concurrency.split(","))
    if num_prompts:
        changes["num_prompts"] = num_prompts
    if max_tokens:
        changes["max_tokens"] = max_tokens
    workload = Workload.from_dict({**workload.to_dict(), **changes})
    if tasks_mode:
        env = model_env(model, dtype, max_model_len, kv_cache_gib)
        meta = {"model": model, "max_tokens": workload.max_tokens, **machine()}
        run_tasks(env, meta, calls, rounds, store_url, out)
        return
    contenders = contenders or (SMOKE_CONTENDERS if smoke else ALL_CONTENDERS)
    names = [n.strip() for n in contenders.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown:
        raise click.UsageError(f"unknown contender {unknown[0]!r}; choose from {', '.join(CONTENDERS)}")
    label = label or ("smoke" if smoke else Path(model).name)
    env = model_env(model, dtype, max_model_len, kv_cache_gib)
    meta = {"label": label, "model": model, "max_model_len": max_model_len, "kv_cache_gib": kv_cache_gib}
    meta["dtype"] = env["VLLM_DTYPE"]
    meta.update(machine())
    results = asyncio.run(run_bench(workload, names, env, meta, profile_dir))
    if profile_dir is not None:
        from bench.profile import hot_spots

        results["profile"] = {f.stem: hot_spots(f) for f in sorted(profile_dir.glob("*.txt"))}
        (profile_dir / "hot_spots.json").write_text(json.dumps(results["profile"], indent=1))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{label}.json").write_text(json.dumps(results, indent=1))
    md = report.markdown(results)
    (out / f"{label}.md").write_text(md)
    report.plot(results, out / f"{label}.png")
    click.echo(md)
    click.echo(f"wrote {out / label}.json, .md, .png", err=True)
