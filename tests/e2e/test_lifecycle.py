"""End to end: start-up failures, configuration errors and a clean SIGTERM under load."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import pytest

from tests.support.models import serve_env
from tests.support.proctree import tree, wait_gone
from tests.support.servers import RawServer, serve_command


def test_invalid_setting_exits_2_with_one_line_and_nothing_on_stdout(tiny_model: Any) -> None:
    env = serve_env(tiny_model, VLLM_MAX_SESSIONS="many")
    proc = subprocess.run(serve_command(), env=env, input=b"", capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert lines == [
        "vllm-mcp: invalid VLLM_MAX_SESSIONS='many': input should be a valid integer, "
        "unable to parse string as an integer"
    ]


def test_invalid_option_names_the_variable(tiny_model: Any) -> None:
    env = serve_env(tiny_model)
    proc = subprocess.run(
        [*serve_command(), "--gpu-memory-utilization", "1.5"],
        env=env,
        input=b"",
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == b""
    assert "VLLM_GPU_MEMORY_UTILIZATION='1.5'" in proc.stderr.decode()
    assert "less than or equal to 1" in proc.stderr.decode()


@pytest.mark.engine
def test_model_that_cannot_load_is_reported_to_calls(tmp_path: Any, tiny_model: Any) -> None:
    missing = tmp_path / "no-such-model"
    server = RawServer(serve_env(missing))
    try:
        server.initialize()
        params = {"name": "chat_completion", "arguments": {"messages": [{"role": "user", "content": "hi"}]}}
        reply = server.request(1, "tools/call", params, timeout=120)["result"]
        assert reply["isError"] is True
        assert "model failed" in reply["content"][0]["text"]
        assert str(missing) in reply["content"][0]["text"]
        info = server.request(2, "tools/call", {"name": "model_info", "arguments": {}})["result"]
        assert info["structuredContent"]["server_state"] == "failed"
        assert info["structuredContent"]["failure"]
    finally:
        assert server.close() == 0


@pytest.mark.engine
def test_bad_engine_argument_is_a_clear_failure(tiny_model: Any) -> None:
    server = RawServer(serve_env(tiny_model, VLLM_MCP_ENGINE_ARGS='{"enforce_eagr": true}'))
    try:
        server.initialize()
        info = server.request(
            1,
            "tools/call",
            {"name": "chat_completion", "arguments": {"messages": [{"role": "user", "content": "hi"}]}},
        )["result"]
        text = info["content"][0]["text"]
        assert "unknown engine argument 'enforce_eagr'" in text and "enforce_eager" in text
    finally:
        server.close()


@pytest.mark.engine
def test_sigterm_lets_in_flight_calls_finish_and_leaves_no_process(tiny_model: Any) -> None:
    server = RawServer(serve_env(tiny_model, VLLM_MCP_SHUTDOWN_GRACE="60"))
    server.initialize()
    ready = server.request(
        1,
        "tools/call",
        {
            "name": "chat_completion",
            "arguments": {"messages": [{"role": "user", "content": "warm up"}], "max_tokens": 2},
        },
        timeout=180,
    )
    assert not ready["result"]["isError"]
    members = tree(server.proc.pid)
    assert len(members) >= 2, "expected the engine in a child process"
    for i in range(8):
        params = {
            "name": "chat_completion",
            "arguments": {
                "messages": [{"role": "user", "content": f"call {i}"}],
                "max_tokens": 200,
                "min_tokens": 200,
            },
            "_meta": {"progressToken": f"t{i}"},
        }
        server.send({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call", "params": params})
    server.wait_for(lambda m: m.get("method") == "notifications/progress")
    server.proc.send_signal(signal.SIGTERM)
    # Calls arriving once the signal is handled are refused, not left unanswered. Until the
    # handler has run a ping is still answered, so keep asking until one is refused.
    pings = []
    for rid in range(200, 250):
        server.send({"jsonrpc": "2.0", "id": rid, "method": "ping"})
        pings.append(rid)
        reply = server.response(rid, timeout=30)
        if "error" in reply:
            assert reply["error"]["code"] == -32000 and "shutting down" in reply["error"]["message"]
            break
        time.sleep(0.1)
    else:
        raise AssertionError("no request was refused after SIGTERM")
    assert server.proc.wait(120) == 0
    for i in range(8):
        result = server.response(100 + i, timeout=1)["result"]
        assert result["isError"] is False
        assert result["structuredContent"]["usage"]["completion_tokens"] == 200
    assert all(len([m for m in server.messages() if m.get("id") == rid]) == 1 for rid in pings)
    # The engine's processes go after the server: wait for that (a slow machine is slower), then judge.
    assert wait_gone(members, timeout=10) == []
