"""Where several models go (``VLLM_MCP_MODELS``): each model's GPUs exist and suffice, and the
models sharing a GPU ask for at most all of it, and no more than is free, before a deploy.

A model's engine uses its ``devices`` (``CUDA_VISIBLE_DEVICES`` for its processes), or the first
GPUs it needs when it gives none, as vLLM would. Models that share a GPU split it by their
``gpu_memory_utilization``: each engine reserves that share of the whole GPU.
"""

from __future__ import annotations

from vllm_mcp.config.settings import ModelSpec, Settings
from vllm_mcp.doctor.gpu import GpuProbe
from vllm_mcp.doctor.report import Check


def placement(spec: ModelSpec) -> tuple[int, ...]:
    """The GPU indices a model's engine uses."""
    return spec.devices if spec.devices is not None else tuple(range(spec.gpus_needed))


def check_layout(gpu: GpuProbe, settings: Settings) -> Check:
    """One line for the whole layout: the first problem found, with its fix; else what goes where."""
    models = settings.models
    if not gpu.gpus:
        given = [s.name for s in models if s.devices is not None]
        kv = settings.cpu_kvcache_space_gib
        message = (
            f"{len(models)} models on the CPU, loaded one after another; each engine takes "
            f"VLLM_CPU_KVCACHE_SPACE ({kv:g} GiB) for its KV cache, {len(models) * kv:g} GiB in all"
        )
        if given:
            unused = f"{message}; devices ({', '.join(given)}) mean nothing without a GPU"
            return Check("layout", "warn", unused)
        return Check("layout", "ok", message)
    visible = {g.index: g for g in gpu.gpus}
    shares: dict[int, list[tuple[str, float]]] = {}
    for spec in models:
        where = placement(spec)
        missing = [d for d in where if d not in visible]
        if missing:
            return Check(
                "layout",
                "fail",
                f"model {spec.name!r}: devices {list(where)} name GPU {missing[0]}, but this machine "
                f"has GPUs {sorted(visible)}",
                f"use GPU indices nvidia-smi lists in the model's devices ({settings.models_file})",
            )
        if len(where) < spec.gpus_needed:
            return Check(
                "layout",
                "fail",
                f"model {spec.name!r} needs {spec.gpus_needed} GPUs (tensor_parallel_size x "
                f"data_parallel_size) but its devices list {len(where)}",
                "list as many GPUs in devices as the model's parallelism needs, or lower it",
            )
        for d in where[: spec.gpus_needed]:
            shares.setdefault(d, []).append((spec.name, spec.gpu_memory_utilization))
    for index, users in sorted(shares.items()):
        total = sum(share for _, share in users)
        named = " + ".join(f"{name} {share:g}" for name, share in users)
        if total > 1.0 + 1e-9:
            return Check(
                "layout",
                "fail",
                f"GPU {index} is asked for {total:.2f} of its memory ({named})",
                "lower those models' gpu_memory_utilization so that they sum to at most 1, or move "
                "one to another GPU (devices)",
            )
        g = visible[index]
        if g.memory_total_mib is not None and g.memory_free_mib is not None:
            wanted = total * g.memory_total_mib
            if g.memory_free_mib < wanted:
                return Check(
                    "layout",
                    "fail",
                    f"GPU {index} has {g.memory_free_mib} of {g.memory_total_mib} MiB free, but its "
                    f"models ask for {wanted:.0f} MiB ({named})",
                    "stop what uses that GPU (nvidia-smi lists the processes), or lower the models' "
                    "gpu_memory_utilization",
                )
    summary = "; ".join(
        f"GPU {i}: " + " + ".join(f"{n} {s:g}" for n, s in users) for i, users in sorted(shares.items())
    )
    return Check("layout", "ok", f"{len(models)} models fit: {summary}")
