"""Ratios, target checks, the Markdown tables and the plot, from the result JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MAIN = ("vllm-mcp", "stream")
SERIES = [
    ("vllm-mcp", "stream", "vllm-mcp, SDK stdio_client (progress on)"),
    ("vllm-mcp", "no-stream", "vllm-mcp, SDK stdio_client (progress off)"),
    ("vllm-mcp-pipe", "stream", "vllm-mcp, pipe client (progress on)"),
    ("vllm-mcp-pipe", "no-stream", "vllm-mcp, pipe client (progress off)"),
    ("engine", "stream", "raw AsyncLLM"),
    ("vllm-serve", "stream", "vllm serve (HTTP, SSE)"),
    ("sequential", "stream", "vllm-mcp, concurrency 1"),
    ("vllm-mcp-http", "stream", "vllm-mcp over Streamable HTTP (SSE, progress on)"),
    ("vllm-mcp-http", "no-stream", "vllm-mcp over Streamable HTTP (progress off)"),
    ("vllm-mcp-http-2026", "stream", "vllm-mcp over stateless 2026-07-28 HTTP (progress on)"),
    ("vllm-mcp-http-2026", "no-stream", "vllm-mcp over stateless 2026-07-28 HTTP (progress off)"),
    ("vllm-mcp-server", "no-stream", "vllm-mcp-server 0.1.4 (stdio) → vllm serve"),
    ("fluidmcp", "no-stream", "FluidMCP gateway, vllm-mcp over stdio"),
]


def level(results: dict[str, Any], contender: str, variant: str, c: int) -> dict[str, Any] | None:
    levels = results["contenders"].get(contender, {}).get("levels", {}).get(variant, [])
    return next((s for s in levels if s["concurrency"] == c), None)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


CLIENTS = {
    "vllm-mcp": "SDK stdio_client",
    "vllm-mcp-pipe": "ClientSession over asyncio pipes",
    "vllm-mcp-http": "Streamable HTTP, aiohttp",
    "vllm-mcp-http-2026": "stateless 2026-07-28 HTTP, aiohttp",
}
HTTP_CLIENTS = ("vllm-mcp-http", "vllm-mcp-http-2026")
STDIO_CLIENTS = ("vllm-mcp", "vllm-mcp-pipe")


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per concurrency and MCP client: output tok/s over each other contender's, and TTFT deltas."""
    rows = []
    for c in results["workload"]["concurrencies"]:
        eng, vs = level(results, "engine", "stream", c), level(results, "vllm-serve", "stream", c)
        seq = level(results, "sequential", "stream", c)
        fluid = level(results, "fluidmcp", "no-stream", c)
        for client in CLIENTS:
            mcp, off = level(results, client, "stream", c), level(results, client, "no-stream", c)
            if mcp is None:
                continue
            rows.append(
                {
                    "concurrency": c,
                    "client": client,
                    "mcp_vs_engine": _div(_tput(mcp), _tput(eng)),
                    "mcp_nostream_vs_engine": _div(_tput(off), _tput(eng)),
                    "mcp_vs_vllm_serve": _div(_tput(mcp), _tput(vs)),
                    "mcp_vs_sequential": _div(_tput(mcp), _tput(seq)),
                    "mcp_vs_fluidmcp": _div(_tput(mcp), _tput(fluid)),
                    "ttft_p50_minus_engine_ms": _sub(_ttft(mcp, "p50"), _ttft(eng, "p50")),
                    "ttft_p50_minus_vllm_serve_ms": _sub(_ttft(mcp, "p50"), _ttft(vs, "p50")),
                }
            )
    return rows


def _tput(s: dict[str, Any] | None) -> float | None:
    return s["output_throughput"] if s else None


def _ttft(s: dict[str, Any] | None, p: str) -> float | None:
    return s["ttft_ms"][p] if s else None


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and met / missed / not measured."""
    out: list[dict[str, Any]] = []
    for client in STDIO_CLIENTS:
        out += _targets(results, client)
    for client in HTTP_CLIENTS:
        out += _http_targets(results, client)
    return out


def _progress_target(results: dict[str, Any], client: str, c: int) -> dict[str, Any]:
    """Issue #31's: asking for progress costs at most 5 % of the output tokens/s."""
    on, off = level(results, client, "stream", c), level(results, client, "no-stream", c)
    v = _div(_tput(on), _tput(off))
    return {
        "target": f"progress on >= 0.95 x progress off output tok/s at c={c} [{CLIENTS[client]}]",
        "client": client,
        "value": v,
        "met": None if v is None else v >= 0.95,
    }


