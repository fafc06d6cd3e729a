"""``python -m bench.cpu_cost``: front-end CPU per 1,000 output tokens and per message, per build.

On a shared machine tokens/s says more about the neighbours than about the server; the CPU
time of the server's own process (its front end: transport, protocol, vLLM's output handler;
not ``EngineCore`` or its workers) per token and per message does not. Each ``--root`` is a
checkout of vllm-mcp (e.g. a ``git worktree`` of the commit before a change); the rounds
alternate between them so that a change in the load hits every build alike::

    git worktree add /tmp/base main
    python -m bench.cpu_cost --root /tmp/base --root . --contenders vllm-mcp-http --rounds 2
"""

from __future__ import annotations

import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

import click

from bench.contenders import log_dir
from bench.registry import CONTENDERS
from bench.run import ROOT, model_env
from bench.workload import Workload


async def measure(
    roots: list[Path], names: list[str], workload: Workload, rounds: int, env: dict[str, str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    logs = log_dir()
    for r in range(rounds):
        for root in roots:
            for name in names:
                run_env = {**env, "PYTHONPATH": str(root)}
                contender = CONTENDERS[name](run_env, logs)
                res = await contender.run(workload, progress=lambda s: click.echo(s, err=True))
                ping = res["overhead_ms"].get("ping", {}).get("p50")
                calls = 2 * workload.overhead_calls
                for variant, levels in res["levels"].items():
                    for s in levels:
                        fe = s["front_end"]
                        rows.append(
                            {
                                "round": r,
                                "root": str(root),
                                "contender": name,
                                "variant": variant,
                                "c": s["concurrency"],
                                "ms_per_1k_tokens": fe["cpu_ms_per_1k_tokens"],
                                "ms_per_message": fe["cpu_ms_per_message"],
                                "messages": fe["messages"],
                                "tok_s": s["output_throughput"],
                                "ping_p50_ms": ping,
                                # ping and tools/list calls (the 8-vs-1 calls add to it over HTTP)
                                "overhead_cpu_ms_per_call": 1e3 * res["overhead_cpu_s"] / calls
                                if res.get("overhead_cpu_s") is not None
                                else None,
                                "eight_vs_one": (res.get("batching") or {}).get("ratio"),
                                "other_cpu_pct": s["load"]["other_cpu_pct"],
                            }
                        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Median over rounds of each (root, contender, variant, c)."""
    keys = sorted({(r["contender"], r["variant"], r["c"], r["root"]) for r in rows})
    lines = [
        "| contender | variant | c | build | front-end CPU ms / 1k tokens | ms / message | messages "
        "| ping p50 ms | CPU ms / ping or tools/list | 8 vs 1 | tok/s (loaded) | other CPU % |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def med(xs: list[Any]) -> str:
        xs = [x for x in xs if x is not None]
        return f"{statistics.median(xs):.2f}" if xs else "–"

    for contender, variant, c, root in keys:
        key = (contender, variant, c, root)
        g = [r for r in rows if (r["contender"], r["variant"], r["c"], r["root"]) == key]
        lines.append(
            f"| {contender} | {variant} | {c} | {root} | {med([r['ms_per_1k_tokens'] for r in g])} "
            f"| {med([r['ms_per_message'] for r in g])} | {med([r['messages'] for r in g])} "
            f"| {med([r['ping_p50_ms'] for r in g])} | {med([r['overhead_cpu_ms_per_call'] for r in g])} "
            f"| {med([r['eight_vs_one'] for r in g])} "
            f"| {med([r['tok_s'] for r in g])} | {med([r['other_cpu_pct'] for r in g])} |"
        )
    return "\n".join(lines)


@click.command()
@click.option("--root", "roots", multiple=True, type=click.Path(path_type=Path), help="A vllm-mcp checkout.")
@click.option("--contenders", default="vllm-mcp-http,vllm-mcp-pipe", show_default=True)
@click.option("--concurrency", default="16,64", show_default=True)
@click.option("--num-prompts", type=int, default=128, show_default=True)
@click.option("--max-tokens", type=int, default=128, show_default=True)
@click.option("--overhead-calls", type=int, default=100, show_default=True)
@click.option("--rounds", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the rows as JSON here.")
@click.option("--env", "extra_env", multiple=True, help="KEY=VALUE for the servers (e.g. a setting).")
def main(
    roots: tuple[Path, ...],
    contenders: str,
    concurrency: str,
    num_prompts: int,
    max_tokens: int,
    overhead_calls: int,
    rounds: int,
    out: Path | None,
    extra_env: tuple[str, ...],
) -> None:
    """Front-end CPU per token and per message of each build, alternating builds per round."""
    workload = Workload(
        num_prompts=num_prompts,
        max_tokens=max_tokens,
        concurrencies=tuple(int(c) for c in concurrency.split(",")),
        overhead_calls=overhead_calls,
    )
    names = [n.strip() for n in contenders.split(",") if n.strip()]
    env = model_env("tiny", None, 1024, 1)
    env.pop("PYTHONPATH", None)
    paths = [p.resolve() for p in roots] or [ROOT]
    env.update(dict(kv.split("=", 1) for kv in extra_env))
    rows = asyncio.run(measure(paths, names, workload, rounds, env))
    if out:
        out.write_text(json.dumps(rows, indent=1))
    click.echo(table(rows))


if __name__ == "__main__":
    main()
