"""End to end: the metrics textfile of a real `vllm-mcp serve`, checked by promtool and served by a
real node_exporter.

One server for the module: a few real calls, then the file is read while the server runs
(promtool, our counters against the calls' own usage, vLLM's series), node_exporter's textfile
collector serves it on a loopback port, and after the server exits the file holds its last word.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.models import serve_env
from tests.support.servers import McpClient
from vllm_mcp.engine import warmup

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(
        shutil.which("promtool") is None or shutil.which("prometheus-node-exporter") is None,
        reason="needs Debian's prometheus and prometheus-node-exporter packages",
    ),
]

CHATS = 3


@dataclass
class Run:
    textfile: Path
    model_name: str
    usages: list[dict[str, int]] = field(default_factory=list)
    invalid_message: str = ""
    live: str = ""  # the textfile while the server was running, after the calls
    scraped: str = ""  # node_exporter's /metrics at that time
    final: str = ""  # the textfile after the server exited


def samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]


def one(text: str, name: str, **labels: str) -> float:
    found = samples(text, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def scrape_node_exporter(directory: Path) -> str:
    """Start node_exporter with only the textfile collector on ``directory``; one scrape."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "prometheus-node-exporter",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={directory}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"node_exporter did not start: {proc.stderr.read()!r}") from None
                time.sleep(0.2)
        assert response.status_code == 200, response.text
        return response.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture(scope="module")
def run(tiny_model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    directory = tmp_path_factory.mktemp("textfile")
    textfile = directory / "vllm_mcp.prom"
    env = serve_env(
        tiny_model,
        VLLM_MCP_METRICS_TEXTFILE=str(textfile),
        VLLM_MCP_METRICS_INTERVAL="0.5",
        VLLM_DEFAULT_MAX_TOKENS="16",
    )
    client = McpClient(env)
    try:
        info = client.wait_ready()
        r = Run(textfile=textfile, model_name=info["model_name"])
        for i in range(CHATS):
            result = client.chat(f"count to {i + 3}", max_tokens=4 + 3 * i, seed=i)
            r.usages.append(result["usage"])
        bad = client.call("chat_completion", {"messages": [{"role": "user", "content": "hi"}], "top_p": 7})
        assert bad.is_error
        r.invalid_message = bad.content[0].text

        # The file is rewritten every 0.5 s: wait for one written after the last call.
        def caught_up() -> bool:
            if not textfile.exists():
                return False
            text = textfile.read_text()
            return samples(text, "vllm_mcp_requests_total", tool="chat_completion", outcome="invalid") == [1]

        wait_for(caught_up, 15, f"the textfile never showed the calls: {textfile}")
        r.live = textfile.read_text()
        r.scraped = scrape_node_exporter(directory)
    finally:
        client.close()
    r.final = textfile.read_text()
    yield r


def test_the_file_passes_promtool(run: Run) -> None:
    for text in (run.live, run.final):
        result = subprocess.run(
            ["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout + result.stderr == b""  # not even a lint warning


def test_requests_by_tool_and_outcome_match_the_calls(run: Run) -> None:
    assert "top_p" in run.invalid_message
    text, model = run.live, run.model_name
    assert one(text, "vllm_mcp_requests_total", tool="chat_completion", outcome="ok", model=model) == CHATS
    assert one(text, "vllm_mcp_requests_total", tool="chat_completion", outcome="invalid") == 1
    assert one(text, "vllm_mcp_request_duration_seconds_count", tool="chat_completion") == CHATS + 1
    assert one(text, "vllm_mcp_time_to_first_token_seconds_count") == CHATS
    assert one(text, "vllm_mcp_requests_in_flight") == 0
    assert one(text, "vllm_mcp_engine_state", vllm_mcp_engine_state="ready") == 1
    # Every series of ours names the model.
    for f in text_string_to_metric_families(text):
        if f.name.startswith("vllm_mcp_"):
            assert all(s.labels.get("model") == model for s in f.samples), f.name


def test_token_counters_match_the_calls_usage(run: Run) -> None:
    generated = sum(u["completion_tokens"] for u in run.usages)
    prompted = sum(u["prompt_tokens"] for u in run.usages)
    assert generated > 0 and prompted > 0
    assert one(run.live, "vllm_mcp_generation_tokens_total") == generated
    assert one(run.live, "vllm_mcp_prompt_tokens_total") == prompted


def test_vllm_engine_series_are_in_the_file_renamed(run: Run) -> None:
    text = run.live
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert not [n for n in names if ":" in n]
    assert any(n.startswith("vllm_") and not n.startswith("vllm_mcp_") for n in names)
    # vLLM's own counters, copied from its registry, agree with ours (and the load's warm-up).
    assert sum(samples(text, "vllm_generation_tokens_total")) == warmup.TOKENS + sum(
        u["completion_tokens"] for u in run.usages
    )
    # The invalid call never got there.
    assert sum(samples(text, "vllm_request_success_total")) == warmup.REQUESTS + CHATS
    assert samples(text, "vllm_num_requests_running")
    assert samples(text, "vllm_kv_cache_usage_perc")
    assert not [line for line in text.splitlines() if line.startswith(("process_", "python_"))]


def test_node_exporter_serves_the_series(run: Run) -> None:
    scraped, model = run.scraped, run.model_name
    # The collector read the file without complaint ...
    assert one(scraped, "node_textfile_scrape_error") == 0
    assert samples(scraped, "node_textfile_mtime_seconds", file=str(run.textfile)) or samples(
        scraped, "node_textfile_mtime_seconds", file=run.textfile.name
    )
    # ... and serves our series with the values in the file.
    for name, labels in [
        ("vllm_mcp_requests_total", {"tool": "chat_completion", "outcome": "ok", "model": model}),
        ("vllm_mcp_requests_total", {"tool": "chat_completion", "outcome": "invalid"}),
        ("vllm_mcp_generation_tokens_total", {}),
        ("vllm_mcp_request_duration_seconds_bucket", {"tool": "chat_completion", "le": "+Inf"}),
        ("vllm_generation_tokens_total", {}),
    ]:
        assert sum(samples(scraped, name, **labels)) == sum(samples(run.live, name, **labels)) > 0, name


def test_the_last_write_at_exit_says_stopped(run: Run) -> None:
    states = {
        s.labels["vllm_mcp_engine_state"]: s.value
        for f in text_string_to_metric_families(run.final)
        for s in f.samples
        if s.name == "vllm_mcp_engine_state"
    }
    assert states["stopped"] == 1 and sum(states.values()) == 1
    # Nothing was lost between the last periodic write and the final one.
    assert one(run.final, "vllm_mcp_generation_tokens_total") == one(
        run.live, "vllm_mcp_generation_tokens_total"
    )
    assert sorted(p.name for p in run.textfile.parent.iterdir()) == ["vllm_mcp.prom"]
