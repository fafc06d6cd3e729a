"""End to end: FluidMCP's main branch serving `vllm-mcp serve` from the seed's config format.

FluidMCP main (``../shared/vendor``'s tarball, a test tool installed apart from the product:
``.ci/run`` puts it in ``.cache/fluidmcp-main``) injects every HTTP request header, the
caller's bearer token included, as ``arguments.headers`` into each tools/call, passes its
whole environment to the server, and waits 30 s for each reply line on ``/<name>/mcp``.
Secure mode is on (``FMCP_SECURE_MODE``/``FMCP_BEARER_TOKEN`` in its environment, as the
systemd unit does). Everything runs in a private network namespace, because FluidMCP binds
0.0.0.0:8099 and kills whatever listens there; the namespace helpers come from tests/support/units.py.

This file is also the helper that runs inside the namespace (``python test_fluidmcp_main.py``).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "vllm-config.json"
BASE = "http://127.0.0.1:8099/vllm"
FLUIDMCP_MAIN = Path(
    os.environ.get("VLLM_MCP_TEST_FLUIDMCP_MAIN", ROOT / ".cache/fluidmcp-main/bin/fluidmcp")
)
BUDGET = 25  # examples/vllm-config.json's VLLM_MCP_MAX_CALL_SECONDS, under the gateway's 30 s
LONG = 60_000  # tokens: minutes of generation on this model, were it not for the budget


# --- the helper, inside the namespace -----------------------------------------------------


def post(path: str, body: dict[str, Any], token: str, timeout: float = 120) -> tuple[int, str]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    req = urllib.request.Request(f"{BASE}/{path}", json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def call(rid: int, name: str, arguments: dict[str, Any], token: str, path: str = "mcp", **params: Any) -> Any:
    body = {
        "jsonrpc": "2.0",
        "id": rid,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }
    body["params"].update(params)
    started = time.monotonic()
    status, text = post(path, body, token)
    return {"status": status, "body": text, "seconds": round(time.monotonic() - started, 2)}


def chat(content: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 8, "seed": 1, **extra}


def scenario(root: Path, token: str) -> dict[str, Any]:
    from tests.support.units import cmdlines

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = json.loads((root / "env.json").read_text())
    env.update({"FMCP_SECURE_MODE": "true", "FMCP_BEARER_TOKEN": token})
    log = open(root / "gateway.log", "wb")  # noqa: SIM115
    command = [str(FLUIDMCP_MAIN), "run", str(root / "vllm-config.json"), "--file", "--start-server"]
    gateway = subprocess.Popen(command, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    report: dict[str, Any] = {"command": command}
    try:
        deadline = time.monotonic() + 600  # a shared CI machine can take minutes to load
        while True:  # up, and the model loaded
            try:
                info = call(1, "model_info", {}, token)
                if info["status"] == 200 and '"server_state":"ready"' in info["body"].replace(" ", ""):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if gateway.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gateway or model did not come up")
            time.sleep(1)
        report["info"] = call(2, "model_info", {}, token)
        report["chat"] = call(3, "chat_completion", chat("hello"), token)
        report["turn1"] = call(4, "chat_completion", chat("first", session_id="s1"), token)
        report["turn2"] = call(5, "chat_completion", chat("second", session_id="s1"), token)
        report["sse"] = call(
            6,
            "chat_completion",
            chat("stream", max_tokens=24, min_tokens=24),
            token,
            "sse",
            _meta={"progressToken": 6},
        )
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, 100 + i, "chat_completion", chat(f"c{i}"), token) for i in range(8)]
            report["concurrent"] = [f.result() for f in futures]
        report["long"] = call(7, "chat_completion", chat("long", max_tokens=LONG, min_tokens=LONG), token)
        report["after_long"] = call(8, "model_info", {}, token)
        report["end"] = call(9, "end_session", {"session_id": "s1"}, token)
        report["cmdlines"] = cmdlines(gateway.pid)
        report["environs"] = engine_environs(gateway.pid)
    finally:
        gateway.terminate()
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            gateway.kill()
        log.close()
    return report


def engine_environs(gateway_pid: int) -> list[str]:
    """The environment of every process below `vllm-mcp serve` (the engine's processes).

    The server's own /proc/<pid>/environ is what it was started with (FluidMCP's, token
    included); what it passes on is what matters.
    """
    import psutil

    out = []
    for proc in psutil.Process(gateway_pid).children(recursive=True):
        cmd = " ".join(proc.cmdline())
        if "vllm-mcp serve" in cmd or "vllm_mcp serve" in cmd:
            for child in proc.children(recursive=True):
                out.append(Path(f"/proc/{child.pid}/environ").read_bytes().decode(errors="replace"))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(scenario(Path(sys.argv[1]), sys.stdin.readline().strip())))
    sys.exit(0)


# --- the test -------------------------------------------------------------------------------

import pytest  # noqa: E402

from tests.support.models import serve_env  # noqa: E402
from tests.support.units import unshare_command  # noqa: E402

pytestmark = pytest.mark.engine


def result_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["status"] == 200, reply
    body = json.loads(reply["body"])
    assert "result" in body, body
    assert body["result"]["isError"] is False, body
    return body["result"]["structuredContent"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[dict[str, Any], str, Path]:
    if not FLUIDMCP_MAIN.exists():
        pytest.skip(f"needs FluidMCP main at {FLUIDMCP_MAIN} (.ci/run installs it from ../shared/vendor)")
    unshare = unshare_command()
    root = tmp_path_factory.mktemp("fluidmcp-main")
    config = json.loads(CONFIG.read_text())
    assert config["mcpServers"]["vllm"]["env"]["VLLM_MCP_MAX_CALL_SECONDS"] == str(BUDGET)
    # The example as a user runs it, with the tiny model: FluidMCP lets the shell's
    # environment win over the config's env, so the model settings go in the config.
    server_env = config["mcpServers"]["vllm"]["env"]
    server_env.update({k: v for k, v in serve_env(tiny_model).items() if k.startswith(("VLLM_", "HF_"))})
    server_env.update(
        {
            "VLLM_MAX_MODEL_LEN": str(LONG + 1024),  # room for a generation far longer than the budget
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1",  # beyond the random model's 1024 positions
            "VLLM_MCP_LOG_FILE": str(root / "server.log"),
            "VLLM_MCP_SESSION_STORE": str(root / "sessions.sqlite"),
            "VLLM_MCP_METRICS_TEXTFILE": str(root / "metrics.prom"),
            "VLLM_MCP_MAX_CALL_SECONDS": str(BUDGET),
        }
    )
    (root / "vllm-config.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "FMCP_"))}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            "PYTHONPATH": str(ROOT),  # this checkout's vllm_mcp
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
        }
    )
    (root / "home").mkdir()
    (root / "tmp").mkdir()
    (root / "env.json").write_text(json.dumps(env))
    token = secrets.token_urlsafe(32)
    proc = subprocess.run(
        [*unshare, sys.executable, __file__, str(root)],
        input=token + "\n",  # never on a command line
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    report["helper_output"] = proc.stdout + proc.stderr
    return report, token, root


def test_calls_with_injected_headers_are_served(gateway: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = gateway
    info = result_of(report["info"])
    assert info["server_state"] == "ready" and info["max_call_seconds"] == BUDGET
    reply = result_of(report["chat"])
    assert reply["usage"]["completion_tokens"] == 8 and reply["text"]


def test_sessions_through_the_gateway(gateway: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = gateway
    first, second = result_of(report["turn1"]), result_of(report["turn2"])
    assert first["session_id"] == second["session_id"] == "s1"
    # The second turn's prompt carries the first turn.
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]
    assert result_of(report["end"]) == {"session_id": "s1", "ended": True}


def test_sse_streams_progress_then_the_result(gateway: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = gateway
    assert report["sse"]["status"] == 200
    events = [json.loads(line[len("data: ") :]) for line in report["sse"]["body"].splitlines() if line]
    progress = [e for e in events if e.get("method") == "notifications/progress"]
    assert progress and all(e["params"]["progressToken"] == 6 for e in progress)
    final = events[-1]
    assert final["id"] == 6 and final["result"]["isError"] is False
    text = final["result"]["structuredContent"]["text"]
    assert "".join(e["params"]["message"] for e in progress) == text


def test_eight_concurrent_calls_each_get_their_own_reply(gateway: tuple[dict[str, Any], str, Path]) -> None:
    report, _, _ = gateway
    for i, reply in enumerate(report["concurrent"]):
        assert json.loads(reply["body"])["id"] == 100 + i
        assert result_of(reply)["usage"]["completion_tokens"] == 8


def test_a_long_generation_stops_in_time_and_replies_stay_in_step(
    gateway: tuple[dict[str, Any], str, Path],
) -> None:
    report, _, _ = gateway
    long = report["long"]
    reply = result_of(long)
    assert json.loads(long["body"])["id"] == 7
    assert reply["finish_reason"] == "time_limit"
    assert 0 < reply["usage"]["completion_tokens"] < LONG and reply["text"]
    assert reply["timings"]["total_s"] >= BUDGET - 0.5
    assert long["seconds"] < 30  # answered before the gateway's own timeout
    tokens = reply["usage"]["completion_tokens"]
    print(f"time-limited call: {long['seconds']} s through the gateway, {tokens} tokens, ", end="")
    print(f"{LONG / tokens * BUDGET:.0f} s to generate all {LONG} at that rate")
    after = report["after_long"]
    assert json.loads(after["body"])["id"] == 8
    info = result_of(after)
    assert info["server_state"] == "ready"
    assert info["engine_unfinished_requests"] == 0  # the generation was aborted, not left running


def test_the_gateway_token_is_nowhere(gateway: tuple[dict[str, Any], str, Path]) -> None:
    report, token, root = gateway
    assert all(token not in line for line in report["cmdlines"])
    assert report["environs"], "no engine processes were seen"
    assert all(token not in environ and "FMCP_" not in environ for environ in report["environs"])
    replies = {k: v for k, v in report.items() if k not in ("environs", "helper_output")}
    assert token not in json.dumps(replies)
    assert token not in report["helper_output"]
    assert (root / "server.log").stat().st_size > 0
    files = [p for p in root.rglob("*") if p.is_file() and p.name != "env.json"]
    assert {"server.log", "sessions.sqlite", "gateway.log"} <= {p.name for p in files}
    for path in files:
        assert token.encode() not in path.read_bytes(), path
