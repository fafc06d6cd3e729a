#!/usr/bin/env bash
# Replace the gateway's bearer token without reinstalling, then restart the gateway if it
# runs (FluidMCP reads the token from its environment at start-up). The new token is
# written to /etc/vllm-mcp/gateway.env (0600, root) and never printed; read it with
#   sudo sed -n 's/^FMCP_BEARER_TOKEN=//p' /etc/vllm-mcp/gateway.env
# With --stdin the token is read from standard input instead of generated.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR)"
fi
[ -f "$(at "$GATEWAY_ENV")" ] || die "$GATEWAY_ENV does not exist; run deploy/install.sh first"

case "${1:-}" in
"") token=$(new_token) ;;
--stdin)
    IFS= read -r token || true
    [ "${#token}" -ge 24 ] || die "a token needs at least 24 characters"
    case "$token" in *[!A-Za-z0-9._~+/=-]*) die "a token may use only letters, digits and ._~+/=-" ;; esac
    ;;
*) die "usage: rotate-token.sh [--stdin]" ;;
esac

old=$(current_token)
[ "$token" != "$old" ] || die "the new token equals the old one"
write_gateway_env "$GATEWAY_ENV" "$token"
say "new gateway token written to $GATEWAY_ENV"
systemctl_live try-restart "$UNIT"
live && say "restarted $UNIT if it was running; give clients the new token"
exit 0
