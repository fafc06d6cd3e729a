"""The deployed gateway (deploy/install.sh): its bearer token is on and its address list closed."""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from pathlib import Path

from vllm_mcp import config
from vllm_mcp.doctor.probes import Probes
from vllm_mcp.doctor.report import Check

GATEWAY_UNIT = "/etc/systemd/system/vllm-mcp-gateway.service"
GATEWAY_ENV = "/etc/vllm-mcp/gateway.env"
EVERYONE = frozenset({"any", "0.0.0.0/0", "::/0"})


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def parse_unit_service(texts: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of the ``[Service]`` section of a unit and its drop-ins, in order.

    systemd's syntax: ``#``/``;`` comments, a trailing backslash continues a line.
    """
    out: list[tuple[str, str]] = []
    for text in texts:
        section, pending = "", ""
        for raw in text.splitlines():
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif section == "Service" and "=" in line:
                key, _, value = line.partition("=")
                out.append((key.strip(), value.strip()))
    return out


def address_list(entries: Sequence[tuple[str, str]], key: str) -> list[str]:
    """An ``IPAddressAllow=``/``IPAddressDeny=`` list: values add up, an empty one resets."""
    items: list[str] = []
    for k, value in entries:
        if k == key:
            items = items + value.split() if value else []
    return items


def _covers_everyone(item: str) -> bool:
    if item in EVERYONE:
        return True
    try:
        return ipaddress.ip_network(item, strict=False).prefixlen == 0
    except ValueError:
        return False  # localhost, link-local, multicast: systemd's names for small ranges


def check_gateway(p: Probes) -> Check:
    """On a host with the gateway unit: its bearer token is on and its address list is closed."""
    unit = _under(p.root, GATEWAY_UNIT)
    if not unit.is_file():
        return Check("gateway", "ok", f"no gateway unit installed ({unit})")
    dropins = sorted(unit.with_name(unit.name + ".d").glob("*.conf"))
    try:
        entries = parse_unit_service([f.read_text(encoding="utf-8") for f in [unit, *dropins]])
    except OSError as e:
        return Check("gateway", "warn", f"cannot read the gateway unit: {e}", "run `vllm-mcp doctor` as root")
    problems: list[str] = []
    fixes: list[str] = []

    # The token: FluidMCP refuses unauthenticated calls only with both variables set.
    env: dict[str, str] = {}
    for key, value in entries:  # Environment= first; EnvironmentFile= overrides it
        if key == "Environment":
            try:
                items = shlex.split(value)
            except ValueError:  # unbalanced quotes: systemd ignores the line too
                items = []
            for item in items:
                name, _, val = item.partition("=")
                env[name] = val
    files = [v for k, v in entries if k == "EnvironmentFile" and v]
    unreadable: list[str] = []
    for spec in files:
        optional, path = spec.startswith("-"), spec.removeprefix("-")
        try:
            env.update(config.read_env_file(_under(p.root, path)))
        except FileNotFoundError:
            if not optional:
                problems.append(f"{path} is missing, so the gateway cannot start")
                fixes.append("run deploy/install.sh: it writes the file with a new token")
        except PermissionError:
            unreadable.append(path)
        except (OSError, UnicodeDecodeError, config.ConfigError) as e:
            problems.append(f"{path} cannot be read: {str(e).splitlines()[0]}")
            fixes.append(f"correct {path} (KEY=value lines)")
    source = "the unit's environment files"
    if unreadable:
        # As the unit's ExecStartPre (User=vllm-mcp) the root-only file is out of reach, but
        # systemd has put its variables in this process's environment.
        own = p.environ if p.environ is not None else config.child_environment()
        if "FMCP_SECURE_MODE" in own or "FMCP_BEARER_TOKEN" in own:
            env.update({k: own[k] for k in ("FMCP_SECURE_MODE", "FMCP_BEARER_TOKEN") if k in own})
            source = "the environment the unit gave this process"
        else:
            return Check(
                "gateway",
                "warn",
                f"cannot read {', '.join(unreadable)} as this user; token not checked",
                "run `sudo vllm-mcp doctor` to check the gateway",
            )
    secure = env.get("FMCP_SECURE_MODE") == "true"
    token = bool(env.get("FMCP_BEARER_TOKEN", "").strip())
    if not secure:
        problems.append("runs without authentication: FMCP_SECURE_MODE is not 'true' in " + source)
        fixes.append(f"set FMCP_SECURE_MODE=true in {GATEWAY_ENV} (deploy/install.sh does)")
    if not token:
        problems.append(f"no bearer token: FMCP_BEARER_TOKEN is empty or unset in {source}")
        fixes.append("generate one with deploy/rotate-token.sh")
    if any(
        arg == "--token" or arg.startswith("--token=")
        for k, v in entries
        if k == "ExecStart"
        for arg in v.split()
    ):
        problems.append("ExecStart= passes the token on the command line, where `ps` shows it")
        fixes.append(f"remove --token from ExecStart=; the token belongs in {GATEWAY_ENV}")

    # The network: systemd allows what IPAddressAllow= matches, else denies what IPAddressDeny= matches.
    allow = address_list(entries, "IPAddressAllow")
    deny = address_list(entries, "IPAddressDeny")
    open_items = [a for a in allow if _covers_everyone(a)]
    if not any(_covers_everyone(d) for d in deny):
        problems.append("no IPAddressDeny=any: every address can reach the gateway port")
        fixes.append("restore the unit and re-run deploy/install.sh (it writes IPAddressDeny=any)")
    if open_items:
        problems.append(f"IPAddressAllow= lets everyone in ({' '.join(open_items)})")
        fixes.append('list your clients: ALLOW_FROM="10.0.0.5 ..." deploy/install.sh')

    details = {
        "unit": str(unit),
        "dropins": [str(d) for d in dropins],
        "environment_files": files,
        "secure_mode": secure,
        "token_set": token,
        "ip_address_allow": allow,
        "ip_address_deny": deny,
    }
    if problems:
        return Check("gateway", "warn", "; ".join(problems), "; ".join(dict.fromkeys(fixes)), details)
    reach = ", ".join(allow) if allow else "nobody"
    return Check("gateway", "ok", f"bearer token on; reachable from {reach} only", details=details)
