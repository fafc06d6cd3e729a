"""systemd units run by the tests as systemd would run them, moved into a temporary root, and
the private network namespace (``unshare -n``) their scenarios run in.

The gateway and HTTP unit tests (tests/e2e/) read ``Environment=``, ``EnvironmentFile=`` and
``ExecStart=`` from the unit files themselves, with the unit's absolute paths moved under a
temporary root. The scenario half runs as a script inside the namespace, so nothing here
needs pytest at import.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path


def unit_service_lines(unit: Path) -> list[tuple[str, str]]:
    """(key, value) pairs of the unit's [Service] section, in order."""
    pairs, section = [], ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            pairs.append((key, value))
    return pairs


def relocate(value: str, root: Path, venv_bin: Path) -> str:
    """Move the unit's absolute paths under ``root`` (and its venv to the test's)."""
    value = value.replace("/opt/vllm-mcp/venv/bin", str(venv_bin))
    for prefix in (
        "/etc/vllm-mcp",
        "/run/vllm-mcp",
        "/var/lib/vllm-mcp",
        "/var/cache/vllm-mcp",
        "/var/log/vllm-mcp",
    ):
        value = value.replace(prefix, f"{root}{prefix}")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """An ``EnvironmentFile=``, read by the parser vllm-mcp uses for its own."""
    from vllm_mcp.config.files import read_env_file as parse

    return parse(path)


def cmdlines(pid: int) -> list[str]:
    """Command lines of ``pid`` and all its descendants (what `ps` shows)."""
    out = []
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    with contextlib.suppress(OSError):
        out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    for child in children.stdout.split():
        out.extend(cmdlines(int(child)))
    return out


def unshare_command() -> list[str]:
    """``unshare -n`` for a private network namespace (as root, or mapped to root); else skip."""
    import pytest

    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    command = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-n", "--map-root-user"]
    if subprocess.run([*command, "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow private network namespaces")
    return command
