"""What the service must reach, against what its unit lets it reach.

systemd's ``IPAddressAllow=``/``IPAddressDeny=`` filter a unit's packets in both directions
(the source address of what comes in, the destination of what goes out), so with
``IPAddressDeny=any`` a remote session store or OAuth issuer is out of reach unless its address
is allowed too: the server then fails at start and restarts in a loop. deploy/install.sh
allows them (``ALLOW_TO``, and the hosts vllm-mcp.env names); this check says when a
configured destination is outside the list, and how to add it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

from vllm_mcp.config.rules import is_loopback

# systemd's symbolic names (systemd.resource-control(5), "Special address/network names").
_SYMBOLIC = {
    "any": ("0.0.0.0/0", "::/0"),
    "localhost": ("127.0.0.0/8", "::1/128"),
    "link-local": ("169.254.0.0/16", "fe80::/64"),
    "multicast": ("224.0.0.0/4", "ff00::/8"),
}
_URL_SETTINGS = ("VLLM_MCP_OAUTH_ISSUER", "VLLM_MCP_OAUTH_JWKS_URL", "VLLM_MCP_OAUTH_INTROSPECTION_URL")

Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """The addresses ``host`` resolves to here (empty when it does not)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def destinations(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(what, host) for each remote host the settings in ``env`` make the server connect to."""
    out: list[tuple[str, str]] = []
    store = env.get("VLLM_MCP_SESSION_STORE", "").strip()
    if store.lower().startswith(("postgresql://", "postgres://")):
        netloc = urlsplit(store).netloc.rpartition("@")[2]
        for item in netloc.split(","):  # libpq: several hosts, each with its port
            host = item.rsplit(":", 1)[0] if not item.endswith("]") else item
            if host.startswith("["):
                host = host[1:].split("]", 1)[0]
            out.append(("the session store (VLLM_MCP_SESSION_STORE)", host or "localhost"))
    for name in _URL_SETTINGS:
        named = urlsplit(env.get(name, "").strip()).hostname
        if named:
            out.append((f"the OAuth issuer ({name})", named))
    return [(what, host) for what, host in dict.fromkeys(out) if not is_loopback(host)]


def allowed(address: str, allow: Sequence[str]) -> bool:
    """Whether systemd's ``IPAddressAllow=`` list ``allow`` matches ``address``."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    for item in allow:
        for spec in _SYMBOLIC.get(item, (item,)):
            try:
                if ip in ipaddress.ip_network(spec, strict=False):
                    return True
            except ValueError:
                continue
    return False


def unreachable(
    env: Mapping[str, str], allow: Sequence[str], resolver: Resolver = resolve
) -> tuple[list[str], list[str]]:
    """Problems and fixes for each configured destination outside ``allow`` (with Deny=any)."""
    problems: list[str] = []
    missing: list[str] = []
    for what, host in destinations(env):
        addresses = resolver(host)
        if not addresses:
            continue  # the store and OAuth checks say that the name does not resolve
        outside = [a for a in addresses if not allowed(a, allow)]
        if outside:
            shown = host if outside == [host] else f"{host} ({' '.join(outside)})"
            problems.append(
                f"{what} at {shown} is outside the unit's IPAddressAllow=, which filters outbound "
                "connections too: the server cannot reach it"
            )
            missing += outside
    fixes = []
    if missing:
        fixes.append(
            f'let the unit reach it: sudo ALLOW_TO="{" ".join(dict.fromkeys(missing))}" deploy/install.sh '
            "(docs/deploying-http.md#what-the-server-may-reach)"
        )
    return problems, fixes
