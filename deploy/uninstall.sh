#!/usr/bin/env bash
# Remove vllm-mcp's units (the HTTP server's, its replicas' or the FluidMCP gateway's, whichever
# are there), the HAProxy balancer's config, the gateway config and the Python environment. The env files and token files, the model
# cache and the service user stay unless PURGE=1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR)"
fi

for i in $(replica_instances); do
    systemctl_live disable --now "vllm-mcp-http@$i.service" >/dev/null 2>&1 || true
done
systemctl_live disable --now "$HTTP_UNIT" "$FLUID_UNIT" "$WORKER_UNIT" "$PREFETCH_UNIT" >/dev/null 2>&1 || true
for unit in "$HTTP_UNIT" "$FLUID_UNIT" "$WORKER_UNIT" "$PREFETCH_UNIT" "$REPLICA_UNIT"; do
    rm -f "$(at "$UNITDIR/$unit")" "$(at "$(dropin_of "$unit")")"
    rmdir "$(at "$UNITDIR/$unit.d")" 2>/dev/null || true
done
# The balancer (BALANCER=haproxy): HAProxy goes back to its own config alone.
had_balancer=0
if [ -f "$(at "$HAPROXY_DROPIN")" ]; then had_balancer=1; fi
rm -f "$(at "$HAPROXY_DROPIN")" "$(at "$HAPROXY_CFG")"
rmdir "$(at "$(dirname "$HAPROXY_DROPIN")")" 2>/dev/null || true
rm -rf "$(at "$PREFIX")" "$(at "$ETC/fluidmcp")"
systemctl_live daemon-reload
if [ "$had_balancer" = 1 ]; then systemctl_live try-restart haproxy.service; fi

if [ "${PURGE:-0}" = 1 ]; then
    rm -rf "$(at "$ETC")" "$(at /var/lib/vllm-mcp)" "$(at /var/cache/vllm-mcp)" "$(at /var/log/vllm-mcp)"
    if live && id "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER"; fi
    say "removed everything, env files, tokens and model cache included"
else
    say "removed; kept $ETC (env files, tokens) and the model cache (PURGE=1 removes them)"
fi
