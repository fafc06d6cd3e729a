"""doctor's replica layout check (vllm_mcp/doctor/replicas.py) on installs staged by the real
deploy/install.sh (REPLICAS=N), against GPU lists as nvidia-smi reports them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support import ROOT
from vllm_mcp.doctor import Probes
from vllm_mcp.doctor.gpu import Gpu, GpuProbe
from vllm_mcp.doctor.replicas import check_replicas


def install(root: Path, replicas: int, balancer: str = "haproxy") -> None:
    env = {
        **os.environ,
        "DESTDIR": str(root),
        "SKIP_VENV": "1",
        "VARIANT": "cpu",
        "GATEWAY": "http",
        "ALLOW_FROM": "",
        "REPLICAS": str(replicas),
        "BALANCER": balancer,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "deploy" / "install.sh")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def gpus(n: int) -> GpuProbe:
    return GpuProbe("ok", tuple(Gpu(i, "NVIDIA H100 80GB HBM3", 81559, 81079) for i in range(n)))


def env_file(root: Path, instance: int) -> Path:
    return root / f"etc/vllm-mcp/http@{instance}.env"


def test_no_replicas_installed_is_no_line(tmp_path: Path) -> None:
    assert check_replicas(Probes(root=tmp_path), gpus(2)) is None


def test_one_replica_per_gpu_is_ok(tmp_path: Path) -> None:
    install(tmp_path, 2)
    check = check_replicas(Probes(root=tmp_path), gpus(2), tensor_parallel_size=1)
    assert check is not None and check.status == "ok", check
    assert check.message == "2 replicas (@0: GPU 0 port 8100, @1: GPU 1 port 8101)"


def test_more_replicas_than_gpus_fails_naming_the_gpu(tmp_path: Path) -> None:
    install(tmp_path, 3)
    check = check_replicas(Probes(root=tmp_path), gpus(2))
    assert check is not None and check.status == "fail"
    assert "vllm-mcp-http@2 asks for GPU 2; this host has GPU 0,1" in check.message
    assert check.fix is not None and "REPLICAS=<number of GPUs>" in check.fix


def test_overlapping_gpus_and_duplicate_ports_fail(tmp_path: Path) -> None:
    install(tmp_path, 2)
    env_file(tmp_path, 1).write_text("CUDA_VISIBLE_DEVICES=1,0\nVLLM_MCP_HTTP_PORT=8100\n")
    check = check_replicas(Probes(root=tmp_path), gpus(2))
    assert check is not None and check.status == "fail"
    assert "GPU 0 is used by vllm-mcp-http@0 and vllm-mcp-http@1" in check.message
    assert "port 8100 is used by vllm-mcp-http@0 and vllm-mcp-http@1" in check.message
    assert check.fix is not None and "own CUDA_VISIBLE_DEVICES" in check.fix and "own port" in check.fix


def test_an_instance_without_a_gpu_or_port_or_on_the_balancers_port_fails(tmp_path: Path) -> None:
    install(tmp_path, 2)
    env_file(tmp_path, 0).write_text("VLLM_MCP_HTTP_PORT=8099\n")
    env_file(tmp_path, 1).write_text("CUDA_VISIBLE_DEVICES=1\nVLLM_MCP_HTTP_PORT=eighty\n")
    check = check_replicas(Probes(root=tmp_path), gpus(2))
    assert check is not None and check.status == "fail"
    assert "vllm-mcp-http@0 sets no CUDA_VISIBLE_DEVICES, so it would use every GPU" in check.message
    assert "vllm-mcp-http@0 takes port 8099, the balancer's" in check.message
    assert "vllm-mcp-http@1 has no usable VLLM_MCP_HTTP_PORT (eighty)" in check.message


def test_an_idle_gpu_or_a_parallelism_mismatch_warns(tmp_path: Path) -> None:
    install(tmp_path, 2)
    check = check_replicas(Probes(root=tmp_path), gpus(4), tensor_parallel_size=1)
    assert check is not None and check.status == "warn" and "GPU 2,3 serve no replica" in check.message
    check = check_replicas(Probes(root=tmp_path), gpus(2), tensor_parallel_size=2)
    assert check is not None and check.status == "warn"
    assert "vllm-mcp-http@0 sees 1 GPU(s) but VLLM_TENSOR_PARALLEL_SIZE=2" in check.message


def test_enabled_instances_are_the_layout_and_a_missing_env_file_fails(tmp_path: Path) -> None:
    install(tmp_path, 3)
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    for i in (0, 1):  # @2's env file is left from an earlier layout; only 0 and 1 run
        (wants / f"vllm-mcp-http@{i}.service").symlink_to("/etc/systemd/system/vllm-mcp-http@.service")
    check = check_replicas(Probes(root=tmp_path), gpus(2))
    assert check is not None and check.status == "ok", check
    env_file(tmp_path, 1).unlink()
    check = check_replicas(Probes(root=tmp_path), gpus(2))
    assert check is not None and check.status == "fail"
    assert "vllm-mcp-http@1 is enabled but etc/vllm-mcp/http@1.env is missing" in check.message


def test_replicas_on_a_cpu_host_warn(tmp_path: Path) -> None:
    install(tmp_path, 2, balancer="none")
    check = check_replicas(Probes(root=tmp_path), GpuProbe("missing"))
    assert check is not None and check.status == "warn"
    assert "2 replicas on a host without a usable GPU" in check.message
