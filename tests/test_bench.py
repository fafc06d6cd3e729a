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


def test_unit_percentiles_interpolate_like_numpy() -> None:
    d = distribution([1.0, 2.0, 3.0, 4.0], scale=1.0)
    assert d["p50"] == pytest.approx(2.5)
    assert d["p90"] == pytest.approx(3.7)
    assert d["p99"] == pytest.approx(3.97)
    assert distribution([])["p99"] is None


@pytest.mark.engine
def test_smoke_run_measures_every_contender_and_beats_the_sequential_server(tmp_path: Path) -> None:
    """A benchmark, not a timed test: it checks the harness, and only the gross ratio."""
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
    assert results["contenders"]["vllm-mcp"]["overhead_ms"]["ping"]["p50"] > 0
    assert (tmp_path / "smoke.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/ sequential" in (tmp_path / "smoke.md").read_text()
    # The server's own capability, as a client that reads its output promptly sees it
    # (the SDK's stdio_client delays delivery on this machine: README.md, Performance).
    at16 = next(r for r in results["ratios"] if r["concurrency"] == 16 and r["client"] == "vllm-mcp-pipe")
    assert at16["mcp_vs_sequential"] >= 3, proc.stderr[-3000:]
