# shellcheck shell=bash disable=SC2034
# Shared by install.sh, upgrade.sh, uninstall.sh and rotate-token.sh (sourced, not run).
#
# DESTDIR: stage everything under this directory instead of / . Under a DESTDIR no user is
# created, no ownership is changed and systemctl is never called, so the scripts can be
# tested in a throw-away tree.

DESTDIR=${DESTDIR:-}
PREFIX=/opt/vllm-mcp
ETC=/etc/vllm-mcp
UNITDIR=/etc/systemd/system
HTTP_UNIT=vllm-mcp-http.service
FLUID_UNIT=vllm-mcp-gateway.service
PREFETCH_UNIT=vllm-mcp-prefetch.service
WORKER_UNIT=vllm-mcp-worker.service
REPLICA_UNIT=vllm-mcp-http@.service # a template: vllm-mcp-http@0.service, @1, ...
REPLICA_PORT=8100                   # replica i listens on REPLICA_PORT + i
HAPROXY_CFG=$ETC/haproxy.cfg
HAPROXY_DROPIN=$UNITDIR/haproxy.service.d/vllm-mcp.conf
GATEWAY_ENV=$ETC/gateway.env
HTTP_TOKENS=$ETC/http-tokens
MODEL_ENV=$ETC/vllm-mcp.env
INSTALL_CONF=$ETC/install.conf
SERVICE_USER=vllm-mcp
PYTHON=${PYTHON:-python3}

say() { printf 'vllm-mcp: %s\n' "$*"; }
die() { printf 'vllm-mcp: error: %s\n' "$*" >&2; exit 1; }

# The path as seen from this process: $DESTDIR + the path on the target host.
at() { printf '%s%s' "$DESTDIR" "$1"; }

# GATEWAY=http: `vllm-mcp serve --transport http` in vllm-mcp-http.service.
# GATEWAY=fluidmcp: the FluidMCP gateway running `vllm-mcp serve` (vllm-mcp-gateway.service).
unit_of() {
    case "$1" in
    http) echo "$HTTP_UNIT" ;;
    fluidmcp) echo "$FLUID_UNIT" ;;
    worker) echo "$WORKER_UNIT" ;; # ROLE=worker: a worker node of a multi-node model, no server
    *) die "GATEWAY must be http or fluidmcp, not '$1'" ;;
    esac
}
dropin_of() { printf '%s/%s.d/network.conf' "$UNITDIR" "$1"; }

# The gateway installed here: what the last install chose (install.conf), else the unit an
# older release left (it knew only FluidMCP); nothing when nothing is installed.
installed_gateway() {
    local conf chosen=""
    conf=$(at "$INSTALL_CONF")
    if [ -f "$conf" ]; then
        chosen=$(sed -n 's/^GATEWAY=//p' "$conf" | tr -d '"' | tail -n 1)
    fi
    if [ -n "$chosen" ]; then
        echo "$chosen"
    elif [ -f "$(at "$UNITDIR/$FLUID_UNIT")" ]; then
        echo fluidmcp
    elif [ -f "$(at "$UNITDIR/$HTTP_UNIT")" ]; then
        echo http
    fi
}

# A setting remembered in install.conf: remembered NAME (empty when never set).
remembered() {
    local conf
    conf=$(at "$INSTALL_CONF")
    [ -f "$conf" ] || return 0
    sed -n "s/^$1=//p" "$conf" | tr -d '"' | tail -n 1
}

