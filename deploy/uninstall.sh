#!/usr/bin/env bash
# Remove vllm-mcp's units (the HTTP server's or the FluidMCP gateway's, whichever is there),
# the gateway config and the Python environment. The env files and token files, the model
# cache and the service user stay unless PURGE=1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR)"
fi

systemctl_live disable --now "$HTTP_UNIT" "$FLUID_UNIT" "$WORKER_UNIT" "$PREFETCH_UNIT" >/dev/null 2>&1 || true
for unit in "$HTTP_UNIT" "$FLUID_UNIT" "$WORKER_UNIT" "$PREFETCH_UNIT"; do
    rm -f "$(at "$UNITDIR/$unit")" "$(at "$(dropin_of "$unit")")"
    rmdir "$(at "$UNITDIR/$unit.d")" 2>/dev/null || true
done
rm -rf "$(at "$PREFIX")" "$(at "$ETC/fluidmcp")"
systemctl_live daemon-reload

if [ "${PURGE:-0}" = 1 ]; then
    rm -rf "$(at "$ETC")" "$(at /var/lib/vllm-mcp)" "$(at /var/cache/vllm-mcp)" "$(at /var/log/vllm-mcp)"
    if live && id "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER"; fi
    say "removed everything, env files, tokens and model cache included"
else
    say "removed; kept $ETC (env files, tokens) and the model cache (PURGE=1 removes them)"
fi
