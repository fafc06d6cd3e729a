"""doctor's gateway audit (issue 7), token and address list, on an install staged by the real
deploy/install.sh: the FluidMCP gateway (GATEWAY=fluidmcp) and the HTTP server (GATEWAY=http)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.doctor import invoke
from vllm_mcp.config import files as config_files
from vllm_mcp.doctor import Check, Probes, Report
from vllm_mcp.doctor import gateway as gateway_module

# --- the deployed gateway: token and address list (issue 7) ---------------------------------

DROPIN = "etc/systemd/system/vllm-mcp-gateway.service.d/network.conf"
UNIT = "etc/systemd/system/vllm-mcp-gateway.service"
GATEWAY_ENV = "etc/vllm-mcp/gateway.env"


HTTP_DROPIN = "etc/systemd/system/vllm-mcp-http.service.d/network.conf"
HTTP_UNIT = "etc/systemd/system/vllm-mcp-http.service"
HTTP_TOKENS = "etc/vllm-mcp/http-tokens"


_STAGED: dict[tuple[str, str], Path] = {}


def run_install(root: Path, allow_from: str, gateway: str) -> None:
    """The real deploy/install.sh into ``root`` (no venv, no users, no systemctl).

    It runs once per ``allow_from`` and ``gateway`` in a session; each test gets its own copy of
    that staged tree (modes kept), so what one test edits no other sees.
    """
    key = (allow_from, gateway)
    if key not in _STAGED:
        staged = Path(tempfile.mkdtemp(prefix="staged-install-"))
        atexit.register(shutil.rmtree, staged, True)
        _install(staged, allow_from, gateway)
        _STAGED[key] = staged
    shutil.copytree(_STAGED[key], root, symlinks=True, dirs_exist_ok=True)


def _install(root: Path, allow_from: str, gateway: str) -> None:
    env = {
        **os.environ,
        "DESTDIR": str(root),
        "SKIP_VENV": "1",
        "VARIANT": "cpu",
        "ALLOW_FROM": allow_from,
        "GATEWAY": gateway,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def install(root: Path, allow_from: str = "10.0.0.5 192.168.10.0/24") -> str:
    """The FluidMCP gateway installed into ``root``; its token."""
    run_install(root, allow_from, "fluidmcp")
    token = [
        line.split("=", 1)[1]
        for line in (root / GATEWAY_ENV).read_text().splitlines()
        if line.startswith("FMCP_BEARER_TOKEN=")
    ]
    assert len(token) == 1 and len(token[0]) >= 32
    return token[0]


def gateway(root: Path, environ: dict[str, str] | None = None) -> Check:
    check = gateway_module.check_gateway(Probes(root=root, environ=environ or {}))
    assert check.name == "gateway"
    return check


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def shown(check: Check) -> str:
    return Report([check]).to_text() + Report([check]).to_json()


def test_gateway_without_a_unit_is_skipped(tmp_path: Path) -> None:
    check = gateway(tmp_path)
    assert check.status == "ok" and "no gateway unit installed" in check.message


# --- the HTTP server (GATEWAY=http) -------------------------------------------------------------


def install_http(root: Path, allow_from: str = "10.0.0.5 192.168.10.0/24") -> str:
    """`vllm-mcp serve --transport http`'s unit installed into ``root``; its token."""
    run_install(root, allow_from, "http")
    (token,) = (root / HTTP_TOKENS).read_text().splitlines()
    return token


def test_http_fresh_install_passes_and_never_shows_the_token(tmp_path: Path) -> None:
    token = install_http(tmp_path)
    check = gateway(tmp_path)
    assert check.status == "ok", check
    assert check.message.startswith("vllm-mcp-http:")
    assert "1 token in /etc/vllm-mcp/http-tokens" in check.message
    assert "localhost, 10.0.0.5, 192.168.10.0/24" in check.message
    assert check.details["endpoint"] == "http://0.0.0.0:8099/mcp" and check.details["tokens"] == 1
    assert token not in shown(check)


