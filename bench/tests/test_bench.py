"""The benchmark harness (bench/): its statistics, and a smoke run on the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.stats import RequestRecord, distribution, summarize
from tests.support import ROOT


def test_unit_summary_figures_follow_vllm_bench_serve_definitions() -> None:
    # Two requests of 5 tokens over 2 s: TTFT = first chunk - start,
    # TPOT = (e2e - ttft) / (tokens - 1), ITL = gaps between chunks.
    a = RequestRecord(start=0.0, end=1.0, chunks=[0.2, 0.4, 0.6, 0.8, 1.0], output_tokens=5, prompt_tokens=7)
    b = RequestRecord(start=1.0, end=2.0, chunks=[1.6, 2.0], output_tokens=5, prompt_tokens=3)
    failed = RequestRecord(start=0.0, end=0.1, error="boom")
    s = summarize([a, b, failed], duration=2.0)
    assert (s["completed"], s["failed"], s["errors"]) == (2, 1, ["boom"])
    assert s["output_throughput"] == pytest.approx(5.0)
    assert s["total_token_throughput"] == pytest.approx(10.0)
    assert s["ttft_ms"]["mean"] == pytest.approx(400.0)
    assert s["tpot_ms"]["p50"] == pytest.approx(150.0)  # (800/4 + 400/4) / 2
    assert s["itl_ms"]["mean"] == pytest.approx(1000 * (0.8 + 0.4) / 5)
    assert s["tokens_per_chunk"] == pytest.approx(10 / 7)


def test_unit_server_concurrency_counts_overlapping_generation_not_slot_waits() -> None:
    def call(start: float, total: float, queued: float) -> RequestRecord:
        r = RequestRecord(start=start, end=start + total, output_tokens=1)
        r.take_reply(
            {
                "usage": {"completion_tokens": 1, "prompt_tokens": 1},
                "timings": {"time_to_first_token_s": 0.1, "total_s": total, "queued_s": queued},
            }
        )
        return r

    # Four calls over 2 s: batched, each generates for the whole 2 s.
    assert summarize([call(0, 2.0, 0.0) for _ in range(4)], duration=2.0)[
        "server_concurrency"
    ] == pytest.approx(4)
    # Serialized: all four arrive at once, each waits for the one slot, then generates 0.5 s.
    serial = [call(0, 0.5 * (k + 1), 0.5 * k) for k in range(4)]
    assert summarize(serial, duration=2.0)["server_concurrency"] == pytest.approx(1)
    # A server that does not report its slot wait gives no figure rather than a wrong one.
    plain = call(0, 2.0, 0.0)
    plain.server_queued = None
    assert summarize([plain], duration=2.0)["server_concurrency"] is None


def test_unit_percentiles_interpolate_like_numpy() -> None:
    d = distribution([1.0, 2.0, 3.0, 4.0], scale=1.0)
    assert d["p50"] == pytest.approx(2.5)
    assert d["p90"] == pytest.approx(3.7)
    assert d["p99"] == pytest.approx(3.97)
    assert distribution([])["p99"] is None


@pytest.mark.engine
def test_smoke_run_measures_every_contender_and_sixteen_calls_run_at_once(tmp_path: Path) -> None:
    """A benchmark, not a timed test: it checks the harness, and that calls overlap in the engine."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "smoke.json").read_text())
    workload = results["workload"]
    for name, res in results["contenders"].items():
        assert "error" not in res, (name, res.get("error"))
        assert res["peak_rss_bytes"] > 0
        for variant, levels in res["levels"].items():
            assert [s["concurrency"] for s in levels] == workload["concurrencies"]
            for s in levels:
                # Fixed output length: every side did exactly the same work.
                assert s["failed"] == 0, (name, variant, s["errors"])
                assert s["total_output_tokens"] == s["requests"] * workload["max_tokens"]
                assert s["output_throughput"] > 0
                if name != "engine":  # the engine contender runs in its own worker: no front end
                    assert s["front_end"]["cpu_ms_per_1k_tokens"] > 0, (name, variant)
    assert results["contenders"]["vllm-mcp"]["overhead_ms"]["ping"]["p50"] > 0
    assert results["contenders"]["vllm-mcp-http"]["batching"]["ratio"] > 0
    assert (tmp_path / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/ sequential" in (tmp_path / "smoke.md").read_text()
    # Concurrency reaches the engine from the MCP clients (issue 11: HTTP too, streamed, with
    # the token on): at c=16 the server generates for many calls at once, where the sequential
    # server (one slot) never has more than one. This figure is the calls' overlap, so the
    # machine's load cannot fake or hide it; the tok/s ratios are reported, not asserted here
    # (CI runs this beside another engine test on two cores: docs/performance.md has them idle).
    in_flight = {
        name: results["contenders"][name]["levels"]["stream"][-1]["server_concurrency"]
        for name in ("vllm-mcp-pipe", "vllm-mcp-http", "sequential")
    }
    assert in_flight["sequential"] <= 1.1, (in_flight, proc.stderr[-3000:])
    assert in_flight["vllm-mcp-pipe"] >= 8, (in_flight, proc.stderr[-3000:])
    assert in_flight["vllm-mcp-http"] >= 8, (in_flight, proc.stderr[-3000:])
    http16 = results["contenders"]["vllm-mcp-http"]["levels"]["stream"][-1]
    assert http16["ttft_ms"]["p50"] is not None and http16["tokens_per_chunk"] is not None


def test_unit_sse_messages_reads_events_as_the_mcp_http_contender_sees_them() -> None:
    """A real aiohttp server and client on loopback: JSON bodies, and SSE events with a
    priming event (no data), multi-line data and CRLF line ends."""
    import asyncio

    from aiohttp import ClientSession, web

    from bench.mcp_http import sse_messages

    stream = (
        b"id: 0\r\ndata:\r\n\r\n"  # a priming event, as the SDK's resumable streams send
        b'event: message\r\ndata: {"jsonrpc": "2.0", "method": "notifications/progress",\r\n'
        b'data:  "params": {"progress": 3}}\r\n\r\n'
        b'event: message\ndata: {"jsonrpc": "2.0", "id": 7, "result": {}}\n\n'
    )

    async def sse(_: web.Request) -> web.Response:
        return web.Response(body=stream, content_type="text/event-stream")

    async def plain(_: web.Request) -> web.Response:
        return web.json_response({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}})

    async def main() -> tuple[list, list]:
        app = web.Application()
        app.add_routes([web.post("/sse", sse), web.post("/json", plain)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{port}/sse") as r:
                    events = [m async for m in sse_messages(r)]
                async with http.post(f"http://127.0.0.1:{port}/json") as r:
                    bodies = [m async for m in sse_messages(r)]
        finally:
            await runner.cleanup()
        return events, bodies

    events, bodies = asyncio.run(main())
    assert [e.get("method") or e.get("id") for e in events] == ["notifications/progress", 7]
    assert events[0]["params"] == {"progress": 3}
    assert bodies == [{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}]


def test_unit_http_targets_compare_with_vllm_serve_and_fluidmcp() -> None:
    from bench import report

    def lvl(c: int, tput: float, ttft: float | None, p99: float | None = None) -> dict:
        return {"concurrency": c, "output_throughput": tput, "ttft_ms": {"p50": ttft, "p99": p99}}

    http = {
        "levels": {
            "stream": [lvl(16, 1000.0, 52.0, 70.0), lvl(64, 1500.0, 90.0, 200.0)],
            "no-stream": [lvl(16, 1040.0, None), lvl(64, 1700.0, None)],
        },
        "overhead_ms": {"ping": {"p50": 1.2}},
        "batching": {"one_s": 0.3, "eight_s": 0.45, "ratio": 1.5},
    }
    modern = {  # the 2026-07-28 era: no ping
        "levels": {
            "stream": [lvl(16, 1000.0, 60.0, 70.0), lvl(64, 1700.0, 90.0, 100.0)],
            "no-stream": [lvl(16, 1040.0, None), lvl(64, 1700.0, None)],
        },
        "overhead_ms": {"tools_list": {"p50": 2.0}},
        "batching": {"one_s": 0.3, "eight_s": 0.75, "ratio": 2.5},
    }
    results = {
        "meta": {"autogroup": 1},
        "workload": {"concurrencies": [16, 64]},
        "contenders": {
            "vllm-mcp-http": http,
            "vllm-mcp-http-2026": modern,
            "vllm-serve": {"levels": {"stream": [lvl(16, 990.0, 50.0, 60.0), lvl(64, 1600.0, 80.0, 117.0)]}},
            "fluidmcp": {"levels": {"no-stream": [lvl(16, 150.0, None), lvl(64, 150.0, None)]}},
        },
    }
    results["ratios"] = report.ratios(results)
    met: dict[str, dict[str, bool | None]] = {}
    for t in report.targets(results):
        name, client = t["target"].removesuffix("]").split(" [")
        met.setdefault(client, {})[name] = t["met"]
    assert met["Streamable HTTP, aiohttp"] == {
        "output tok/s >= 1.0 x vllm serve at c=16": True,
        "TTFT p50 within 5 ms of vllm serve at c=16 (ms difference)": True,
        "progress on >= 0.95 x progress off output tok/s at c=16": True,  # 1000 / 1040
        "output tok/s >= 1.0 x vllm serve at c=64": False,
        "TTFT p99 <= 1.5 x vllm serve's at c=64": False,  # 200 / 117
        "progress on >= 0.95 x progress off output tok/s at c=64": False,  # 1500 / 1700
        "output tok/s >= 5 x the FluidMCP gateway at c=16": True,
        "ping round trip p50 <= 1.0 ms": False,
        "8 concurrent calls <= 2.0 x one call (wall time; autogroup 1)": True,
    }
    assert met["stateless 2026-07-28 HTTP, aiohttp"] == {
        "output tok/s >= 1.0 x vllm serve at c=16": True,
        "TTFT p50 within 5 ms of vllm serve at c=16 (ms difference)": False,  # 60 against 50
        "progress on >= 0.95 x progress off output tok/s at c=16": True,
        "output tok/s >= 1.0 x vllm serve at c=64": True,
        "TTFT p99 <= 1.5 x vllm serve's at c=64": True,  # 100 / 117
        "progress on >= 0.95 x progress off output tok/s at c=64": True,
        "output tok/s >= 5 x the FluidMCP gateway at c=16": True,
        "8 concurrent calls <= 2.0 x one call (wall time; autogroup 1)": False,
    }


def test_unit_the_sessions_mode_measures_every_store(postgres_url: str, tmp_path: Path) -> None:
    """``--sessions`` needs no engine: every store, both levels, sane numbers (a real PostgreSQL)."""
    argv = ["--sessions", "--turns", "60", "--store-url", postgres_url, "--out", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *argv], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    stores = json.loads((tmp_path / "sessions.json").read_text())["stores"]
    assert set(stores) == {f"{s} c={c}" for s in ("memory", "sqlite", "postgres") for c in (1, 8)}
    for result in stores.values():
        assert result["turns"] == 60 and 0 < result["p50_ms"] <= result["p99_ms"]
    assert "| postgres | 8 |" in (tmp_path / "sessions.md").read_text()


def test_unit_front_end_cpu_counts_the_process_itself_per_token_and_message() -> None:
    import os
    import time as _time

    from bench.procs import FrontEndCpu

    with FrontEndCpu(os.getpid()) as cpu:
        t = _time.process_time()
        while _time.process_time() - t < 0.3:  # burn 0.3 s of this process's CPU
            pass
    # psutil counts clock ticks (10 ms) from /proc: close to, not exactly, the 0.3 s burnt.
    assert cpu.seconds is not None and 0.2 <= cpu.seconds < 5
    f = cpu.figures(output_tokens=2000, messages=50)
    assert f["cpu_ms_per_1k_tokens"] == pytest.approx(cpu.seconds * 1000 / 2)
    assert f["cpu_ms_per_message"] == pytest.approx(cpu.seconds * 1000 / 50)
    assert cpu.figures(0, 0)["cpu_ms_per_1k_tokens"] is None


def test_unit_docs_section_is_replaced_from_the_run_and_the_rest_kept() -> None:
    from bench import docs, report

    s = {
        "concurrency": 16,
        "output_throughput": 1234.0,
        "ttft_ms": {"p50": 12.5},
        "front_end": {"cpu_ms_per_1k_tokens": 42.0},
        "load": {"other_cpu_pct": 3.0},
    }
    results = {
        "meta": {
            "label": "idle", "started": "now", "commit": "abc", "cpu": "cpu", "cpus": 2, "memory_gib": 1,
            "python": "3", "vllm": "0", "model": "tiny", "loadavg_at_start": [0.1, 0.2, 0.3],
        },
        "workload": {"concurrencies": [16], "max_tokens": 128, "num_prompts": 128},
        "contenders": {"vllm-serve": {"levels": {"stream": [s]}, "overhead_ms": {}}},
    }  # fmt: skip
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    doc = "# Doc\nkept\n<!-- bench:idle begin -->\nold\n<!-- bench:idle end -->\ntail\n"
    out = docs.fill(doc, results)
    assert out.startswith("# Doc\nkept\n<!-- bench:idle begin -->\n")
    assert out.endswith("<!-- bench:idle end -->\ntail\n")
    assert "old" not in out
    assert "| vllm serve (HTTP, SSE) | 1234 (12.5) | 42.0 | 3 |" in out
    assert docs.fill(out, results) == out  # rerunning replaces the section again
    with pytest.raises(SystemExit, match="no '<!-- bench:idle begin -->'"):
        docs.fill("# no section\n", results)
