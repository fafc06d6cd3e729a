#!/usr/bin/env bash
# Upgrade in place to this checkout: a fresh Python environment from the lock, the units
# and gateway config of this release, then a restart. The gateway choice (http or fluidmcp),
# the env files, the tokens, the ALLOW_FROM list and the replicas are kept (install.sh never overwrites
# them); GATEWAY=http deploy/upgrade.sh moves a FluidMCP host to the HTTP server. The old
# environment is replaced only once the new one is complete.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

installed=$(installed_gateway)
[ -n "$installed" ] || die "nothing installed under ${DESTDIR:-/}; run deploy/install.sh"
# install.sh restarts what runs (replicas one at a time, each back on /healthz before the next).
GATEWAY=${GATEWAY:-$installed} FRESH_VENV=${FRESH_VENV:-1} START=0 "$HERE/install.sh"
say "upgraded; env files, tokens and replicas (REPLICAS=$(remembered REPLICAS)) kept"
