"""End to end: faults around a running server, and what it does about each.

- the engine core process is killed while 8 calls stream;
- the client stops reading stdout (the server must not spin), then the server is
  killed with SIGKILL (no engine process may survive it; test_persistence.py
  kills three more servers that way);
- the parent never reads stderr while thousands of calls go through at DEBUG, then
  closes stdin in the middle of a call.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import ROOT, proctree
from tests.support.models import serve_env
from tests.support.servers import RawServer, serve_command

pytestmark = pytest.mark.engine

FIGURES = ROOT / ".cache" / "reliability" / "faults.json"


def record(**figures: Any) -> None:
    """Figures for docs/reliability.md, merged into one file."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data.update(figures)
    FIGURES.write_text(json.dumps(data, indent=1))


def streaming_call(rid: int, tokens: int, token: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {
            "name": "chat_completion",
            "arguments": {
                "messages": [{"role": "user", "content": f"call {rid}"}],
                "max_tokens": tokens,
                "min_tokens": tokens,
            },
            "_meta": {"progressToken": token},
        },
    }


def warm_up(server: RawServer) -> None:
    """Initialize and wait for the model, with a real generation."""
    server.initialize()
    chat = {
        "name": "chat_completion",
        "arguments": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    }
    reply = server.request(1, "tools/call", chat, timeout=400)["result"]
    assert reply["isError"] is False, reply


def wait_all(server: RawServer, ids: set[Any], timeout: float) -> dict[Any, dict[str, Any]]:
    """The responses to ``ids``, parsing each stdout line once (thousands of them)."""
    found: dict[Any, dict[str, Any]] = {}
    seen = 0
    deadline = time.monotonic() + timeout
    while True:
        lines = server.lines[seen:]
        seen += len(lines)
        for line in lines:
            msg = json.loads(line)
            if msg.get("id") in ids and "method" not in msg:
                assert msg["id"] not in found, f"two responses for {msg['id']}"
                found[msg["id"]] = msg
        if len(found) == len(ids):
            return found
        assert time.monotonic() < deadline, f"{len(ids) - len(found)} of {len(ids)} calls unanswered"
        time.sleep(0.05)


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in proctree.alive(processes):
        t = p.cpu_times()
        total += t.user + t.system
    return total


