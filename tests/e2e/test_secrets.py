"""End to end: the Hugging Face token never shows, and the stdio server opens no network socket.

(vLLM's worker process does listen on loopback ports for torch.distributed; see
docs/reliability.md.)

A recognisable fake token is set; every command and every tool runs; stdout,
stderr, the log file, model_info, the metrics textfile and the command lines of
the whole process tree are searched for it (and for a distinctive piece of it).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import proctree
from tests.support.models import serve_env
from tests.support.servers import RawServer, serve_command

TOKEN = "hf_FAKEtokenForLeakTests0123456789abcdefXYZ"
GATEWAY_TOKEN = "fmcp-bearer-FAKE-9f8e7d6c5b4a"  # FluidMCP's, inherited by the server it spawns
PIECES = [TOKEN, TOKEN[3:20], TOKEN[-16:], GATEWAY_TOKEN]


def assert_clean(where: str, data: bytes | str) -> None:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    for piece in PIECES:
        assert piece not in text, f"the token (or {piece!r}) appears in {where}"


def env_with_token(model: Path | str, tmp: Path, **extra: str) -> dict[str, str]:
    return serve_env(
        model,
        HUGGING_FACE_HUB_TOKEN=TOKEN,
        FMCP_BEARER_TOKEN=GATEWAY_TOKEN,
        HF_HUB_OFFLINE="1",
        VLLM_MCP_CACHE_DIR=str(tmp / "cache"),
        **extra,
    )


def inet_connections(processes: list[psutil.Process]) -> list[Any]:
    found = []
    for p in proctree.alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):
            found += [(p.pid, p.name(), c) for c in p.net_connections(kind="inet")]
    return found


def is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def command_lines(processes: list[psutil.Process]) -> str:
    lines = []
    for p in proctree.alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):
            lines.append(" ".join(p.cmdline()))
    return "\n".join(lines)


@pytest.mark.engine
def test_serve_with_every_tool_shows_no_token_and_opens_no_socket(tiny_model: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    metrics = tmp_path / "metrics.prom"
    env = env_with_token(
        tiny_model,
        tmp_path,
        VLLM_LOG_LEVEL="DEBUG",
        VLLM_MCP_LOG_FILE=str(log_file),
        VLLM_MCP_METRICS_TEXTFILE=str(metrics),
        VLLM_MCP_METRICS_INTERVAL="0.5",
    )
    server = RawServer(env)
    processes: list[psutil.Process] = []
    try:
        server.initialize()
        assert inet_connections(proctree.tree(server.proc.pid)) == []  # before the engine starts
        chat = {
            "name": "chat_completion",
            "arguments": {
                "messages": [{"role": "user", "content": "hello"}],
                "session_id": "secret-test",
                "max_tokens": 8,
            },
            "_meta": {"progressToken": "p"},
        }
        assert server.request(1, "tools/call", chat, timeout=400)["result"]["isError"] is False
        processes = proctree.tree(server.proc.pid)
        assert len(processes) >= 2
        info = server.request(2, "tools/call", {"name": "model_info", "arguments": {}})["result"]
        assert_clean("model_info", json.dumps(info))
        server.request(3, "tools/list")
        server.request(4, "tools/call", {"name": "end_session", "arguments": {"session_id": "secret-test"}})
        bad = server.request(5, "tools/call", {"name": "chat_completion", "arguments": {"messages": 1}})
        assert bad["result"]["isError"] is True
        server.request(6, "tools/call", {"name": "nope", "arguments": {}})
        server.send(b"{broken")
        connections = inet_connections(processes)
        assert [c for c in connections if c[0] == server.proc.pid] == [], "the server process itself"
        # vLLM's worker sets up torch.distributed (gloo), which listens on loopback ports
        # even for one CPU worker; nothing may listen on, or talk to, any other address.
        outside = [
            c
            for c in connections
            if not is_loopback(c[2].laddr.ip) or (c[2].raddr and not is_loopback(c[2].raddr.ip))
        ]
        assert outside == [], f"sockets beyond loopback: {outside}"
        assert all(c[1] == "VLLM::Worker" for c in connections), connections
        assert_clean("command lines of the server tree", command_lines(processes))
        time.sleep(1.2)  # one more metrics write
    finally:
        code = server.close(timeout=120)
    assert code == 0
    assert_clean("stdout", b"".join(server.lines))
    assert_clean("stderr", bytes(server.stderr))
    assert log_file.stat().st_size > 10_000  # DEBUG: plenty was logged, none of it the token
    assert_clean("the log file", log_file.read_bytes())
    assert "vllm_mcp_" in metrics.read_text()
    assert_clean("the metrics textfile", metrics.read_bytes())
    # The token did reach the settings: the log shows it set, masked.
    assert f"<set, {len(TOKEN)} characters>" in log_file.read_text()


COMMANDS = [
    ["doctor", "--json"],
    ["config", "show"],
    ["config", "show", "--json"],
    ["config", "validate"],
    ["prefetch"],
    ["--help"],
    ["serve", "--help"],
]


def available(args: list[str]) -> bool:
    """Commands other branches add; each is checked once it exists."""
    return _has_command(tuple(a for a in args if not a.startswith("--")))


@functools.cache
def _has_command(words: tuple[str, ...]) -> bool:
    """One `--help` probe per command for the whole run (each starts the CLI)."""
    probe = subprocess.run([*serve_command()[:-1], *words, "--help"], capture_output=True, timeout=120)
    return probe.returncode == 0


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a))
@pytest.mark.engine
def test_commands_never_print_the_token(args: list[str], tiny_model: Path, tmp_path: Path) -> None:
    if not available(args):
        pytest.skip(f"`vllm-mcp {' '.join(args)}` is not on this branch")
    env = env_with_token(tiny_model, tmp_path)
    proc = subprocess.run(
        [*serve_command()[:-1], *args], env=env, capture_output=True, timeout=300, stdin=subprocess.DEVNULL
    )
    output = proc.stdout + proc.stderr
    assert b"Traceback" not in output, output[-2000:]
    assert_clean(f"`vllm-mcp {' '.join(args)}`", output)


def test_prefetch_of_an_unreachable_model_shows_no_token(tmp_path: Path) -> None:
    if not available(["prefetch"]):
        pytest.skip("`vllm-mcp prefetch` is not on this branch")
    env = env_with_token("some-org/gated-model-that-is-not-cached", tmp_path)
    proc = subprocess.run(
        [*serve_command()[:-1], "prefetch"],
        env=env,
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert b"Traceback" not in proc.stdout + proc.stderr
    assert_clean("`vllm-mcp prefetch` of a missing model", proc.stdout + proc.stderr)


@pytest.mark.engine
def test_chat_with_a_model_that_fails_shows_no_token(tmp_path: Path) -> None:
    env = env_with_token(tmp_path / "no-such-model", tmp_path)
    proc = subprocess.run(
        [*serve_command()[:-1], "chat", "--model", str(tmp_path / "no-such-model"), "hello"],
        env=env,
        capture_output=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert b"model failed" in proc.stderr
    assert_clean("`vllm-mcp chat`", proc.stdout + proc.stderr)


def test_an_invalid_token_value_is_not_echoed(tiny_model: Path, tmp_path: Path) -> None:
    """Even a setting error about the token itself must not repeat it."""
    env = env_with_token(tiny_model, tmp_path, VLLM_MAX_SESSIONS="0")
    proc = subprocess.run(serve_command(), env=env, input=b"", capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert_clean("a configuration error", proc.stdout + proc.stderr)
