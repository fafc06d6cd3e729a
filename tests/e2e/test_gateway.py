"""End to end: FluidMCP 0.1.0 serving `vllm-mcp serve` with its bearer token, as the unit runs it.

The whole scenario runs in a private network namespace (``unshare -n``), because FluidMCP
binds 0.0.0.0:8099 and first kills whatever listens there. The command, its environment
and its working directory are read from ``systemd/vllm-mcp-gateway.service`` itself
(``Environment=``, ``EnvironmentFile=``, ``ExecStart=``), with the unit's absolute paths
moved into a temporary root, so the test starts the gateway the way systemd does: the
token comes from an env file, never from the command line.

This file is also the helper that runs inside the namespace (``python test_gateway.py``).
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "vllm-mcp-gateway.service"
EXAMPLE = ROOT / "examples" / "fluidmcp"
URL = "http://127.0.0.1:8099/vllm/mcp"


# --- the unit, relocated into a temporary root ------------------------------------------


def gateway_launch(root: Path, venv_bin: Path) -> tuple[list[str], dict[str, str], Path, list[list[str]]]:
    """Command, environment, working directory and pre-commands the unit would use."""
    from tests.support.units import read_env_file, relocate, unit_service_lines

    env: dict[str, str] = {}
    files: dict[str, str] = {}
    start: list[str] = []
    pre: list[list[str]] = []
    workdir = root
    for key, value in unit_service_lines(UNIT):
        value = relocate(value, root, venv_bin)
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "EnvironmentFile":
            optional = value.startswith("-")
            path = Path(value.lstrip("-"))
            if path.exists():
                files.update(read_env_file(path))
            elif not optional:
                raise FileNotFoundError(path)
        elif key == "ExecStart":
            start = shlex.split(value)
        elif key == "ExecStartPre":
            pre.append(shlex.split(value))
        elif key == "WorkingDirectory":
            workdir = Path(value)
    env.update(files)  # systemd: EnvironmentFile= wins over Environment=
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's vllm_mcp, not an installed one
    return start, env, workdir, pre


# --- the helper, inside the namespace -----------------------------------------------------


def post(body: dict[str, Any], token: str | None, timeout: float = 300) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(URL, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def call(name: str, arguments: dict[str, Any], token: str | None, rid: int) -> tuple[int, Any]:
    return post(
        {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        token,
    )


def scenario(root: Path) -> dict[str, Any]:
    """Start the gateway like the unit does, make the calls, report what happened."""
    from tests.support.units import cmdlines

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    venv_bin = Path(sys.executable).parent
    start, env, workdir, pre = gateway_launch(root, venv_bin)
    for d in ("run/vllm-mcp", "var/lib/vllm-mcp/metrics", "var/cache/vllm-mcp", "var/log/vllm-mcp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for command in pre:
        if Path(command[0]).name == "vllm-mcp":
            continue  # `vllm-mcp doctor` expects a GPU host; the ops tests cover it
        subprocess.run(command, check=True, env=env)
    token = env["FMCP_BEARER_TOKEN"]
    log = open(root / "gateway.log", "wb")  # noqa: SIM115
    gateway = subprocess.Popen(start, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    report: dict[str, Any] = {"command": start}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _status, _ = post({"jsonrpc": "2.0", "id": 0, "method": "tools/list"}, None, timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                if gateway.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gateway did not come up") from None
                time.sleep(0.5)
        chat = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "seed": 1}
        report["no_token"] = call("chat_completion", {**chat, "session_id": "intruder-1"}, None, 1)
        report["wrong_token"] = call(
            "chat_completion", {**chat, "session_id": "intruder-2"}, token[:-1] + "x", 2
        )
        report["bearer_scheme_only"] = call("model_info", {}, "", 3)
        report["info_before"] = call("model_info", {}, token, 4)
        # The unit gives each call 25 s (VLLM_MCP_MAX_CALL_SECONDS, under FluidMCP's 30 s cut), time
        # waiting for the model included: wait for it as a client of a fresh service would.
        loaded_by = time.monotonic() + 600
        while time.monotonic() < loaded_by:
            _status, info = call("model_info", {}, token, 40)
            if info["result"]["structuredContent"]["server_state"] != "loading":
                break
            time.sleep(1)
        report["right_token"] = call("chat_completion", {**chat, "session_id": "friend"}, token, 5)
        report["info_after"] = call("model_info", {}, token, 6)
        report["cmdlines"] = cmdlines(gateway.pid)
    finally:
        gateway.terminate()
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            gateway.kill()
        log.close()
    report["gateway_log"] = (root / "gateway.log").read_text(errors="replace")
    server_log = root / "var/log/vllm-mcp/server.log"
    report["server_log"] = server_log.read_text(errors="replace") if server_log.exists() else ""
    return report


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(scenario(Path(sys.argv[1]))))
    sys.exit(0)


# --- the test -------------------------------------------------------------------------------

import pytest  # noqa: E402

from tests.support.models import serve_env  # noqa: E402
from tests.support.units import relocate, unshare_command  # noqa: E402

pytestmark = pytest.mark.engine


def install_like_the_bundle(root: Path, model: Path) -> str:
    """The files deploy/install.sh puts in /etc/vllm-mcp, under ``root``; returns the token."""
    etc = root / "etc/vllm-mcp"
    shutil.copytree(EXAMPLE, etc / "fluidmcp")
    config = etc / "fluidmcp/config.json"
    config.write_text(relocate(config.read_text(), root, Path("/nonexistent")))
    token = secrets.token_urlsafe(32)
    gateway_env = etc / "gateway.env"
    gateway_env.write_text(f"FMCP_SECURE_MODE=true\nFMCP_BEARER_TOKEN={token}\n")
    gateway_env.chmod(0o600)
    model_env = {k: v for k, v in serve_env(model).items() if k.startswith(("VLLM_", "HF_", "TRANSFORMERS_"))}
    model_env["VLLM_DEFAULT_MAX_TOKENS"] = "16"
    (etc / "vllm-mcp.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in model_env.items()))
    (etc / "vllm-mcp.env").chmod(0o600)
    return token


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> tuple[dict[str, Any], str]:
    pytest.importorskip("fluidai_mcp", reason="needs the gateway extra: pip install '.[gateway]'")
    unshare = unshare_command()
    root = tmp_path_factory.mktemp("gateway-root")
    token = install_like_the_bundle(root, tiny_model)
    proc = subprocess.run(
        [*unshare, sys.executable, __file__, str(root)],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), token


def test_calls_without_the_token_are_refused_and_reach_no_model(gateway: tuple[dict[str, Any], str]) -> None:
    report, _ = gateway
    for key in ("no_token", "wrong_token", "bearer_scheme_only"):
        status, body = report[key]
        assert status == 401, (key, body)
        assert "jsonrpc" not in json.dumps(body), body  # FluidMCP answered, not the server
    # The refused chat calls named sessions; the server never saw them.
    status, info = report["info_before"]
    assert status == 200
    assert info["result"]["structuredContent"]["active_sessions"] == 0


def test_the_token_holder_gets_a_generated_reply(gateway: tuple[dict[str, Any], str]) -> None:
    report, _ = gateway
    status, body = report["right_token"]
    assert status == 200, body
    result = body["result"]
    assert result["isError"] is False, result
    content = result["structuredContent"]
    assert content["usage"]["completion_tokens"] == 6
    assert content["text"] and content["text"] == result["content"][0]["text"]
    assert content["session_id"] == "friend"
    status, info = report["info_after"]
    assert status == 200
    after = info["result"]["structuredContent"]
    assert after["server_state"] == "ready"
    assert after["active_sessions"] == 1


def test_the_token_is_on_no_command_line_and_in_no_log(gateway: tuple[dict[str, Any], str]) -> None:
    report, token = gateway
    assert Path(report["command"][0]).name == "fluidmcp" and report["command"][-1] == "--file"
    assert len(report["cmdlines"]) >= 2  # FluidMCP and the server it started
    assert any("vllm-mcp" in c and "serve" in c for c in report["cmdlines"]), report["cmdlines"]
    for line in report["cmdlines"]:
        assert token not in line and "--token" not in line and "--secure" not in line
    assert "Bearer token" not in report["gateway_log"]
    assert token not in report["gateway_log"]
    assert report["server_log"], "the unit's VLLM_MCP_LOG_FILE got no lines"
    assert token not in report["server_log"]


def test_the_python_client_example_gets_a_reply(tiny_model: Path) -> None:
    """examples/client.py, run as a user runs it, against a real `vllm-mcp serve`."""
    env = serve_env(tiny_model, VLLM_DEFAULT_MAX_TOKENS="16")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client.py"), "Say something"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "the client printed no reply"
    assert "tokens" in proc.stderr  # progress notifications arrived during generation
