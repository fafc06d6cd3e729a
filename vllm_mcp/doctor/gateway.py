"""The deployed service (deploy/install.sh): its bearer token is on and its address list closed.

Either kind install.sh sets up: vllm-mcp-http.service (`vllm-mcp serve --transport http`,
tokens in a file it reads by path) or vllm-mcp-gateway.service (FluidMCP, token in its
environment). Tokens are checked for presence, never shown.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Sequence
from pathlib import Path

from vllm_mcp.config import files as config_files
from vllm_mcp.config import settings as config
from vllm_mcp.doctor import egress
from vllm_mcp.doctor.probes import Probes
from vllm_mcp.doctor.report import Check
from vllm_mcp.protocol.auth import TokenFileError, parse_tokens

GATEWAY_UNIT = "/etc/systemd/system/vllm-mcp-gateway.service"
GATEWAY_ENV = "/etc/vllm-mcp/gateway.env"
HTTP_UNIT = "/etc/systemd/system/vllm-mcp-http.service"
HTTP_TOKENS = "/etc/vllm-mcp/http-tokens"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
EVERYONE = frozenset({"any", "0.0.0.0/0", "::/0"})
# What the unit's ExecStartPre (User=vllm-mcp) takes from its own environment when the root-only
# model env file is out of reach: the address it serves, and the hosts it must reach.
_UNIT_VARIABLES = ("VLLM_MCP_HTTP_", "VLLM_MCP_SESSION_STORE", "VLLM_MCP_OAUTH_")


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
    """The installed service unit(s): token on, not on a command line, address list closed."""
    units = [u for u in (HTTP_UNIT, GATEWAY_UNIT) if _under(p.root, u).is_file()]
    if not units:
        return Check("gateway", "ok", f"no gateway unit installed ({HTTP_UNIT}, {GATEWAY_UNIT})")
    checks = [_check_http(p) if u == HTTP_UNIT else _check_fluidmcp(p) for u in units]
    if len(checks) == 1:
        return checks[0]
    # Both on one host (install.sh never leaves that): they share port 8099.
    problems = [c.message for c in checks if c.status != "ok"]
    fixes = [c.fix for c in checks if c.fix]
    problems.append("both vllm-mcp-http and vllm-mcp-gateway are installed; they share port 8099")
    fixes.append("re-run deploy/install.sh with GATEWAY=http or GATEWAY=fluidmcp: it removes the other")
    details = {"units": [c.details for c in checks]}
    return Check("gateway", "warn", "; ".join(problems), "; ".join(dict.fromkeys(fixes)), details)


def _read_unit(p: Probes, path: str) -> tuple[Path, list[Path], list[tuple[str, str]]]:
    unit = _under(p.root, path)
    dropins = sorted(unit.with_name(unit.name + ".d").glob("*.conf"))
    return unit, dropins, parse_unit_service([f.read_text(encoding="utf-8") for f in [unit, *dropins]])


def _environment(
    p: Probes, entries: Sequence[tuple[str, str]], problems: list[str], fixes: list[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """The unit's environment (Environment=, then EnvironmentFile= over it), the files it
    names, and those this user cannot read."""
    env: dict[str, str] = {}
    for key, value in entries:
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
            env.update(config_files.read_env_file(_under(p.root, path)))
        except FileNotFoundError:
            if not optional:
                problems.append(f"{path} is missing, so the service cannot start")
                fixes.append("run deploy/install.sh: it writes the file with a new token")
        except PermissionError:
            unreadable.append(path)
        except (OSError, UnicodeDecodeError, config.ConfigError) as e:
            problems.append(f"{path} cannot be read: {str(e).splitlines()[0]}")
            fixes.append(f"correct {path} (KEY=value lines)")
    return env, files, unreadable


def _token_on_command_line(
    entries: Sequence[tuple[str, str]], problems: list[str], fixes: list[str], where: str
) -> None:
    if any(
        arg.split("=", 1)[0] in ("--token", "--http-token")
        for k, v in entries
        if k in ("ExecStart", "ExecStartPre", "ExecStartPost")
        for arg in v.split()
    ):
        problems.append("the unit passes a token on a command line, where `ps` shows it")
        fixes.append(f"remove --token from the unit; the token belongs in {where}")


def _network(
    entries: Sequence[tuple[str, str]], problems: list[str], fixes: list[str]
) -> tuple[list[str], list[str]]:
    """systemd allows what IPAddressAllow= matches, else denies what IPAddressDeny= matches."""
    allow = address_list(entries, "IPAddressAllow")
    deny = address_list(entries, "IPAddressDeny")
    open_items = [a for a in allow if _covers_everyone(a)]
    if not any(_covers_everyone(d) for d in deny):
        problems.append("no IPAddressDeny=any: every address can reach the gateway port")
        fixes.append("restore the unit and re-run deploy/install.sh (it writes IPAddressDeny=any)")
    if open_items:
        problems.append(f"IPAddressAllow= lets everyone in ({' '.join(open_items)})")
        fixes.append('list your clients: ALLOW_FROM="10.0.0.5 ..." deploy/install.sh')
    return allow, deny


def unit_egress(p: Probes, path: str) -> tuple[list[str], list[str]]:
    """The configured store and issuer that unit ``path`` (with drop-ins) cannot reach."""
    try:
        _, _, entries = _read_unit(p, path)
    except OSError:
        return [], []
    if not any(_covers_everyone(d) for d in address_list(entries, "IPAddressDeny")):
        return [], []
    env, _, unreadable = _environment(p, entries, [], [])
    if unreadable:
        own = p.environ if p.environ is not None else config.child_environment()
        env.update({k: v for k, v in own.items() if k.startswith(_UNIT_VARIABLES)})
    return egress.unreachable(env, address_list(entries, "IPAddressAllow"), p.resolve)


def _check_http(p: Probes) -> Check:
    """vllm-mcp-http.service: a token file the server can read and nobody else can."""
    try:
        unit, dropins, entries = _read_unit(p, HTTP_UNIT)
    except OSError as e:
        return Check("gateway", "warn", f"cannot read the HTTP unit: {e}", "run `vllm-mcp doctor` as root")
    problems: list[str] = []
    fixes: list[str] = []
    env, files, unreadable = _environment(p, entries, problems, fixes)
    if unreadable:
        # As the unit's ExecStartPre (User=vllm-mcp) the root-only model env file is out of
        # reach, but systemd has put its variables in this process's environment.
        own = p.environ if p.environ is not None else config.child_environment()
        env.update({k: v for k, v in own.items() if k.startswith(_UNIT_VARIABLES)})
    host = env.get("VLLM_MCP_HTTP_HOST", "127.0.0.1")
    port = env.get("VLLM_MCP_HTTP_PORT", "8000")
    token_file = env.get("VLLM_MCP_HTTP_TOKEN_FILE", "").strip()
    tokens: int | None = None
    if not token_file:
        if host in LOOPBACK_HOSTS:
            problems.append("no VLLM_MCP_HTTP_TOKEN_FILE: every local user and process may call the server")
        else:
            problems.append(f"no VLLM_MCP_HTTP_TOKEN_FILE: the server refuses to bind {host} without one")
        fixes.append(f"set Environment=VLLM_MCP_HTTP_TOKEN_FILE={HTTP_TOKENS} (re-run deploy/install.sh)")
    else:
        path = _under(p.root, token_file)
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{token_file} is missing, so every call is refused")
            fixes.append("run deploy/install.sh: it writes the file with a new token")
        except PermissionError:
            return Check(
                "gateway",
                "warn",
                f"cannot read {token_file} as this user; token not checked",
                "run `sudo vllm-mcp doctor` to check the token file",
            )
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{token_file} cannot be read: {type(e).__name__}")
            fixes.append(f"write one token, or one name:token per line, into {token_file}")
        else:
            try:  # the server's own reading of the file; its errors never quote a token
                tokens = len(parse_tokens(text, token_file))
            except TokenFileError as e:
                problems.append(f"no usable bearer token, so every call is refused: {e}")
                fixes.append(f"generate one with deploy/rotate-token.sh, or correct {token_file}")
            if mode & 0o077:
                problems.append(f"{token_file} is open to users other than its owner (mode {mode & 0o777:o})")
                fixes.append(f"chmod 0600 {token_file} (owner vllm-mcp, as deploy/install.sh makes it)")
    for name in env:
        if name.startswith("VLLM_MCP_HTTP_TOKEN") and name != "VLLM_MCP_HTTP_TOKEN_FILE":
            problems.append(
                f"{name} is set in the unit's environment; the server reads tokens only from a file"
            )
            fixes.append(f"remove {name}; put the token in {HTTP_TOKENS}")
    _token_on_command_line(entries, problems, fixes, HTTP_TOKENS)
    allow, deny = _network(entries, problems, fixes)
    if any(_covers_everyone(d) for d in deny):  # the list filters what goes out, too
        outside, widen = egress.unreachable(env, allow, p.resolve)
        problems += outside
        fixes += widen
    details = {
        "unit": str(unit),
        "dropins": [str(d) for d in dropins],
        "environment_files": files,
        "endpoint": f"http://{host}:{port}/mcp",
        "token_file": token_file or None,
        "tokens": tokens,
        "token_set": bool(tokens),
        "ip_address_allow": allow,
        "ip_address_deny": deny,
    }
    if problems:
        return Check("gateway", "warn", "; ".join(problems), "; ".join(dict.fromkeys(fixes)), details)
    reach = ", ".join(allow) if allow else "nobody"
    count = f"{tokens} token{'s' if tokens != 1 else ''}"
    return Check(
        "gateway",
        "ok",
        f"vllm-mcp-http: bearer token on ({count} in {token_file}); reachable from {reach} only",
        details=details,
    )


def _check_fluidmcp(p: Probes) -> Check:
    """vllm-mcp-gateway.service: FluidMCP's secure mode and token in its environment."""
    try:
        unit, dropins, entries = _read_unit(p, GATEWAY_UNIT)
    except OSError as e:
        return Check("gateway", "warn", f"cannot read the gateway unit: {e}", "run `vllm-mcp doctor` as root")
    problems: list[str] = []
    fixes: list[str] = []
    # The token: FluidMCP refuses unauthenticated calls only with both variables set.
    env, files, unreadable = _environment(p, entries, problems, fixes)
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
    _token_on_command_line(entries, problems, fixes, GATEWAY_ENV)
    allow, deny = _network(entries, problems, fixes)
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
    return Check(
        "gateway", "ok", f"FluidMCP gateway: bearer token on; reachable from {reach} only", details=details
    )
