"""The systemd units: valid for systemd 252, hardened to an exposure of 2.0 or less.

``systemd-analyze verify`` runs against a throw-away root holding the units, the drop-in
that deploy/install.sh writes, empty executables where the units' ExecStart= point and a
copy of the host's own unit directory (for the targets the units name).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT
from vllm_mcp.config.settings import Settings

UNITS = ROOT / "systemd"
GATEWAY = "vllm-mcp-gateway.service"
HTTP = "vllm-mcp-http.service"
PREFETCH = "vllm-mcp-prefetch.service"
WORKER = "vllm-mcp-worker.service"  # a worker node of a multi-node model
REPLICA = "vllm-mcp-http@.service"  # a template: one instance per GPU
SERVERS = [HTTP, GATEWAY]  # what clients reach: one of the two is installed
MAX_EXPOSURE = 2.0

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def service_values(unit: Path, key: str) -> list[str]:
    out, section = [], ""
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line.startswith(f"{key}="):
            out.append(line.partition("=")[2])
    return out


def make_root(tmp: Path, allow: str | None = None) -> Path:
    """A root with the units installed as deploy/install.sh installs them."""
    root = tmp / "root"
    system = root / "etc/systemd/system"
    system.mkdir(parents=True)
    for unit in (GATEWAY, HTTP, PREFETCH, WORKER, REPLICA):
        shutil.copy(UNITS / unit, system / unit)
        for key in ("ExecStart", "ExecStartPre", "ExecStartPost"):
            for command in service_values(UNITS / unit, key):
                exe = root / command.split()[0].lstrip("+-!@").lstrip("/")
                exe.parent.mkdir(parents=True, exist_ok=True)
                exe.write_text("#!/bin/sh\n")
                exe.chmod(0o755)
    host_units = next(p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir())
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    if allow is not None:
        for unit in [*SERVERS, WORKER, REPLICA]:
            dropin = system / f"{unit}.d"
            dropin.mkdir()
            (dropin / "network.conf").write_text(
                f"[Service]\nIPAddressDeny=any\nIPAddressAllow=\nIPAddressAllow=localhost {allow}\n"
            )
    return root


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_COLORS": "0"}
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, env=env, timeout=120)


def exposure(output: str) -> float:
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", output)
    assert match, output[-2000:]
    return float(match.group(1))


def security_line(output: str, setting: str) -> str:
    for line in output.splitlines():
        if re.match(rf"\W*{re.escape(setting)}\s", line):
            return line
    raise AssertionError(f"no {setting} line in:\n{output[-3000:]}")


@pytest.mark.parametrize("unit", [*SERVERS, PREFETCH, WORKER])
def test_units_verify_cleanly(tmp_path: Path, unit: str) -> None:
    root = make_root(tmp_path, allow="10.0.0.5")
    result = analyze("verify", f"--root={root}", unit)
    # verify exits 0 on settings it ignores; any message at all is a mistake in the unit.
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", (
        result.stdout + result.stderr
    )


def test_verify_catches_a_broken_setting(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    unit = root / "etc/systemd/system" / GATEWAY
    unit.write_text(unit.read_text().replace("KillMode=mixed", "KillMode=mixd"))
    result = analyze("verify", f"--root={root}", GATEWAY)
    assert "kill mode" in result.stderr.lower()


@pytest.mark.parametrize("unit", [*SERVERS, PREFETCH, WORKER])
def test_exposure_is_at_most_two(unit: str) -> None:
    result = analyze("security", "--offline=true", str(UNITS / unit))
    score = exposure(result.stdout + result.stderr)
    print(f"{unit}: exposure {score}")
    assert score <= MAX_EXPOSURE


@pytest.mark.parametrize("unit", SERVERS)
def test_the_server_only_accepts_localhost_without_the_dropin(unit: str) -> None:
    result = analyze("security", "--offline=true", str(UNITS / unit))
    line = security_line(result.stdout, "✗ IPAddressDeny=")
    assert "allow list with only localhost entries" in line


@pytest.mark.parametrize("unit", SERVERS)
def test_the_dropin_adds_the_operators_clients(tmp_path: Path, unit: str) -> None:
    root = make_root(tmp_path, allow="10.0.0.5 192.168.10.0/24")
    result = analyze("security", "--offline=true", f"--root={root}", unit)
    line = security_line(result.stdout, "✗ IPAddressDeny=")
    assert "allow list with non-localhost entries" in line
    assert exposure(result.stdout) <= MAX_EXPOSURE


def test_without_ip_rules_the_scorer_notices(tmp_path: Path) -> None:
    # The check above is only meaningful if the scorer reports a missing rule differently.
    unit = tmp_path / GATEWAY
    text = (UNITS / GATEWAY).read_text()
    unit.write_text("\n".join(line for line in text.splitlines() if not line.startswith("IPAddress")))
    result = analyze("security", "--offline=true", str(unit))
    assert "does not define an IP address allow list" in security_line(result.stdout, "✗ IPAddressDeny=")
    assert exposure(result.stdout) > exposure(
        analyze("security", "--offline=true", str(UNITS / GATEWAY)).stdout
    )


@pytest.mark.parametrize("unit", SERVERS)
def test_stop_timeout_outlasts_the_shutdown_grace(unit: str) -> None:
    (timeout,) = service_values(UNITS / unit, "TimeoutStopSec")
    grace = Settings.model_fields["shutdown_grace"].default
    assert float(timeout) > grace + 5, "in-flight calls need the grace period plus the gateway's own exit"
    assert service_values(UNITS / unit, "KillMode") == ["mixed"]


@pytest.mark.parametrize(
    "key",
    [
        "User",
        "Group",
        "Restart",
        "RestartSec",
        "KillMode",
        "TimeoutStopSec",
        "TimeoutStartSec",
        "WorkingDirectory",
        "DeviceAllow",
        "IPAddressDeny",
        "IPAddressAllow",
        "SystemCallFilter",
        "RestrictAddressFamilies",
        "CapabilityBoundingSet",
        "ProtectSystem",
        "StateDirectory",
        "RuntimeDirectory",
        "LogsDirectory",
        "CacheDirectory",
    ],
)
def test_the_http_unit_keeps_the_gateway_units_settings(key: str) -> None:
    # Hardening, life cycle and layout are the FluidMCP unit's, setting for setting.
    assert service_values(UNITS / HTTP, key) == service_values(UNITS / GATEWAY, key)


def test_http_unit_policy() -> None:
    unit = UNITS / HTTP
    (start,) = service_values(unit, "ExecStart")
    assert start.split() == ["/opt/vllm-mcp/venv/bin/vllm-mcp", "serve", "--transport", "http"]
    env = dict(e.split("=", 1) for e in service_values(unit, "Environment"))
    assert env["VLLM_MCP_TRANSPORT"] == "http"
    # It binds every address, so the kernel's address list and the token do the refusing;
    # the port is the FluidMCP gateway's, so firewalls and clients' hosts stay as they were.
    assert env["VLLM_MCP_HTTP_HOST"] == "0.0.0.0" and env["VLLM_MCP_HTTP_PORT"] == "8099"
    # The token: a file the server reads by path; never a value in the environment or argv.
    assert env["VLLM_MCP_HTTP_TOKEN_FILE"] == "/etc/vllm-mcp/http-tokens"
    assert service_values(unit, "EnvironmentFile") == ["-/etc/vllm-mcp/vllm-mcp.env"]
    for name in env:
        assert "TOKEN" not in name or name == "VLLM_MCP_HTTP_TOKEN_FILE", name
        assert not name.startswith(("FMCP_", "HUGGING_FACE", "HF_TOKEN")), name
    for command in (
        service_values(unit, "ExecStart")
        + service_values(unit, "ExecStartPre")
        + service_values(unit, "ExecStartPost")
    ):
        assert "--token" not in command and "TOKEN" not in command
    # Readiness: the start waits for GET /healthz, with the probe install.sh puts there.
    (post,) = service_values(unit, "ExecStartPost")
    assert post.split()[-1] == "/opt/vllm-mcp/share/wait-healthy.py"
    assert service_values(unit, "Type") == ["exec"]
    assert service_values(unit, "ExecStartPre") == ["/opt/vllm-mcp/venv/bin/vllm-mcp doctor"]
    # The two servers share port 8099: starting one stops the other.
    assert "Conflicts=vllm-mcp-gateway.service" in unit.read_text()
    # The prefetch unit runs before either.
    prefetch = (UNITS / PREFETCH).read_text()
    assert re.search(r"^Before=.*\bvllm-mcp-http\.service\b", prefetch, re.M)
    assert re.search(r"^Before=.*\bvllm-mcp-gateway\.service\b", prefetch, re.M)


def test_gateway_unit_policy() -> None:
    unit = UNITS / GATEWAY
    text = unit.read_text()
    assert service_values(unit, "ExecStartPre")[0].endswith("vllm-mcp doctor")
    assert service_values(unit, "Restart") == ["on-failure"]
    assert "StartLimitBurst=" in text and "StartLimitIntervalSec=" in text
    assert service_values(unit, "RestartSec")
    # NVIDIA devices and nothing else.
    assert service_values(unit, "DevicePolicy") == ["closed"]
    allowed = service_values(unit, "DeviceAllow")
    assert allowed and all(a.startswith("char-nvidia") for a in allowed)
    # Secrets only from root-only files, never on a command line.
    assert service_values(unit, "EnvironmentFile") == [
        "/etc/vllm-mcp/gateway.env",
        "-/etc/vllm-mcp/vllm-mcp.env",
    ]
    for command in service_values(unit, "ExecStart") + service_values(unit, "ExecStartPre"):
        assert "--token" not in command and "--secure" not in command and "TOKEN" not in command
    for env in service_values(unit, "Environment"):
        assert not env.startswith(("FMCP_", "HUGGING_FACE", "HF_TOKEN"))
    assert service_values(unit, "User") == ["vllm-mcp"]
    assert service_values(unit, "ProtectSystem") == ["strict"]
    assert service_values(unit, "NoNewPrivileges") == ["yes"]


@pytest.mark.parametrize(
    "key",
    [
        "User",
        "Group",
        "KillMode",
        "TimeoutStopSec",
        "DeviceAllow",
        "IPAddressDeny",
        "IPAddressAllow",
        "SystemCallFilter",
        "RestrictAddressFamilies",
        "CapabilityBoundingSet",
        "ProtectSystem",
        "PrivateUsers",
        "RuntimeDirectory",
        "CacheDirectory",
        "EnvironmentFile",
    ],
)
def test_the_worker_unit_keeps_the_http_units_hardening(key: str) -> None:
    assert service_values(UNITS / WORKER, key) == service_values(UNITS / HTTP, key)


def test_worker_unit_policy(tmp_path: Path) -> None:
    unit = UNITS / WORKER
    assert service_values(unit, "ExecStart") == ["/opt/vllm-mcp/venv/bin/vllm-mcp worker"]
    assert service_values(unit, "ExecStartPre") == ["/opt/vllm-mcp/venv/bin/vllm-mcp config validate"]
    assert service_values(unit, "Restart") == ["on-failure"]  # waits for the head again after it stops
    assert "Conflicts=vllm-mcp-http.service vllm-mcp-gateway.service" in unit.read_text()
    env = dict(e.split("=", 1) for e in service_values(unit, "Environment"))
    assert not any(name.startswith(("VLLM_MCP_HTTP", "VLLM_MCP_TRANSPORT")) for name in env)  # no clients
    # Only localhost without the drop-in; the drop-in adds the other nodes.
    line = security_line(analyze("security", "--offline=true", str(unit)).stdout, "✗ IPAddressDeny=")
    assert "allow list with only localhost entries" in line
    root = make_root(tmp_path, allow="10.0.0.0/24")
    line = security_line(
        analyze("security", "--offline=true", f"--root={root}", WORKER).stdout, "✗ IPAddressDeny="
    )
    assert "allow list with non-localhost entries" in line


# --- the replica template ----------------------------------------------------------------------


def test_a_replica_instance_verifies_cleanly(tmp_path: Path) -> None:
    root = make_root(tmp_path, allow="10.0.0.5")
    result = analyze("verify", f"--root={root}", "vllm-mcp-http@0.service")
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", (
        result.stdout + result.stderr
    )


def test_a_replica_instance_is_hardened_like_the_http_unit(tmp_path: Path) -> None:
    result = analyze("security", "--offline=true", str(UNITS / REPLICA))
    score = exposure(result.stdout + result.stderr)
    print(f"{REPLICA}: exposure {score}")
    assert score <= MAX_EXPOSURE
    assert "allow list with only localhost entries" in security_line(result.stdout, "✗ IPAddressDeny=")
    root = make_root(tmp_path, allow="10.0.0.5")
    result = analyze("security", "--offline=true", f"--root={root}", "vllm-mcp-http@1.service")
    assert "allow list with non-localhost entries" in security_line(result.stdout, "✗ IPAddressDeny=")
    assert exposure(result.stdout) <= MAX_EXPOSURE


# Everything but what makes an instance one of several.
PER_INSTANCE = {"Environment", "EnvironmentFile", "WorkingDirectory", "RuntimeDirectory"}


def test_the_replica_template_keeps_the_http_units_settings() -> None:
    keys = {
        line.partition("=")[0]
        for line in (UNITS / HTTP).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    for key in sorted(keys - PER_INSTANCE - {"Description", "Documentation", "Conflicts", "WantedBy"}):
        assert service_values(UNITS / REPLICA, key) == service_values(UNITS / HTTP, key), key


def test_replica_template_policy() -> None:
    unit = UNITS / REPLICA
    # The shared model settings, then the instance's own file (required): its GPU and port.
    assert service_values(unit, "EnvironmentFile") == [
        "-/etc/vllm-mcp/vllm-mcp.env",
        "/etc/vllm-mcp/http@%i.env",
    ]
    env = dict(e.split("=", 1) for e in service_values(unit, "Environment"))
    http = dict(e.split("=", 1) for e in service_values(UNITS / HTTP, "Environment"))
    assert "VLLM_MCP_HTTP_PORT" not in env and "CUDA_VISIBLE_DEVICES" not in env
    assert env["VLLM_MCP_HTTP_STATELESS"] == "true"  # any replica can answer any request
    # Each instance its own log, metrics file and runtime directory.
    assert env["VLLM_MCP_LOG_FILE"].endswith("@%i.log") and env["VLLM_MCP_METRICS_TEXTFILE"].endswith(
        "@%i.prom"
    )
    assert service_values(unit, "RuntimeDirectory") == ["vllm-mcp/%i"]
    assert service_values(unit, "WorkingDirectory") == ["/run/vllm-mcp/%i"]
    same = {
        k: v
        for k, v in http.items()
        if k not in ("VLLM_MCP_HTTP_PORT", "VLLM_MCP_LOG_FILE", "VLLM_MCP_METRICS_TEXTFILE")
    }
    assert {k: env[k] for k in same} == same
    assert "Conflicts=" not in unit.read_text()  # replicas sit beside each other on their own ports


@pytest.mark.parametrize("unit", [HTTP, REPLICA.replace("@", "@0")])
def test_the_dropin_install_sh_writes_with_outbound_hosts_verifies(tmp_path: Path, unit: str) -> None:
    """install.sh's drop-in with the store and issuer allowed out (ALLOW_TO and vllm-mcp.env)."""
    from tests.support.deploy import ok, run

    staged = tmp_path / "staged"
    env = staged / "etc/vllm-mcp/vllm-mcp.env"
    env.parent.mkdir(parents=True)
    env.write_text("VLLM_MCP_SESSION_STORE=postgresql://mcp@10.0.0.7/sessions\n")
    replicas = {"REPLICAS": "1"} if "@" in unit else {}
    ok(run("install.sh", staged, ALLOW_FROM="10.0.0.5", ALLOW_TO="10.0.9.0/24", **replicas))
    template = REPLICA if "@" in unit else unit
    written = staged / "etc/systemd/system" / f"{template}.d/network.conf"
    assert written.read_text().splitlines()[-1] == "IPAddressAllow=10.0.9.0/24 10.0.0.7"
    root = make_root(tmp_path)
    (root / "etc/systemd/system" / f"{template}.d").mkdir()
    shutil.copy(written, root / "etc/systemd/system" / f"{template}.d/network.conf")
    result = analyze("verify", f"--root={root}", unit)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", (
        result.stdout + result.stderr
    )
    result = analyze("security", "--offline=true", f"--root={root}", unit)
    assert "allow list with non-localhost entries" in security_line(result.stdout, "✗ IPAddressDeny=")
    assert exposure(result.stdout) <= MAX_EXPOSURE