def wait_quiet(processes: list[psutil.Process], timeout: float) -> None:
    """Until the tree spends under 0.2 CPU seconds a second (the rate asserted below), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    last = cpu_seconds(processes)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_seconds(processes)
        if now - last < 0.2:
            return
        last = now


def test_engine_killed_while_8_calls_stream(tiny_model: Path) -> None:
    server = RawServer(serve_env(tiny_model))
    processes: list[psutil.Process] = []
    try:
        warm_up(server)
        processes = proctree.tree(server.proc.pid)
        engine = [p for p in processes if "EngineCore" in p.name() or "EngineCore" in " ".join(p.cmdline())]
        assert len(engine) == 1, [p.name() for p in processes]
        for i in range(8):
            server.send(streaming_call(100 + i, 900, f"s{i}"))
        for i in range(8):
            server.wait_for(lambda m, i=i: m.get("params", {}).get("progressToken") == f"s{i}")
        engine[0].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        code = server.proc.wait(30)
        exit_after = time.monotonic() - killed
    finally:
        proctree.kill_all(processes)
        with contextlib.suppress(OSError):
            server.close(timeout=5)
    assert code == 1
    assert exit_after < 10, f"exited {exit_after:.1f} s after the engine died"
    for i in range(8):
        result = server.response(100 + i, timeout=1)["result"]
        assert result["isError"] is True
        assert "the vLLM engine process died" in result["content"][0]["text"]
        assert "restart" in result["content"][0]["text"]
    assert proctree.wait_gone(processes) == []
    log = bytes(server.stderr).decode(errors="replace")
    assert "the vLLM engine died; exiting so the supervisor restarts the server" in log
    record(engine_killed_calls_answered=8, engine_killed_exit_seconds=round(exit_after, 1))


class SlowReader(RawServer):
    """A client that stops reading stdout while ``reading`` is clear."""

    def __init__(self, env: dict[str, str]) -> None:
        self.reading = threading.Event()
        self.reading.set()
        super().__init__(env)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        while True:
            self.reading.wait()
            line = self.proc.stdout.readline()
            if not line:
                return
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()


def test_client_that_stops_reading_causes_no_busy_loop_then_sigkill_leaves_nothing(
    tiny_model: Path,
) -> None:
    server = SlowReader(serve_env(tiny_model))
    processes: list[psutil.Process] = []
    try:
        warm_up(server)
        processes = proctree.tree(server.proc.pid)
        server.reading.clear()
        time.sleep(0.2)
        for i in range(8):
            server.send(streaming_call(100 + i, 300, f"r{i}"))
        # Enough answers to fill any pipe: ~3 KB each.
        writer = threading.Thread(
            target=lambda: [
                server.send({"jsonrpc": "2.0", "id": 1000 + k, "method": "tools/list"}) for k in range(2000)
            ],
            daemon=True,
        )
        writer.start()
        wait_quiet(processes, 120)  # the generations finish; their answers have nowhere to go
        before = cpu_seconds(processes)
        time.sleep(5)
        spent = cpu_seconds(processes) - before
        assert server.proc.poll() is None
        assert spent < 1.0, f"{spent:.2f} CPU seconds in 5 s while stdout was not read"
        # Nothing was lost meanwhile: reading again delivers every answer.
        server.reading.set()
        writer.join(60)
        replies = wait_all(server, {1000 + k for k in range(2000)} | {100 + i for i in range(8)}, 120)
        for i in range(8):
            result = replies[100 + i]["result"]
            assert result["structuredContent"]["usage"]["completion_tokens"] == 300
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(60)  # the kernel tears down a large process slowly on a loaded machine
        left = proctree.wait_gone(processes)
    finally:
        proctree.kill_all(processes)
        with contextlib.suppress(OSError):
            server.close(timeout=5)
    assert left == [], f"survived SIGKILL of the server: {[p.name() for p in left]}"
    record(stalled_stdout_cpu_seconds_per_5s=round(spent, 2), sigkill_survivors=0)


class DeafParent(RawServer):
    """A parent that gives the server a stderr pipe and never reads it (FluidMCP does this).

    The pipe is full before the server starts, so every byte it writes there would block.
    """

    def __init__(self, env: dict[str, str]) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, b"x" * 4096)
        os.set_blocking(write_end, True)
        self.stderr_pipe = read_end
        self.proc = subprocess.Popen(
            serve_command(), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=write_end
        )
        os.close(write_end)
        self._buffers()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def unread_bytes(self) -> int:
        buf = array.array("i", [0])
        fcntl.ioctl(self.stderr_pipe, termios.FIONREAD, buf)
        return buf[0]


def test_full_stderr_pipe_then_stdin_closed_mid_call(tiny_model: Path) -> None:
    server = DeafParent(serve_env(tiny_model, VLLM_LOG_LEVEL="DEBUG", VLLM_MCP_SHUTDOWN_GRACE="60"))
    processes: list[psutil.Process] = []
    try:
        warm_up(server)
        processes = proctree.tree(server.proc.pid)
        calls = 3000
        ids = set(range(10_001, 10_001 + calls))
        for rid in sorted(ids):
            if rid % 2:
                server.send({"jsonrpc": "2.0", "id": rid, "method": "ping"})
            else:
                info = {"name": "model_info", "arguments": {}}
                server.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": info})
        replies = wait_all(server, ids, 180)
        assert all("result" in r for r in replies.values())
        assert server.unread_bytes() >= 65_536, "the stderr pipe was expected to stay full"
        # The client closes stdin while a call streams: it still completes, the server exits 0.
        server.send(streaming_call(50, 200, "last"))
        server.wait_for(lambda m: m.get("params", {}).get("progressToken") == "last")
        closed = time.monotonic()
        code = server.close(timeout=90)
        exit_after = time.monotonic() - closed
    finally:
        proctree.kill_all(processes)
        os.close(server.stderr_pipe)
    assert code == 0
    result = server.response(50, timeout=1)["result"]
    assert result["structuredContent"]["usage"]["completion_tokens"] == 200
    assert exit_after < 30
    assert proctree.wait_gone(processes) == []
    record(calls_through_full_stderr_pipe=calls, stdin_closed_exit_seconds=round(exit_after, 1))
