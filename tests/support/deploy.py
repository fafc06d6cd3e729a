"""Running the deploy/ scripts in a throw-away root, as the bundle, systemd and doctor tests do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

DEPLOY = ROOT / "deploy"


def run(
    script: str, destdir: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    # The scripts' own settings come from the test only, whatever the caller exported.
    mine = {
        "ALLOW_FROM",
        "ALLOW_TO",
        "TLS_CERT",
        "GATEWAY",
        "ROLE",
        "START",
        "PURGE",
        "FRESH_VENV",
        "LOCK",
        "PIP_ARGS",
        "VARIANT",
        "REPLICAS",
        "BALANCER",
        "PYTHON",
    }
    inherited = {k: v for k, v in os.environ.items() if k not in mine}
    # PYTHON: this interpreter, not whatever `python3` is on PATH (a pyenv shim costs 0.1 s a
    # call, half of an install's time); one test keeps the default.
    full = {
        **inherited,
        "DESTDIR": str(destdir),
        "SKIP_VENV": "1",
        "VARIANT": "cpu",
        "PYTHON": sys.executable,
        **env,
    }
    return subprocess.run(
        ["bash", str(DEPLOY / script), *args],
        env=full,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout + result.stderr
    return result
