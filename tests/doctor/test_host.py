"""doctor's host checks: torch, the CPU fallback (on this machine's /proc and on written ones),
disk, metrics."""

from __future__ import annotations

from pathlib import Path

from tests.support.doctor import a800_runner, settings
from vllm_mcp.doctor import GpuProbe, ModelFacts, Probes, TorchProbe, host
from vllm_mcp.doctor.gpu import probe_gpus
from vllm_mcp.doctor.probes import parse_cpu_flags, parse_meminfo


def test_torch_that_misses_the_gpus_fails() -> None:
    probe = probe_gpus(a800_runner())
    blind = Probes(torch=lambda: TorchProbe("2.9.0", "12.8", False, 0))
    assert host.check_torch(probe, blind).status == "fail"
    partial = Probes(torch=lambda: TorchProbe("2.9.0", "12.8", True, 4))
    assert host.check_torch(probe, partial).status == "warn"
    # The real torch of this machine, with no GPU: fine.
    real = host.check_torch(GpuProbe("missing"), Probes())
    assert real.status == "ok" and "torch" in real.message


# --- CPU fallback -----------------------------------------------------------------------


def test_cpu_flags_and_memory_from_this_machine() -> None:
    flags = parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    mem = parse_meminfo(Path("/proc/meminfo").read_text())
    assert flags, "no flags line found in /proc/cpuinfo"
    assert 0 < mem["MemAvailable"] <= mem["MemTotal"]


def test_cpu_without_avx_fails_and_big_kv_cache_fails(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    meminfo = tmp_path / "meminfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse sse2 ssse3\n")
    meminfo.write_text("MemTotal:       8000000 kB\nMemAvailable:   6000000 kB\n")
    old = Probes(cpuinfo=cpuinfo, meminfo=meminfo, machine="x86_64")
    assert host.check_cpu(old, settings()).status == "fail"
    cpuinfo.write_text("flags\t\t: fpu sse avx2\n")
    avx2 = Probes(cpuinfo=cpuinfo, meminfo=meminfo, machine="x86_64")
    assert host.check_cpu(avx2, settings(VLLM_CPU_KVCACHE_SPACE="1")).status == "warn"
    big = host.check_cpu(avx2, settings(VLLM_CPU_KVCACHE_SPACE="8"))
    assert big.status == "fail" and "does not fit" in big.message


def test_disk_and_metrics(tmp_path: Path) -> None:
    s = settings(VLLM_MODEL_NAME="org/x")
    huge = ModelFacts("remote", "org/x", weight_bytes=2**60, needs_download=True)
    disk = host.check_disk(s, huge, Probes(hub_cache=lambda: tmp_path / "not" / "yet"))
    assert disk.status == "fail" and "needs" in disk.message
    assert host.check_metrics(settings()).status == "ok"
    missing = settings(VLLM_MCP_METRICS_TEXTFILE=str(tmp_path / "no" / "x.prom"))
    assert host.check_metrics(missing).status == "fail"
    there = settings(VLLM_MCP_METRICS_TEXTFILE=str(tmp_path / "x.prom"))
    assert host.check_metrics(there).status == "ok"