# The replica instances whose env files exist here: 0 1 2 ...
replica_instances() {
    local f
    for f in "$(at "$ETC")"/http@*.env; do
        [ -f "$f" ] || continue
        f=${f##*/http@}
        echo "${f%.env}"
    done | sort -n
}

# True on a real host (no DESTDIR): only then users, ownership and systemctl are touched.
live() { [ -z "$DESTDIR" ]; }

systemctl_live() {
    if live && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        systemctl "$@"
    fi
}

owner_root() {
    if live; then chown root:root "$@"; fi
}

new_token() {
    "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))'
}

# Write the gateway's env file: FMCP_SECURE_MODE=true and FMCP_BEARER_TOKEN=$2, every
# other line kept. Atomic (rename), 0600, root's. The token never reaches stdout.
write_gateway_env() {
    local file tmp token=$2
    file=$(at "$1")
    mkdir -p "$(dirname "$file")"
    tmp=$(mktemp "$file.XXXXXX")
    chmod 0600 "$tmp"
    {
        echo "# FluidMCP reads these two from its environment and checks every request's"
        echo "# 'Authorization: Bearer <token>'. Rotate with deploy/rotate-token.sh."
        echo "FMCP_SECURE_MODE=true"
        echo "FMCP_BEARER_TOKEN=$token"
        if [ -f "$file" ]; then
            grep -v -E '^(FMCP_SECURE_MODE|FMCP_BEARER_TOKEN)=|^# FluidMCP reads these|^# .Authorization: Bearer' \
                "$file" || true
        fi
    } >"$tmp"
    owner_root "$tmp"
    mv -f "$tmp" "$file"
}

# Write the HTTP server's token file: exactly $2 (one token, or name:token lines). Atomic
# (rename: the server sees the old file or the new one, never half of one), 0600 and owned by
# the service's user: the server re-reads it by path while it runs (rotation without a
# restart), and it warns about a token file that anyone else may read. The service cannot
# change it (ProtectSystem=strict makes /etc read-only to it). The tokens never reach stdout.
write_http_tokens() {
    local file tmp
    file=$(at "$1")
    mkdir -p "$(dirname "$file")"
    tmp=$(mktemp "$file.XXXXXX")
    chmod 0600 "$tmp"
    printf '%s\n' "$2" >"$tmp"
    if live; then chown "$SERVICE_USER:$SERVICE_USER" "$tmp"; fi
    mv -f "$tmp" "$file"
}

# The token in the gateway env file, or nothing.
current_token() {
    local file
    file=$(at "$GATEWAY_ENV")
    [ -f "$file" ] || return 0
    sed -n 's/^FMCP_BEARER_TOKEN=//p' "$file" | tail -n 1
}

# deploy/haproxy/vllm-mcp.cfg with its listening address, who may connect besides localhost
# (space-separated addresses or networks, may be empty) and one server per replica:
#   haproxy_config TEMPLATE BIND ALLOW HOST:PORT...   (to stdout)
# Every `server replica0 ...` line becomes one line per HOST:PORT (replica0, replica1, ...);
# the template's other replicaN lines are dropped. The docs/scaling.md commands use it too.
# With TLS_CERT=/path/to.pem (certificate chain and key) in the environment the port serves
# HTTPS (TLS 1.2 or later), and tells browsers to stay on it.
haproxy_config() {
    local template=$1 bind=$2 allow=$3
    shift 3
    [ $# -gt 0 ] || die "haproxy_config: no replica address given"
    case "${TLS_CERT:-}" in *[[:space:]]*) die "haproxy_config: TLS_CERT must be a path without spaces" ;; esac
    awk -v bind="$bind" -v allow="$allow" -v servers="$*" -v cert="${TLS_CERT:-}" '
        BEGIN { n = split(servers, addr, " ") }
        /^[ \t]+bind / {
            tls = cert == "" ? "" : " ssl crt " cert " alpn h2,http/1.1 ssl-min-ver TLSv1.2"
            sub(/bind .*/, "bind " bind tls); print
            if (cert != "") {
                line = $0
                sub(/bind .*/, "http-response set-header Strict-Transport-Security \"max-age=31536000\"", line)
                print line
            }
            next
        }
        /^[ \t]+tcp-request connection reject unless \{ src / {
            sub(/\{ src .*/, "{ src 127.0.0.0/8 ::1" (allow == "" ? "" : " " allow) " }"); print; next
        }
        /^[ \t]+server replica0 / {
            for (i = 1; i <= n; i++) {
                line = $0
                gsub(/replica0/, "replica" (i - 1), line)
                sub(/ [^ ]+:[0-9]+ /, " " addr[i] " ", line)
                print line
            }
            next
        }
        /^[ \t]+server replica[0-9]+ / { next }
        { print }
    ' "$template"
}
