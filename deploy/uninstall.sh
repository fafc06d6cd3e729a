#!/usr/bin/env bash
# Remove vllm-mcp's units, gateway config and Python environment. The env files (token,
# model settings), the model cache and the service user stay unless PURGE=1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR)"
fi

systemctl_live disable --now "$UNIT" "$PREFETCH_UNIT" >/dev/null 2>&1 || true
rm -f "$(at "$UNITDIR/$UNIT")" "$(at "$UNITDIR/$PREFETCH_UNIT")" "$(at "$DROPIN")"
rmdir "$(at "$UNITDIR/$UNIT.d")" 2>/dev/null || true
rm -rf "$(at "$PREFIX")" "$(at "$ETC/fluidmcp")"
systemctl_live daemon-reload

if [ "${PURGE:-0}" = 1 ]; then
    rm -rf "$(at "$ETC")" "$(at /var/lib/vllm-mcp)" "$(at /var/cache/vllm-mcp)" "$(at /var/log/vllm-mcp)"
    if live && id "$SERVICE_USER" >/dev/null 2>&1; then userdel "$SERVICE_USER"; fi
    say "removed everything, env files, token and model cache included"
else
    say "removed; kept $ETC (env files, token) and the model cache (PURGE=1 removes them)"
fi
