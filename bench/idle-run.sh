#!/usr/bin/env bash
# The idle-machine run behind docs/performance.md's tables, in one command:
#
#   bench/idle-run.sh [LABEL]          # default label: idle; ~15 minutes on 2 idle cores
#
# With a label other than `idle` (a trial run) the doc is left alone; BENCH_OUT=DIR writes the
# results there instead of bench/results.
#
# Every contender on the tiny model, 128 requests of 128 tokens at c=16 and c=64: the raw
# engine, `vllm serve`, vllm-mcp over Streamable HTTP in both protocol eras (the 2025 handshake
# with a session, and the stateless 2026-07-28 one; progress on and off, round trips, 8
# concurrent calls against one), over pipes and over the SDK's stdio_client (progress on and
# off), the vllm-mcp-server 0.1.4 peer in front of `vllm serve`, and the FluidMCP gateway. Each
# level prints the machine's load while it ran (other CPU %, load average); the report ends
# with the issues' targets, each met or missed. Writes bench/results/LABEL.{json,md,png}, then
# fills docs/performance.md's generated section from the JSON (python -m bench.docs). Run it
# when nothing else runs on the machine.
#
# Kernel scheduling is left as found: users' machines ship kernel.sched_autogroup_enabled=1,
# and on 2 cores it moves ratios between process layouts by 2-4x. The script says which
# setting the run had, and so do the JSON and the doc. To have the other one too, change it
# (sysctl -w kernel.sched_autogroup_enabled=0, as root) and run again with another label.
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-idle}"
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py=python3

# The peer in its own venv (it needs mcp 1.x); the FluidMCP contender needs the `gateway` extra.
if [ ! -x .cache/vllm-mcp-server/bin/vllm-mcp-server ]; then
    python3 -m venv .cache/vllm-mcp-server
    .cache/vllm-mcp-server/bin/pip install --quiet 'vllm-mcp-server==0.1.4' 'mcp>=1,<2'
fi
autogroup="$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo none)"
echo "kernel.sched_autogroup_enabled=$autogroup (as found; users' default is 1)" >&2
echo "load before the run: $(cat /proc/loadavg)" >&2
start=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out="${BENCH_OUT:-bench/results}"
"$py" -m bench --model tiny --label "$label" --out "$out" --concurrency 16,64 --num-prompts 128 \
    --max-tokens 128 \
    --contenders engine,vllm-serve,vllm-mcp-http,vllm-mcp-http-2026,vllm-mcp-pipe,vllm-mcp,vllm-mcp-server,fluidmcp
if [ "$label" = idle ]; then
    "$py" -m bench.docs "$out/$label.json" docs/performance.md
fi
echo "idle run took $(( $(date +%s) - start )) s; load after: $(cat /proc/loadavg);" \
    "kernel.sched_autogroup_enabled=$autogroup" >&2
