"""End to end: the seed's "Direct testing" commands, one line piped into `vllm-mcp serve`.

Each gets an error that names what is missing, and the server exits soon after the end
of its input without waiting for the model to load (the load is cancelled, no engine
process is left). Figures measured here are in docs/clients.md.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.support.models import serve_env
from tests.support.proctree import kill_all, wait_gone
from tests.support.servers import serve_command

pytestmark = pytest.mark.engine

SEED_COMMANDS = [
    (
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}',
        "initialize: params.protocolVersion is missing",
    ),
    ('{"jsonrpc":"2.0","id":2,"method":"tools/list"}', "send initialize first: tools/list"),
    (
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"chat_completion","arguments":'
        '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":50}}}',
        "send initialize first: tools/call",
    ),
]


@pytest.mark.parametrize(("line", "expected"), SEED_COMMANDS)
def test_the_seeds_one_line_commands_are_told_what_to_send(
    tiny_model: Path, line: str, expected: str
) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        serve_command(),
        input=line + "\n",
        env=serve_env(tiny_model),
        capture_output=True,
        text=True,
        timeout=300,
    )
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    (reply,) = [json.loads(out) for out in proc.stdout.splitlines()]
    assert reply["id"] == json.loads(line)["id"]
    assert reply["error"]["code"] == -32602 and reply["error"]["message"].startswith(expected)
    assert '"protocolVersion":"2025-11-25"' in reply["error"]["message"]  # the line to send
    # It did not wait for the model: the load was cancelled.
    assert "model ready" not in proc.stderr and "model load cancelled" in proc.stderr
    print(f"exit after {took:.1f} s")


def engine_core(server: psutil.Process) -> list[psutil.Process]:
    found = []
    for p in server.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "EngineCore" in " ".join(p.cmdline()):
                found.append(p)
    return found


def test_end_of_input_during_the_load_stops_the_engine_processes(tiny_model: Path) -> None:
    proc = subprocess.Popen(
        serve_command(),
        env=serve_env(tiny_model),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    me = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and not engine_core(me) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the engine core runs (vLLM starts short-lived helpers first)
        engine = me.children(recursive=True)
        assert engine_core(me), "no engine process started"
        assert proc.stdin is not None
        proc.stdin.close()
        started = time.monotonic()
        proc.wait(60)
        took = time.monotonic() - started
        assert proc.returncode == 0
        assert wait_gone(engine) == []
        assert took < 20, f"exit took {took:.1f} s after end of input"
        print(f"exit {took:.1f} s after end of input, {len(engine)} engine processes stopped")
    finally:
        kill_all([me, *me.children(recursive=True)] if proc.poll() is None else [])
