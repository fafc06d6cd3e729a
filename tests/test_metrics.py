"""The Prometheus textfile exporter, without an engine: names, labels, the atomic file, promtool.

vLLM's series are stood in for by a collector registered in prometheus_client's default
registry under a ``vllm:`` name, which is where vLLM puts its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from vllm_mcp import metrics as metrics_module
from vllm_mcp.metrics import ENGINE_STATES, Metrics

MODEL = "org/tiny-model"


def families(m: Metrics) -> dict[str, prometheus_client.Metric]:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def value(m: Metrics, sample_name: str, **labels: str) -> float:
    """The one sample called ``sample_name`` whose labels include ``labels``."""
    found = [
        s.value
        for f in families(m).values()
        for s in f.samples
        if s.name == sample_name and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (sample_name, labels, found)
    return found[0]


def exercised(textfile: Path | None = None) -> Metrics:
    """A Metrics object after one of every kind of update."""
    m = Metrics(MODEL, textfile, 0.05)
    m.set_engine_state("loading")
    m.set_engine_state("ready")
    for outcome in ("ok", "ok", "invalid"):
        m.request_started("chat_completion")
        m.request_finished("chat_completion", outcome, 0.3)
    m.request_started("model_info")
    m.request_finished("model_info", "ok", 0.001)
    m.request_started("chat_completion")  # still in flight
    m.observe_ttft(0.02)
    m.add_tokens(11, 7)
    m.add_tokens(4, 5)
    m.set_queued(2)
    m.set_sessions(3)
    m.session_evicted()
    m.set_log_lines_dropped(5)
    m.set_log_lines_dropped(3)  # a total that went backwards is ignored
    m.set_log_lines_dropped(8)
    return m


class FakeVllm(Collector):
    """Families named the way vLLM names its own in the default registry."""

    def collect(self) -> Iterator[prometheus_client.Metric]:
        counter = CounterMetricFamily(
            "vllm:test_prompt_tokens", "Prompt tokens (test).", labels=["model_name", "engine"]
        )
        counter.add_metric([MODEL, "0"], 42)
        yield counter
        gauge = GaugeMetricFamily("vllm:test_num_requests_running", "Running (test).", labels=["engine"])
        gauge.add_metric(["0"], 1)
        yield gauge
        # A gauge whose name ends in _total (vLLM has some): "_total" is for counters only.
        odd = GaugeMetricFamily("vllm:test_cache_blocks_total", "Blocks (test).")
        odd.add_metric([], 64)
        yield odd
        hist = HistogramMetricFamily("vllm:test_e2e_latency_seconds", "Latency (test).", labels=["engine"])
        hist.add_metric(["0"], buckets=[("0.5", 1), ("1.0", 3), ("+Inf", 4)], sum_value=3.5)
        yield hist


@pytest.fixture
def fake_vllm() -> Iterator[None]:
    collector = FakeVllm()
    prometheus_client.REGISTRY.register(collector)
    try:
        yield
    finally:
        prometheus_client.REGISTRY.unregister(collector)


# --- the file -----------------------------------------------------------------------------


def test_write_replaces_the_file_atomically_with_mode_0644(tmp_path: Path) -> None:
    path = tmp_path / "vllm_mcp.prom"
    m = Metrics(MODEL, path, 1.0)
    old_umask = os.umask(0o077)  # the server's umask must not make the file unreadable
    try:
        m.write()
        assert path.stat().st_mode & 0o777 == 0o644
        with path.open("rb") as before:  # a reader that opened the old file ...
            m.request_started("chat_completion")
            m.request_finished("chat_completion", "ok", 0.1)
            m.write()
            old = before.read()
    finally:
        os.umask(old_umask)
    # ... still reads the old file whole: the new one was renamed over it, not rewritten.
    assert b'outcome="ok"' not in old and old.endswith(b"\n")
    assert b'vllm_mcp_requests_total{caller="",model="org/tiny-model",outcome="ok"' in path.read_bytes()
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vllm_mcp.prom"]  # no temporary left


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vllm_mcp.prom"

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics_module.os, "replace", refuse)
    Metrics(MODEL, path, 1.0).write()  # logged, not raised
    assert list(tmp_path.iterdir()) == []


def test_write_failure_is_logged_once_and_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "metrics"  # does not exist yet
    path = directory / "vllm_mcp.prom"
    m = Metrics(MODEL, path, 1.0)
    caplog.set_level(logging.INFO, logger="vllm_mcp.metrics")
    for _ in range(3):
        m.write()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].path == str(path)  # type: ignore[attr-defined]
    assert not path.exists()

    directory.mkdir()
    m.write()
    assert path.is_file()
    assert any("writable again" in r.getMessage() for r in caplog.records)

    # It fails again later (the directory is now a file): one more warning, not one per write.
    caplog.clear()
    shutil.rmtree(directory)
    directory.write_text("not a directory")
    m.write()
    m.write()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_the_periodic_writer_survives_a_missing_directory(tmp_path: Path) -> None:
    directory = tmp_path / "later"
    path = directory / "vllm_mcp.prom"
    m = Metrics(MODEL, path, 0.02)

    async def scenario() -> None:
        task = asyncio.create_task(m.run())
        await asyncio.sleep(0.1)
        assert not task.done()  # failing writes did not end the loop
        directory.mkdir()
        for _ in range(100):
            if path.exists():
                break
            await asyncio.sleep(0.02)
        m.set_engine_state("ready")
        await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(scenario())
    assert value_in_file(path, "vllm_mcp_engine_state", vllm_mcp_engine_state="ready") == 1


def value_in_file(path: Path, sample_name: str, **labels: str) -> float:
    for f in text_string_to_metric_families(path.read_text()):
        for s in f.samples:
            if s.name == sample_name and labels.items() <= s.labels.items():
                return s.value
    raise AssertionError(f"{sample_name} {labels} not in {path}")


def test_no_textfile_means_no_writing(tmp_path: Path) -> None:
    m = Metrics(MODEL, None, 0.01)
    m.write()
    asyncio.run(asyncio.wait_for(m.run(), 1))  # returns at once instead of looping
    assert list(tmp_path.iterdir()) == []


# --- names, labels, values ------------------------------------------------------------------


def test_own_series_are_vllm_mcp_and_carry_the_model() -> None:
    m = exercised()
    vllm_loaded = any(f.name.startswith("vllm:") for f in prometheus_client.REGISTRY.collect())
    own = {name: f for name, f in families(m).items() if name.startswith("vllm_mcp_")}
    for name in families(m):
        # Anything else can only be a copy of vLLM's own series (none unless vLLM is imported).
        assert name in own or (vllm_loaded and name.startswith("vllm_")), name
    for family in own.values():
        for sample in family.samples:
            assert sample.labels.get("model") == MODEL, sample
    # What the issue asks for is there.
    assert {
        "vllm_mcp_requests",
        "vllm_mcp_request_duration_seconds",
        "vllm_mcp_time_to_first_token_seconds",
        "vllm_mcp_prompt_tokens",
        "vllm_mcp_generation_tokens",
        "vllm_mcp_requests_in_flight",
        "vllm_mcp_requests_queued",
        "vllm_mcp_active_sessions",
        "vllm_mcp_session_evictions",
        "vllm_mcp_engine_state",
    } <= own.keys()
    assert own["vllm_mcp_request_duration_seconds"].type == "histogram"
    assert own["vllm_mcp_time_to_first_token_seconds"].type == "histogram"


def test_values_follow_the_updates() -> None:
    m = exercised()
    assert value(m, "vllm_mcp_requests_total", tool="chat_completion", outcome="ok") == 2
    assert value(m, "vllm_mcp_requests_total", tool="chat_completion", outcome="invalid") == 1
    assert value(m, "vllm_mcp_requests_total", tool="model_info", outcome="ok") == 1
    assert value(m, "vllm_mcp_request_duration_seconds_count", tool="chat_completion") == 3
    assert value(m, "vllm_mcp_request_duration_seconds_sum", tool="chat_completion") == pytest.approx(0.9)
    assert value(m, "vllm_mcp_request_duration_seconds_bucket", tool="model_info", le="0.05") == 1
    assert value(m, "vllm_mcp_requests_in_flight") == 1
    assert value(m, "vllm_mcp_prompt_tokens_total") == 15
    assert value(m, "vllm_mcp_generation_tokens_total") == 12
    assert value(m, "vllm_mcp_time_to_first_token_seconds_count") == 1
    assert value(m, "vllm_mcp_requests_queued") == 2
    assert value(m, "vllm_mcp_active_sessions") == 3
    assert value(m, "vllm_mcp_session_evictions_total") == 1
    assert value(m, "vllm_mcp_log_lines_dropped_total") == 8
    states = {s: value(m, "vllm_mcp_engine_state", vllm_mcp_engine_state=s) for s in ENGINE_STATES}
    assert states == {s: float(s == "ready") for s in ENGINE_STATES}
    m.set_engine_state("no-such-state")  # ignored, not a new label value
    assert value(m, "vllm_mcp_engine_state", vllm_mcp_engine_state="ready") == 1


def test_no_process_or_python_series() -> None:
    # The default registry has them (that is why ours is private) ...
    default = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "\npython_" in default or default.startswith("python_")
    # ... the textfile must not: node_exporter exports its own, and duplicates break its scrape.
    for line in exercised().render().decode().splitlines():
        name = line.split()[2] if line.startswith("#") else line
        assert not name.startswith(("process_", "python_")), line


def test_vllm_series_are_copied_and_renamed(fake_vllm: None) -> None:
    m = exercised()
    text = m.render().decode()
    got = families(m)
    assert got["vllm_test_prompt_tokens"].type == "counter"
    assert value(m, "vllm_test_prompt_tokens_total", model_name=MODEL, engine="0") == 42
    assert value(m, "vllm_test_num_requests_running", engine="0") == 1
    assert value(m, "vllm_test_cache_blocks") == 64
    assert value(m, "vllm_test_e2e_latency_seconds_bucket", le="1.0") == 3
    assert value(m, "vllm_test_e2e_latency_seconds_count") == 4
    assert value(m, "vllm_test_e2e_latency_seconds_sum") == 3.5
    assert got["vllm_test_e2e_latency_seconds"].documentation == "Latency (test)."
    assert ":" not in "".join(line.split("{")[0] for line in text.splitlines() if not line.startswith("#"))


def test_vllm_series_disappear_with_their_collector() -> None:
    assert not any(name.startswith("vllm_test_") for name in families(exercised()))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)")
def test_promtool_accepts_the_file(tmp_path: Path, fake_vllm: None) -> None:
    path = tmp_path / "vllm_mcp.prom"
    m = exercised(path)
    m.write()
    result = subprocess.run(
        ["promtool", "check", "metrics"], stdin=path.open("rb"), capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == b""  # no lint warnings either


def test_a_worker_writes_its_own_file_with_every_series_labelled(tmp_path: Path) -> None:
    m = Metrics(MODEL, tmp_path / "vllm-mcp.prom", 1.0, worker=1)
    m.request_started("chat_completion")
    m.request_finished("chat_completion", "ok", 0.3)
    m.write()
    assert not (tmp_path / "vllm-mcp.prom").exists()
    text = (tmp_path / "vllm-mcp-worker1.prom").read_text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    assert samples and all(s.labels.get("worker") == "1" for s in samples)
    assert any(s.name == "vllm_mcp_requests_total" and s.value == 1 for s in samples)


def test_each_served_model_has_its_own_series() -> None:
    m = Metrics("alpha", None, 60)
    m.add_models(["alpha", "vectors"])
    text = m.render().decode()
    assert 'vllm_mcp_prompt_tokens_total{model="vectors"} 0.0' in text  # there before a call
    m.add_tokens(6, 0, "vectors")
    m.add_tokens(3, 2)  # no model: the server's label
    m.request_started("embed")
    m.request_finished("embed", "ok", 0.1, None, "vectors")
    m.set_engine_state("failed", "vectors")
    m.set_engine_state("ready")
    text = m.render().decode()
    assert 'vllm_mcp_prompt_tokens_total{model="vectors"} 6.0' in text
    assert 'vllm_mcp_prompt_tokens_total{model="alpha"} 3.0' in text
    assert 'vllm_mcp_generation_tokens_total{model="vectors"} 0.0' in text  # embeddings generate nothing
    assert 'vllm_mcp_requests_total{caller="",model="vectors",outcome="ok",tool="embed"} 1.0' in text
    assert 'vllm_mcp_engine_state{model="vectors",vllm_mcp_engine_state="failed"} 1.0' in text
    assert 'vllm_mcp_engine_state{model="alpha",vllm_mcp_engine_state="ready"} 1.0' in text
