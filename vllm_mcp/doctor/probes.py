"""``Probes``: everything doctor asks the machine or the Hub goes through here.

A subprocess runner, /proc paths, package versions, torch, the Hub client (with short
timeouts: offline is a state, not a crash). Tests replace the parts a machine without a
GPU cannot produce, so the checks are tested on recorded output from real machines.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm_mcp.engine import source as model_source

HUB_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


# argv, timeout -> result; raises FileNotFoundError (no binary) or subprocess.TimeoutExpired.
Runner = Callable[[Sequence[str], float], CommandResult]


def run_command(argv: Sequence[str], timeout: float) -> CommandResult:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    return CommandResult(p.returncode, p.stdout, p.stderr)


@dataclass(frozen=True)
class TorchProbe:
    version: str | None
    cuda_build: str | None = None
    cuda_available: bool = False
    device_count: int = 0
    error: str | None = None


def probe_torch() -> TorchProbe:
    try:
        import torch
    except Exception as e:
        return TorchProbe(None, error=f"{type(e).__name__}: {e}")
    try:
        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
    except Exception as e:
        return TorchProbe(torch.__version__, torch.version.cuda, error=str(e))
    return TorchProbe(str(torch.__version__), torch.version.cuda, available, count)


# --- the hub (short timeouts; offline is a state, not a crash) --------------------


def _with_timeout(fn: Callable[[], Any], seconds: float) -> Any:
    """Run ``fn`` in a daemon thread; raise TimeoutError if it takes longer."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def whoami(token: str, endpoint: str | None = None, timeout: float = HUB_TIMEOUT_S) -> str:
    """The user name the token belongs to."""
    from huggingface_hub import HfApi

    info = _with_timeout(lambda: HfApi(endpoint=endpoint).whoami(token=token), timeout)
    return str(info.get("name", "unknown"))


def remote_model_info(
    repo: str, token: str | None, endpoint: str | None = None, timeout: float = HUB_TIMEOUT_S
) -> Any:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    return _with_timeout(
        lambda: api.model_info(repo, token=token or False, files_metadata=True, timeout=timeout),
        timeout + 1,
    )


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The first ``flags`` (x86) or ``Features`` (Arm) line of /proc/cpuinfo."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def parse_meminfo(meminfo: str) -> dict[str, int]:
    """/proc/meminfo as bytes."""
    out = {}
    for line in meminfo.splitlines():
        key, sep, value = line.partition(":")
        parts = value.split()
        if sep and parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


@dataclass
class Probes:
    """Everything doctor asks the machine; tests replace parts of it."""

    environ: Mapping[str, str] | None = None  # None: the process environment (via config)
    run: Runner = run_command
    cpuinfo: Path = Path("/proc/cpuinfo")
    meminfo: Path = Path("/proc/meminfo")
    machine: str = field(default_factory=platform.machine)
    torch: Callable[[], TorchProbe] = probe_torch
    version: Callable[[str], str | None] = field(default=lambda dist: _dist_version(dist))
    offline: Callable[[], bool] = model_source.hub_offline
    hub_cache: Callable[[], Path] = model_source.hub_cache_dir
    whoami: Callable[[str], str] = whoami
    model_info: Callable[[str, str | None], Any] = remote_model_info
    embedded_gguf: Callable[[], Path | None] = model_source.embedded_gguf
    engine_names: Callable[[], frozenset[str]] = field(default=lambda: frozenset())  # vLLM's variables
    engine_arg_names: Callable[[], frozenset[str]] = field(default=lambda: frozenset())  # its arguments
    platform: Callable[[], tuple[str, str]] | None = None  # vLLM's device, Ray key (multinode)
    root: Path = Path("/")  # the host's file tree; a staging directory in tests (DESTDIR)
    resolve: Callable[[str], list[str]] = field(default=lambda host: _resolve(host))  # host -> addresses


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _resolve(host: str) -> list[str]:
    from vllm_mcp.doctor.egress import resolve

    return resolve(host)