def test_http_counts_named_callers(tmp_path: Path) -> None:
    install_http(tmp_path)
    (tmp_path / HTTP_TOKENS).write_text("alice:" + "a" * 40 + "\n\nbob:" + "b" * 40 + "\n")
    check = gateway(tmp_path)
    assert check.status == "ok" and "2 tokens" in check.message
    assert "a" * 40 not in shown(check)


@pytest.mark.parametrize(
    "content, says",
    [
        ("", "no token in it"),
        ("\n  \n# only a comment\n", "no token in it"),
        ("alice:\n", "http-tokens:1: a token must be printable ASCII"),
        ("alice:" + "a" * 40 + "\nbob:short\n", "http-tokens:2: token shorter than 16"),
        ("alice:" + "a" * 40 + "\nalice:" + "b" * 40 + "\n", "caller 'alice' appears twice"),
    ],
)
def test_http_with_an_empty_token_file_warns(tmp_path: Path, content: str, says: str) -> None:
    install_http(tmp_path)
    (tmp_path / HTTP_TOKENS).write_text(content)
    check = gateway(tmp_path)
    assert check.status == "warn" and "no usable bearer token" in check.message and says in check.message, (
        check
    )
    assert "rotate-token.sh" in (check.fix or "")
    assert "a" * 40 not in shown(check) and "b" * 40 not in shown(check)


def test_http_token_file_missing_or_open_to_others_warns(tmp_path: Path) -> None:
    token = install_http(tmp_path)
    tokens = tmp_path / HTTP_TOKENS
    tokens.chmod(0o640)  # the server warns about group access too
    check = gateway(tmp_path)
    assert check.status == "warn" and "open to users other than its owner (mode 640)" in check.message
    assert "chmod 0600" in (check.fix or "") and token not in shown(check)
    tokens.unlink()
    check = gateway(tmp_path)
    assert check.status == "warn" and "is missing" in check.message


def test_http_without_a_token_file_warns_by_where_it_binds(tmp_path: Path) -> None:
    install_http(tmp_path)
    edit(tmp_path / HTTP_UNIT, "Environment=VLLM_MCP_HTTP_TOKEN_FILE=/etc/vllm-mcp/http-tokens\n", "")
    check = gateway(tmp_path)
    assert check.status == "warn" and "refuses to bind 0.0.0.0" in check.message
    # The operator's env file overrides the unit's defaults, as systemd applies it.
    (tmp_path / "etc/vllm-mcp/vllm-mcp.env").write_text("VLLM_MCP_HTTP_HOST=127.0.0.1\n")
    check = gateway(tmp_path)
    assert check.status == "warn" and "every local user" in check.message
    assert "VLLM_MCP_HTTP_TOKEN_FILE" in (check.fix or "")


def test_http_token_in_the_environment_or_on_the_command_line_warns(tmp_path: Path) -> None:
    install_http(tmp_path)
    (tmp_path / "etc/vllm-mcp/vllm-mcp.env").write_text("VLLM_MCP_HTTP_TOKEN=s3cret-visible\n")
    check = gateway(tmp_path)
    assert check.status == "warn" and "VLLM_MCP_HTTP_TOKEN is set" in check.message
    assert "s3cret-visible" not in shown(check)
    (tmp_path / "etc/vllm-mcp/vllm-mcp.env").write_text("")
    edit(tmp_path / HTTP_UNIT, "serve --transport http", "serve --transport http --token=s3cret-visible")
    check = gateway(tmp_path)
    assert check.status == "warn" and "command line" in check.message
    assert "s3cret-visible" not in shown(check)


def test_http_open_address_list_warns(tmp_path: Path) -> None:
    install_http(tmp_path, allow_from="10.0.0.5")
    edit(tmp_path / HTTP_DROPIN, "IPAddressAllow=localhost 10.0.0.5", "IPAddressAllow=localhost any")
    check = gateway(tmp_path)
    assert check.status == "warn" and "lets everyone in" in check.message


