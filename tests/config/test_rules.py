"""GPUs per node, the one rule that config, doctor and the multi-node settings share.

vLLM places data x pipeline x tensor parallel workers, one GPU each, split evenly over the
nodes; ``data_parallel_size`` comes only through ``VLLM_MCP_ENGINE_ARGS``. Each caller is
checked against the same count, so they cannot disagree again.
"""

from __future__ import annotations

import json

import pytest

from vllm_mcp.config import check as config_check
from vllm_mcp.config import multinode
from vllm_mcp.config.rules import gpus_per_node, parallel_problem, world_size
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.gpu import Gpu, GpuProbe, check_gpu_memory, check_parallel


def load(tp: int, pp: int = 1, dp: int | None = None, nnodes: int = 1) -> Settings:
    env = {"VLLM_TENSOR_PARALLEL_SIZE": str(tp), "VLLM_PIPELINE_PARALLEL_SIZE": str(pp)}
    if dp is not None:
        env["VLLM_MCP_ENGINE_ARGS"] = json.dumps({"data_parallel_size": dp})
    if nnodes > 1:
        env |= {"VLLM_NNODES": str(nnodes), "VLLM_MASTER_ADDR": "10.0.0.1"}
    return Settings.load(environ=env)


def gpus(n: int) -> GpuProbe:
    return GpuProbe("ok", tuple(Gpu(i, "NVIDIA H100 80GB HBM3", 81559, 81558) for i in range(n)))


@pytest.mark.parametrize(
    ("tp", "pp", "dp", "nnodes", "world", "per_node"),
    [
        (1, 1, None, 1, 1, 1),
        (2, 1, None, 1, 2, 2),
        (2, 2, None, 1, 4, 4),
        (1, 1, 2, 1, 2, 2),
        (2, 1, 2, 1, 4, 4),
        (2, 2, 2, 1, 8, 8),
        (4, 2, None, 2, 8, 4),
        (2, 1, 2, 2, 4, 2),
        (4, 2, 2, 2, 16, 8),
    ],
)
def test_data_x_pipeline_x_tensor_over_the_nodes(
    tp: int, pp: int, dp: int | None, nnodes: int, world: int, per_node: int
) -> None:
    s = load(tp, pp, dp, nnodes)
    assert (world_size(s), gpus_per_node(s)) == (world, per_node)
    assert multinode.describe(s)["local_workers"] == per_node


@pytest.mark.parametrize("dp", [0, -1, "2", True, 1.5])
def test_a_data_parallel_size_vllm_would_not_take_counts_as_one(dp: object) -> None:
    s = Settings.load(environ={"VLLM_MCP_ENGINE_ARGS": json.dumps({"data_parallel_size": dp})})
    assert gpus_per_node(s) == 1


def test_config_doctor_and_multinode_agree_when_the_engine_arguments_set_data_parallelism() -> None:
    """Tensor 2 x data 2 takes 4 GPUs: with 2 visible, every caller refuses it, with the same count."""
    s = load(tp=2, dp=2)
    problem = parallel_problem(s, gpu_count=2)
    assert problem is not None
    assert "x data_parallel_size (2, VLLM_MCP_ENGINE_ARGS) needs 4 GPUs but 2 are visible" in problem
    doctor = check_parallel(gpus(2), s)
    assert (doctor.status, doctor.message) == ("fail", problem)
    validated = config_check.validate(
        {"VLLM_TENSOR_PARALLEL_SIZE": "2", "VLLM_MCP_ENGINE_ARGS": '{"data_parallel_size": 2}'},
        gpu_count=2,
    )
    assert problem in validated.problems
    assert multinode.describe(s)["local_workers"] == 4
    assert parallel_problem(s, gpu_count=4) is None
    assert check_parallel(gpus(4), s).status == "ok"


def test_doctor_checks_the_memory_of_every_gpu_the_node_uses() -> None:
    s = load(tp=1, dp=2)
    assert "on the 2 GPU(s) vLLM will use" in check_gpu_memory(gpus(8), s).message


def test_each_node_needs_its_share_of_a_data_parallel_model() -> None:
    s = load(tp=2, dp=2, nnodes=2)
    assert gpus_per_node(s) == 2
    assert parallel_problem(s, gpu_count=2) is None
    problem = parallel_problem(s, gpu_count=1)
    assert problem is not None and "needs 2 GPUs on each of VLLM_NNODES (2) nodes" in problem
