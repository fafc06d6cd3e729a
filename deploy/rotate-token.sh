#!/usr/bin/env bash
# Replace the bearer token without reinstalling. The new token is written, never printed.
#
# GATEWAY=http (vllm-mcp-http.service): /etc/vllm-mcp/http-tokens (0600 vllm-mcp). The
#   server re-reads the file when it changes, so nothing restarts and calls in flight go on.
#   A file of name:token lines (one per caller) needs --caller NAME: that caller's line is
#   replaced, or added, and every other caller keeps its token.
# GATEWAY=fluidmcp (vllm-mcp-gateway.service): FMCP_BEARER_TOKEN in /etc/vllm-mcp/gateway.env
#   (0600 root), then the gateway restarts if it runs (FluidMCP reads its environment once).
#   Read it with: sudo sed -n 's/^FMCP_BEARER_TOKEN=//p' /etc/vllm-mcp/gateway.env
# With --stdin the token is read from standard input instead of generated.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

usage="usage: rotate-token.sh [--stdin] [--caller NAME]"
if live && [ "$(id -u)" -ne 0 ]; then
    die "run as root (or set DESTDIR)"
fi
gateway=$(installed_gateway)
[ -n "$gateway" ] || die "nothing installed under ${DESTDIR:-/}; run deploy/install.sh first"
[ "$gateway" != worker ] || die "this host is a worker node (ROLE=worker): it has no token; rotate the head's"

from_stdin=0 caller=""
while [ $# -gt 0 ]; do
    case "$1" in
    --stdin) from_stdin=1 ;;
    --caller)
        [ $# -ge 2 ] || die "$usage"
        caller=$2
        shift
        ;;
    *) die "$usage" ;;
    esac
    shift
done
if [ -n "$caller" ]; then
    [ "$gateway" = http ] || die "--caller needs GATEWAY=http: FluidMCP knows one token only"
    case "$caller" in
    [A-Za-z0-9]*) ;;
    *) die "a caller name starts with a letter or digit" ;;
    esac
    case "$caller" in *[!A-Za-z0-9._-]*) die "a caller name may use only letters, digits and ._-" ;; esac
    [ "${#caller}" -le 64 ] || die "a caller name has at most 64 characters"
fi

if [ "$from_stdin" = 1 ]; then
    IFS= read -r token || true
    [ "${#token}" -ge 24 ] || die "a token needs at least 24 characters"
    case "$token" in *[!A-Za-z0-9._~+/=-]*) die "a token may use only letters, digits and ._~+/=-" ;; esac
else
    token=$(new_token)
fi

if [ "$gateway" = fluidmcp ]; then
    [ -f "$(at "$GATEWAY_ENV")" ] || die "$GATEWAY_ENV does not exist; run deploy/install.sh first"
    [ "$token" != "$(current_token)" ] || die "the new token equals the old one"
    write_gateway_env "$GATEWAY_ENV" "$token"
    say "new gateway token written to $GATEWAY_ENV"
    systemctl_live try-restart "$FLUID_UNIT"
    live && say "restarted $FLUID_UNIT if it was running; give clients the new token"
    exit 0
fi

file=$(at "$HTTP_TOKENS")
[ -f "$file" ] || die "$HTTP_TOKENS does not exist; run deploy/install.sh first"
lines=$(grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$file" || true)
comments=$(grep -e '^[[:space:]]*#' "$file" || true) # kept, at the top
named=$(printf '%s\n' "$lines" | grep -c ':' || true)
total=$(printf '%s\n' "$lines" | grep -c . || true)
if [ -z "$caller" ]; then
    [ "$named" -eq 0 ] || die "$HTTP_TOKENS names its callers; rotate one with --caller NAME"
    [ "$total" -le 1 ] || die "$HTTP_TOKENS holds $total unnamed tokens; keep one, or name them (name:token)"
    [ "$token" != "$lines" ] || die "the new token equals the old one"
    write_http_tokens "$HTTP_TOKENS" "${comments:+$comments
}$token"
    say "new token written to $HTTP_TOKENS; the server picks it up without a restart"
else
    [ "$named" -eq "$total" ] ||
        die "$HTTP_TOKENS holds an unnamed token; to name callers, write one name:token per line"
    pattern="^${caller//./\\.}:" # the name, literally
    old=$(printf '%s\n' "$lines" | sed -n "s/$pattern//p")
    [ "$token" != "$old" ] || die "the new token equals the old one"
    rest=$(printf '%s\n' "$lines" | grep -v "$pattern" || true)
    write_http_tokens "$HTTP_TOKENS" "${comments:+$comments
}${rest:+$rest
}$caller:$token"
    if [ -n "$old" ]; then what="replaced"; else what="added"; fi
    say "$what caller $caller's token in $HTTP_TOKENS; the server picks it up without a restart"
fi
live && say "give the caller the new token: sudo cat $HTTP_TOKENS"
exit 0
