"""End to end: `vllm-mcp serve --transport http` started as systemd/vllm-mcp-http.service starts it.

The tree comes from the real deploy/install.sh (GATEWAY=http, DESTDIR); the command, its
environment, the readiness probe (ExecStartPost=) and the working directory are read from
the unit itself with its absolute paths moved into that tree, as tests/e2e/test_gateway.py
does for the FluidMCP unit. The scenario runs in a private network namespace
(``unshare -n``) because the unit binds 0.0.0.0:8099. It checks what the deployment
promises: the start waits for the model, the official MCP client with the installed token
gets a reply, no token gets 401, deploy/rotate-token.sh takes effect without a restart,
the token is on no command line and in no log, and SIGTERM ends it within TimeoutStopSec.

This file is also the helper that runs inside the namespace (``python test_http_unit.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "vllm-mcp-http.service"
URL = "http://127.0.0.1:8099/mcp"
TOKENS = "etc/vllm-mcp/http-tokens"


def relocate(value: str, root: Path, venv_bin: Path) -> str:
    """The unit's absolute paths under ``root``; its venv is the test's."""
    from tests.support.units import relocate as relocate_gateway

    value = value.replace("/opt/vllm-mcp/share", f"{root}/opt/vllm-mcp/share")
    return relocate_gateway(value, root, venv_bin)


def launch(root: Path, venv_bin: Path) -> dict[str, Any]:
    """ExecStart=, ExecStartPost=, the environment and the working directory of the unit."""
    from tests.support.units import read_env_file, unit_service_lines

    env: dict[str, str] = {}
    files: dict[str, str] = {}
    out: dict[str, Any] = {"post": [], "workdir": root}
    for key, value in unit_service_lines(UNIT):
        value = relocate(value, root, venv_bin)
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "EnvironmentFile":
            path = Path(value.lstrip("-"))
            if path.exists():
                files.update(read_env_file(path))
        elif key == "ExecStart":
            out["start"] = shlex.split(value)
        elif key == "ExecStartPost":
            out["post"].append(shlex.split(value))
        elif key == "WorkingDirectory":
            out["workdir"] = Path(value)
    env.update(files)  # systemd: EnvironmentFile= wins over Environment=
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
    env["PYTHONPATH"] = str(ROOT)  # this checkout's vllm_mcp, not an installed one
    out["env"] = env
    return out


async def chat(token: str | None) -> dict[str, Any]:
    """tools/list and one chat_completion with the official SDK client; or the failure."""
    from tests.support.httpserver import mcp_client

    try:
        async with mcp_client(URL, token) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            args = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 6, "seed": 1}
            result = await client.call_tool("chat_completion", args)
            return {"tools": tools, "result": result.structured_content}
    except Exception as e:  # an ExceptionGroup from the client's task group, too
        return {"error": repr(e)[:500]}


def status(token: str | None) -> tuple[int, str]:
    """HTTP status and WWW-Authenticate of an initialize POST with this token (or none)."""
    import httpx2

    from tests.support.httpserver import ACCEPT, initialize_body

    headers = dict(ACCEPT)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    reply = httpx2.post(URL, json=initialize_body(), headers=headers, timeout=30)
    return reply.status_code, reply.headers.get("www-authenticate", "")


def scenario(root: Path) -> dict[str, Any]:
    from tests.support.units import cmdlines

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    unit = launch(root, Path(sys.executable).parent)
    for d in ("run/vllm-mcp", "var/lib/vllm-mcp/metrics", "var/cache/vllm-mcp", "var/log/vllm-mcp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    first = (root / TOKENS).read_text().strip()
    log = open(root / "journal.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    server = subprocess.Popen(unit["start"], env=unit["env"], cwd=unit["workdir"], stdout=log, stderr=log)
    report: dict[str, Any] = {"start": unit["start"], "post": unit["post"]}
    try:
        (post,) = unit["post"]
        probe = subprocess.run(post, env=unit["env"], capture_output=True, text=True, timeout=400)
        report["probe"] = {"rc": probe.returncode, "stderr": probe.stderr, "s": time.monotonic() - started}
        report["with_token"] = asyncio.run(chat(first))
        report["no_token"] = status(None)
        report["cmdlines"] = cmdlines(server.pid)
        # Rotation, as an operator does it, while the server runs.
        env = {**os.environ, "DESTDIR": str(root)}
        rotate = subprocess.run(
            ["bash", str(ROOT / "deploy/rotate-token.sh")], env=env, capture_output=True, text=True
        )
        report["rotate"] = {"rc": rotate.returncode, "out": rotate.stdout + rotate.stderr}
        second = (root / TOKENS).read_text().strip()
        report["rotated"] = second != first
        report["old_token_after_rotation"] = status(first)
        report["new_token_after_rotation"] = asyncio.run(chat(second))
        report["tokens"] = [first, second]
        report["pid_unchanged"] = server.poll() is None
    finally:
        stop = time.monotonic()
        server.terminate()
        try:
            report["exit"] = server.wait(45)  # the unit's TimeoutStopSec
        except subprocess.TimeoutExpired:
            server.kill()
            report["exit"] = "killed after 45 s"
        report["stop_s"] = time.monotonic() - stop
        log.close()
    report["journal"] = (root / "journal.log").read_text(errors="replace")
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
from tests.support.units import unshare_command  # noqa: E402

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> dict[str, Any]:
    unshare = unshare_command()
    root = tmp_path_factory.mktemp("http-root")
    env = {k: v for k, v in os.environ.items() if k not in ("GATEWAY", "ALLOW_FROM", "VARIANT")}
    env.update(DESTDIR=str(root), SKIP_VENV="1", VARIANT="cpu", GATEWAY="http")
    install = subprocess.run(
        ["bash", str(ROOT / "deploy/install.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert install.returncode == 0, install.stdout + install.stderr
    model_env = {
        k: v for k, v in serve_env(tiny_model).items() if k.startswith(("VLLM_", "HF_", "TRANSFORMERS_"))
    }
    (root / "etc/vllm-mcp/vllm-mcp.env").write_text(
        "".join(f"{k}={shlex.quote(v)}\n" for k, v in model_env.items())
    )
    proc = subprocess.run(
        [*unshare, sys.executable, __file__, str(root)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_the_start_waits_for_the_model_then_the_token_holder_gets_a_reply(deployed: dict[str, Any]) -> None:
    assert deployed["start"][-3:] == ["serve", "--transport", "http"]
    probe = deployed["probe"]
    assert probe["rc"] == 0, probe
    # The probe saw the server before the model was ready, and waited.
    assert "HTTP 503: loading" in probe["stderr"] or "not answering yet" in probe["stderr"], probe
    assert probe["stderr"].rstrip().endswith("ready")
    reply = deployed["with_token"]
    assert "error" not in reply, reply
    assert "chat_completion" in reply["tools"]
    assert reply["result"]["usage"]["completion_tokens"] == 6


def test_no_token_is_refused(deployed: dict[str, Any]) -> None:
    status, challenge = deployed["no_token"]
    assert status == 401 and challenge.lower().startswith("bearer")


def test_rotation_takes_effect_without_a_restart(deployed: dict[str, Any]) -> None:
    assert deployed["rotate"]["rc"] == 0, deployed["rotate"]
    assert deployed["rotated"] and deployed["pid_unchanged"]
    assert deployed["old_token_after_rotation"][0] == 401
    new = deployed["new_token_after_rotation"]
    assert "error" not in new, new
    assert new["result"]["usage"]["completion_tokens"] == 6


def test_tokens_are_on_no_command_line_and_in_no_log(deployed: dict[str, Any]) -> None:
    assert len(deployed["cmdlines"]) >= 2  # the server and its engine processes
    assert deployed["server_log"], "the unit's VLLM_MCP_LOG_FILE got no lines"
    for token in deployed["tokens"]:
        for line in deployed["cmdlines"]:
            assert token not in line
        assert token not in deployed["journal"] and token not in deployed["server_log"]
        assert token not in deployed["rotate"]["out"]


def test_sigterm_ends_it_within_the_units_stop_timeout(deployed: dict[str, Any]) -> None:
    assert deployed["exit"] == 0, deployed["journal"][-3000:]
    assert deployed["stop_s"] < 45