def test_http_token_file_unreadable_as_an_operator_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root reads everything, so the refusal a non-root operator meets is simulated.
    install_http(tmp_path)
    real = Path.read_text

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "http-tokens":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refuse)
    check = gateway(tmp_path)
    assert check.status == "warn" and "cannot read /etc/vllm-mcp/http-tokens" in check.message
    assert "sudo" in (check.fix or "")


def test_both_units_on_one_host_warn(tmp_path: Path) -> None:
    install_http(tmp_path)
    (tmp_path / UNIT).write_text((ROOT / "systemd/vllm-mcp-gateway.service").read_text())
    (tmp_path / GATEWAY_ENV).write_text("FMCP_SECURE_MODE=true\nFMCP_BEARER_TOKEN=" + "t" * 40 + "\n")
    check = gateway(tmp_path)
    assert check.status == "warn" and "share port 8099" in check.message
    assert "GATEWAY=http" in (check.fix or "")


def test_gateway_fresh_install_passes_and_never_shows_the_token(tmp_path: Path) -> None:
    token = install(tmp_path)
    check = gateway(tmp_path)
    assert check.status == "ok", check
    assert "localhost, 10.0.0.5, 192.168.10.0/24" in check.message
    assert check.details["token_set"] is True and check.details["secure_mode"] is True
    assert check.details["environment_files"] == ["/etc/vllm-mcp/gateway.env", "-/etc/vllm-mcp/vllm-mcp.env"]
    assert token not in shown(check)


@pytest.mark.parametrize(
    "old, new, says",
    [
        ("FMCP_BEARER_TOKEN=", "# FMCP_BEARER_TOKEN=", "no bearer token"),  # line gone
        ("FMCP_SECURE_MODE=true", "FMCP_SECURE_MODE=false", "without authentication"),
        ("FMCP_SECURE_MODE=true", "FMCP_SECURE_MODE=True", "without authentication"),  # FluidMCP wants 'true'
    ],
)
def test_gateway_without_token_warns(tmp_path: Path, old: str, new: str, says: str) -> None:
    token = install(tmp_path)
    edit(tmp_path / GATEWAY_ENV, old, new)
    check = gateway(tmp_path)
    assert check.status == "warn" and says in check.message, check
    assert check.fix and ("rotate-token.sh" in check.fix or "FMCP_SECURE_MODE=true" in check.fix)
    assert token not in shown(check)


def test_gateway_with_an_empty_token_warns(tmp_path: Path) -> None:
    token = install(tmp_path)
    edit(tmp_path / GATEWAY_ENV, f"FMCP_BEARER_TOKEN={token}", "FMCP_BEARER_TOKEN=")
    check = gateway(tmp_path)
    assert check.status == "warn" and "no bearer token" in check.message
    assert check.details["token_set"] is False


def test_gateway_env_file_is_the_one_the_unit_names(tmp_path: Path) -> None:
    install(tmp_path)
    moved = tmp_path / "etc/vllm-mcp/other.env"
    (tmp_path / GATEWAY_ENV).rename(moved)
    assert gateway(tmp_path).status == "warn"  # the named file is missing: the unit cannot start
    assert "missing" in gateway(tmp_path).message
    edit(
        tmp_path / UNIT,
        "EnvironmentFile=/etc/vllm-mcp/gateway.env",
        "EnvironmentFile=/etc/vllm-mcp/other.env",
    )
    assert gateway(tmp_path).status == "ok"