def _http_targets(results: dict[str, Any], client: str) -> list[dict[str, Any]]:
    """Issues #11 and #31: HTTP keeps up with `vllm serve`, progress included, and leaves
    FluidMCP behind; 8 concurrent calls take at most twice one."""
    by_c = {r["concurrency"]: r for r in results["ratios"] if r["client"] == client}
    out: list[dict[str, Any]] = []
    if not by_c:
        return out

    def add(name: str, value: float | None, ok: bool | None) -> None:
        out.append({"target": f"{name} [{CLIENTS[client]}]", "client": client, "value": value, "met": ok})

    for c in (16, 64):
        r = by_c.get(c, {})
        v = r.get("mcp_vs_vllm_serve")
        add(f"output tok/s >= 1.0 x vllm serve at c={c}", v, None if v is None else v >= 1.0)
        if c == 16:
            v = r.get("ttft_p50_minus_vllm_serve_ms")
            ok = None if v is None else v <= 5
            add(f"TTFT p50 within 5 ms of vllm serve at c={c} (ms difference)", v, ok)
        else:
            mcp, vs = level(results, client, "stream", c), level(results, "vllm-serve", "stream", c)
            v = _div(_ttft(mcp, "p99"), _ttft(vs, "p99"))
            add(f"TTFT p99 <= 1.5 x vllm serve's at c={c}", v, None if v is None else v <= 1.5)
        out.append(_progress_target(results, client, c))
    v = by_c.get(16, {}).get("mcp_vs_fluidmcp")
    add("output tok/s >= 5 x the FluidMCP gateway at c=16", v, None if v is None else v >= 5)
    res = results["contenders"].get(client, {})
    ping = res.get("overhead_ms", {}).get("ping", {}).get("p50")
    if client == "vllm-mcp-http":  # the 2026 era has no ping
        add("ping round trip p50 <= 1.0 ms", ping, None if ping is None else ping <= 1.0)
    v = (res.get("batching") or {}).get("ratio")
    autogroup = results.get("meta", {}).get("autogroup")
    add(
        f"8 concurrent calls <= 2.0 x one call (wall time; autogroup {_f(autogroup)})",
        v,
        None if v is None else v <= 2.0,
    )
    return out


def _targets(results: dict[str, Any], client: str) -> list[dict[str, Any]]:
    by_c = {r["concurrency"]: r for r in results["ratios"] if r["client"] == client}
    out: list[dict[str, Any]] = []
    if not by_c:
        return out

    def add(name: str, value: float | None, ok: bool | None) -> None:
        out.append({"target": f"{name} [{CLIENTS[client]}]", "client": client, "value": value, "met": ok})

    for c in (16, 64):
        r = by_c.get(c, {})
        v = r.get("mcp_vs_engine")
        add(f"output tok/s >= 0.95 x engine at c={c}", v, None if v is None else v >= 0.95)
        v = r.get("mcp_vs_vllm_serve")
        add(f"output tok/s >= 1.0 x vllm serve at c={c}", v, None if v is None else v >= 1.0)
        v = r.get("ttft_p50_minus_vllm_serve_ms")
        add(f"TTFT p50 no worse than vllm serve at c={c} (ms difference)", v, None if v is None else v <= 0)
        out.append(_progress_target(results, client, c))
    r = by_c.get(16, {})
    v = r.get("mcp_vs_sequential")
    add("output tok/s >= 5 x sequential at c=16", v, None if v is None else v >= 5)
    v = r.get("ttft_p50_minus_engine_ms")
    add("TTFT p50 adds <= 5 ms over the engine at c=16 (ms)", v, None if v is None else v <= 5)
    ping = results["contenders"].get(client, {}).get("overhead_ms", {}).get("ping", {}).get("p50")
    add("ping round trip p50 < 1 ms", ping, None if ping is None else ping < 1.0)
    tl = results["contenders"].get(client, {}).get("overhead_ms", {}).get("tools_list", {}).get("p50")
    add("tools/list round trip p50 < 1 ms", tl, None if tl is None else tl < 1.0)
    return out


# --- Markdown ---------------------------------------------------------------------------------


