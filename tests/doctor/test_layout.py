"""doctor's layout check for several models (doctor/layout.py), on recorded nvidia-smi output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.doctor import fixture
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.gpu import GpuProbe, parse_query_csv, parse_smi_table
from vllm_mcp.doctor.layout import check_layout

H100_X8 = GpuProbe("ok", tuple(parse_smi_table(fixture("h100-sxm-x8-table.txt")).gpus))
A800_BUSY = GpuProbe("ok", tuple(parse_query_csv(fixture("a800-x8-query.csv"))))

# The three-model example of docs/operations.md, "Several models", for one 8-GPU host.
THREE = (ROOT / "examples" / "models.toml").read_text(encoding="utf-8")


def models(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return Settings.load(environ={"VLLM_MCP_MODELS": str(path), **env})


def test_the_three_model_example_fits_an_eight_gpu_host(tmp_path: Path) -> None:
    check = check_layout(H100_X8, models(tmp_path, THREE))
    assert check.status == "ok", check
    assert check.message == (
        "3 models fit: GPU 0: large 0.9; GPU 1: large 0.9; GPU 2: large 0.9; GPU 3: large 0.9; "
        "GPU 4: fast 0.6 + vectors 0.3"
    )


@pytest.mark.parametrize(
    ("change", "expected", "fix"),
    [
        (
            ("devices = [4]\ngpu_memory_utilization = 0.6", "devices = [8]"),
            "name GPU 8, but this machine has GPUs [0, 1, 2, 3, 4, 5, 6, 7]",
            "nvidia-smi",
        ),
        (
            ("gpu_memory_utilization = 0.3", "gpu_memory_utilization = 0.5"),
            "GPU 4 is asked for 1.10 of its memory (fast 0.6 + vectors 0.5)",
            "sum to at most 1",
        ),
        (
            ("devices = [0, 1, 2, 3]", "devices = [0, 1]"),
            "model 'large' needs 4 GPUs (tensor_parallel_size x data_parallel_size) but its devices list 2",
            "parallelism",
        ),
    ],
)
def test_a_layout_that_cannot_start_is_one_failure_with_its_fix(
    tmp_path: Path, change: tuple[str, str], expected: str, fix: str
) -> None:
    check = check_layout(H100_X8, models(tmp_path, THREE.replace(*change, 1)))
    assert check.status == "fail"
    assert expected in check.message, check.message
    assert check.fix and fix in check.fix


def test_models_without_devices_take_the_first_gpus_and_share_them(tmp_path: Path) -> None:
    text = '[[models]]\nname = "a"\nmodel = "m"\n[[models]]\nname = "b"\nmodel = "n"\n'
    check = check_layout(H100_X8, models(tmp_path, text))
    assert check.status == "fail" and "GPU 0 is asked for 1.80 of its memory (a 0.9 + b 0.9)" in check.message


def test_a_busy_gpu_without_room_for_its_models_fails(tmp_path: Path) -> None:
    text = '[[models]]\nname = "a"\nmodel = "m"\ngpu_memory_utilization = 0.5\ndevices = [0]\n'
    check = check_layout(A800_BUSY, models(tmp_path, text))
    assert check.status == "fail" and check.message.startswith("GPU 0 has "), check.message


def test_on_the_cpu_devices_mean_nothing(tmp_path: Path) -> None:
    check = check_layout(GpuProbe("missing"), models(tmp_path, THREE, VLLM_CPU_KVCACHE_SPACE="2"))
    assert check.status == "warn"
    assert check.message.startswith(
        "3 models on the CPU, loaded one after another; each engine takes "
        "VLLM_CPU_KVCACHE_SPACE (2 GiB) for its KV cache, 6 GiB in all"
    )