@pytest.mark.parametrize("opened", ["any", "0.0.0.0/0", "::/0", "10.0.0.5 0.0.0.0/0"])
def test_gateway_with_an_open_address_list_warns(tmp_path: Path, opened: str) -> None:
    install(tmp_path, allow_from="10.0.0.5")
    edit(tmp_path / DROPIN, "IPAddressAllow=localhost 10.0.0.5", f"IPAddressAllow=localhost {opened}")
    check = gateway(tmp_path)
    assert check.status == "warn" and "lets everyone in" in check.message, check
    assert "ALLOW_FROM" in (check.fix or "")


def test_gateway_deny_list_reset_or_removed_warns(tmp_path: Path) -> None:
    install(tmp_path)
    dropin = tmp_path / DROPIN
    # An empty IPAddressDeny= in the drop-in clears the unit's IPAddressDeny=any.
    edit(dropin, "IPAddressDeny=any", "IPAddressDeny=")
    check = gateway(tmp_path)
    assert check.status == "warn" and "no IPAddressDeny=any" in check.message
    # Without the drop-in the unit's own rules apply: localhost only, which is fine.
    dropin.unlink()
    check = gateway(tmp_path)
    assert check.status == "ok" and check.details["ip_address_allow"] == ["localhost"]
    edit(tmp_path / UNIT, "IPAddressDeny=any\n", "")
    assert "no IPAddressDeny=any" in gateway(tmp_path).message


def test_gateway_token_on_the_command_line_warns(tmp_path: Path) -> None:
    install(tmp_path)
    edit(tmp_path / UNIT, "config.json --file", "config.json --file --secure --token s3cret-visible")
    check = gateway(tmp_path)
    assert check.status == "warn" and "command line" in check.message
    assert "s3cret-visible" not in shown(check)