def _f(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _load(meta: dict[str, Any]) -> str:
    load = meta.get("loadavg_at_start")
    return " / ".join(f"{x:.1f}" for x in load) if load else "–"


def markdown(results: dict[str, Any]) -> str:
    w, m = results["workload"], results["meta"]
    lines = [
        f"### {m['label']}: {m['model']}",
        "",
        f"{w['max_tokens']} output tokens per request (fixed: min_tokens = max_tokens), "
        f"{w['num_prompts']} requests per level (at least {w['min_waves']} x concurrency), "
        f"temperature {w['temperature']}; {m['cpu']}, {m['cpus']} CPUs; {m['started']}; "
        f"load average at start {_load(m)}; kernel.sched_autogroup_enabled={_f(m.get('autogroup'))}.",
        "",
        "**Ratios of vllm-mcp (progress on) output tokens/s**, and TTFT p50 differences:",
        "",
        "| MCP client | concurrency | / engine | (progress off) / engine | / vllm serve | / sequential "
        "| / FluidMCP | TTFT p50 − engine (ms) | TTFT p50 − vllm serve (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results["ratios"], key=lambda r: (r["client"], r["concurrency"])):
        lines.append(
            f"| {CLIENTS[r['client']]} | {r['concurrency']} | {_f(r['mcp_vs_engine'], 3)} "
            f"| {_f(r['mcp_nostream_vs_engine'], 3)} "
            f"| {_f(r['mcp_vs_vllm_serve'], 3)} | {_f(r['mcp_vs_sequential'], 2)} "
            f"| {_f(r.get('mcp_vs_fluidmcp'), 2)} "
            f"| {_f(r['ttft_p50_minus_engine_ms'], 2)} | {_f(r['ttft_p50_minus_vllm_serve_ms'], 2)} |"
        )
    lines += [
        "",
        "**All figures** (ms; TTFT for vllm-mcp with progress off is not visible to the client):",
        "",
        "| contender | c | req/s | out tok/s | TTFT mean / p50 / p90 / p99 | TPOT p50 / p99 "
        "| ITL p50 / p99 | E2E p50 / p99 | tok/chunk | front-end CPU ms / 1k tok | other CPU % "
        "| load avg |",
        "|---|---:|---:|---:|---|---|---|---|---:|---:|---:|---|",
    ]
    for contender, variant, label in SERIES:
        for c in w["concurrencies"]:
            s = level(results, contender, variant, c)
            if s is None:
                continue
            t, tp, it, e = s["ttft_ms"], s["tpot_ms"], s["itl_ms"], s["e2el_ms"]
            lines.append(
                f"| {label} | {c} | {_f(s['request_throughput'], 2)} | {_f(s['output_throughput'])} "
                f"| {_f(t['mean'])} / {_f(t['p50'])} / {_f(t['p90'])} / {_f(t['p99'])} "
                f"| {_f(tp['p50'], 2)} / {_f(tp['p99'], 2)} | {_f(it['p50'], 2)} / {_f(it['p99'], 2)} "
                f"| {_f(e['p50'])} / {_f(e['p99'])} | {_f(s['tokens_per_chunk'])} "
                f"| {_f(s.get('front_end', {}).get('cpu_ms_per_1k_tokens'))} "
                f"| {_f(s['load']['other_cpu_pct'], 0)} "
                f"| {_f(s['load']['loadavg_1m_start'])}–{_f(s['load']['loadavg_1m_end'])} |"
            )
    lines += [
        "",
        "| contender | start-up (s) | peak RSS of process tree (MiB) | round trip p50 / p99 (ms) "
        "| 8 concurrent / 1 call |",
        "|---|---:|---:|---|---:|",
    ]
    for name, res in results["contenders"].items():
        if "error" in res:
            lines.append(f"| {name} | failed: {res['error']} | | | |")
            continue
        rt = "; ".join(
            f"{k} {_f(v.get('p50'), 3)} / {_f(v.get('p99'), 3)}" for k, v in res["overhead_ms"].items()
        )
        b = res.get("batching") or {}
        eight = f"{b['ratio']:.2f} ({b['eight_s']:.2f} / {b['one_s']:.2f} s)" if b else "–"
        lines.append(
            f"| {name} | {_f(res['startup_s'])} | {_f(res['peak_rss_bytes'] / 2**20, 0)} | {rt or '–'} "
            f"| {eight} |"
        )
    lines += ["", "**Targets**:", ""]
    for t in results["targets"]:
        mark = {True: "met", False: "**missed**", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: {_f(t['value'], 3)} — {mark}")
    return "\n".join(lines) + "\n"


# --- plot -------------------------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = results["workload"]["concurrencies"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for n, (contender, variant, label) in enumerate(SERIES):
        pts = [(c, s) for c in cs if (s := level(results, contender, variant, c))]
        if not pts:
            continue
        color, style = f"C{n}", "--" if variant == "no-stream" else "-"
        x = [c for c, _ in pts]
        ax1.plot(x, [s["output_throughput"] for _, s in pts], style, marker="o", color=color, label=label)
        ttft = [(c, s["ttft_ms"]["p99"]) for c, s in pts if s["ttft_ms"]["p99"] is not None]
        if ttft:
            ax2.plot([c for c, _ in ttft], [v for _, v in ttft], style, marker="o", color=color, label=label)
    for ax, title, unit in (
        (ax1, "Output throughput", "output tokens/s"),
        (ax2, "Time to first token, p99", "ms (log)"),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xticks(cs, [str(c) for c in cs])
        ax.set_xlabel("concurrency")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    m = results["meta"]
    ax2.legend(fontsize=7)
    fig.suptitle(
        f"{m['label']}: {m['model']} — {m['cpus']} CPUs, {results['workload']['max_tokens']} tokens/request"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
