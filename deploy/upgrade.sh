#!/usr/bin/env bash
# Upgrade in place to this checkout: a fresh Python environment from the lock, the units
# and gateway config of this release, then a restart. The env files, the token and the
# ALLOW_FROM list are kept (install.sh never overwrites them). The old environment is
# replaced only once the new one is complete.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[ -f "$(at "$GATEWAY_ENV")" ] || die "nothing installed under ${DESTDIR:-/}; run deploy/install.sh"
FRESH_VENV=${FRESH_VENV:-1} START=0 "$HERE/install.sh"
systemctl_live try-restart "$UNIT"
say "upgraded; env files and token kept"