def test_gateway_as_the_service_user_uses_the_environment_systemd_gave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ExecStartPre runs as User=vllm-mcp: the root-only gateway.env cannot be read (root reads
    # everything, so the refusal is simulated), but systemd put its variables in the environment.
    install(tmp_path)
    real = config_files.read_env_file

    def as_service_user(path: Path) -> dict[str, str]:
        if path.name == "gateway.env":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(config_files, "read_env_file", as_service_user)
    given = {"FMCP_SECURE_MODE": "true", "FMCP_BEARER_TOKEN": "from-systemd-abc"}
    check = gateway(tmp_path, given)
    assert check.status == "ok" and "from-systemd-abc" not in shown(check)
    check = gateway(tmp_path, {"FMCP_SECURE_MODE": "true"})
    assert check.status == "warn" and "no bearer token" in check.message
    check = gateway(tmp_path, {})  # an operator without root: not checked, and says so
    assert check.status == "warn" and "cannot read /etc/vllm-mcp/gateway.env" in check.message
    assert "sudo" in (check.fix or "")


def test_unit_parsing_follows_systemd() -> None:
    unit = "[Unit]\nIPAddressDeny=ignored\n[Service]\n# c\n; c\nIPAddressAllow=localhost \\\n  10.0.0.1\n"
    dropin = "[Service]\nIPAddressAllow=\nIPAddressAllow=10.0.0.2\nIPAddressAllow=10.0.0.3\n"
    entries = gateway_module.parse_unit_service([unit, dropin])
    assert gateway_module.address_list(entries, "IPAddressDeny") == []
    assert gateway_module.address_list(entries[:1], "IPAddressAllow") == ["localhost", "10.0.0.1"]
    assert gateway_module.address_list(entries, "IPAddressAllow") == ["10.0.0.2", "10.0.0.3"]


def test_doctor_root_option_warnings_do_not_fail_the_unit_start(tmp_path: Path) -> None:
    # The unit runs `vllm-mcp doctor` as ExecStartPre: a warning must not stop the gateway.
    token = install(tmp_path)
    env = {"HF_HUB_OFFLINE": "1", "VLLM_MCP_CACHE_DIR": str(tmp_path / "cache")}
    result = invoke("doctor", "--json", "--root", str(tmp_path), env=env)
    ok = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["gateway"]
    assert ok["status"] == "ok", ok
    assert token not in result.stdout + result.stderr
    edit(tmp_path / GATEWAY_ENV, f"FMCP_BEARER_TOKEN={token}", "FMCP_BEARER_TOKEN=")
    result = invoke("doctor", "--root", str(tmp_path), env=env)
    line = next(line for line in result.stdout.splitlines() if line.startswith("warn  gateway"))
    assert "no bearer token" in line
    assert result.exit_code == (1 if "\nFAIL " in "\n" + result.stdout else 0)
    assert invoke("doctor", "--root", str(tmp_path / "nowhere")).exit_code == 2


NAMES = {"db.example.test": ["10.0.0.7"], "auth.example.test": ["203.0.113.9", "2001:db8::9"]}


def resolve(host: str) -> list[str]:
    return NAMES.get(host, [host] if host[:1].isdigit() or ":" in host else [])


def test_http_says_when_the_unit_cannot_reach_the_store_or_the_issuer(tmp_path: Path) -> None:
    """IPAddressDeny=any filters egress too: a remote store outside the list is unreachable."""
    from tests.support.deploy import ok, run

    ok(run("install.sh", tmp_path, ALLOW_FROM="10.0.0.5"))
    model_env = tmp_path / "etc/vllm-mcp/vllm-mcp.env"
    model_env.write_text(
        "VLLM_MCP_SESSION_STORE=postgresql://mcp@db.example.test:5432/sessions\n"
        "VLLM_MCP_OAUTH_ISSUER=https://auth.example.test/realms/main\n"
    )
    check = gateway_module.check_gateway(Probes(root=tmp_path, environ={}, resolve=resolve))
    assert check.status == "warn", check
    assert (
        "the session store (VLLM_MCP_SESSION_STORE) at db.example.test (10.0.0.7) is outside the unit's "
        "IPAddressAllow=" in check.message
    )
    assert (
        "the OAuth issuer (VLLM_MCP_OAUTH_ISSUER) at auth.example.test (203.0.113.9 2001:db8::9)"
        in check.message
    )
    assert 'ALLOW_TO="10.0.0.7 203.0.113.9 2001:db8::9" deploy/install.sh' in (check.fix or "")
    # What the fix says, done (the names resolved as the doctor's resolver does): no warning.
    ok(run("install.sh", tmp_path, ALLOW_TO="10.0.0.7 203.0.113.9 2001:db8::9"))
    check = gateway_module.check_gateway(Probes(root=tmp_path, environ={}, resolve=resolve))
    assert check.status == "ok", check
    # A store on this host needs nothing.
    model_env.write_text("VLLM_MCP_SESSION_STORE=postgresql://mcp@127.0.0.1/sessions\n")
    ok(run("install.sh", tmp_path, ALLOW_TO=""))
    assert gateway_module.check_gateway(Probes(root=tmp_path, environ={}, resolve=resolve)).status == "ok"


def test_replicas_say_when_they_cannot_reach_the_shared_store(tmp_path: Path) -> None:
    from tests.support.deploy import ok, run
    from vllm_mcp.doctor.gpu import GpuProbe
    from vllm_mcp.doctor.replicas import check_replicas

    ok(run("install.sh", tmp_path, REPLICAS="1"))
    (tmp_path / "etc/vllm-mcp/vllm-mcp.env").write_text(
        "VLLM_MCP_SESSION_STORE=postgresql://mcp@10.0.0.7/sessions\n"
    )
    probes = Probes(root=tmp_path, environ={}, resolve=resolve)
    check = check_replicas(probes, GpuProbe([]))
    assert (
        check is not None and "session store (VLLM_MCP_SESSION_STORE) at 10.0.0.7 is outside" in check.message
    )
    ok(run("install.sh", tmp_path))  # install.sh reads the env file again and allows it
    check = check_replicas(probes, GpuProbe([]))
    assert check is not None and "outside" not in check.message
