"""``vllm-mcp doctor``: is this machine ready to serve, and if not, what to do about it.

Every check yields one line, ok / warn / FAIL, and a failure carries the fix. The
system is reached only through ``Probes`` (probes.py), so parsing is tested on recorded
output from real machines. vLLM itself is never imported here: versions come from
package metadata, and ``--smoke`` goes through ``vllm_mcp.engine.core``. The checks live by
subject: gpu.py, host.py, model.py, adapters.py, store.py, gateway.py, replicas.py, oauth.py,
smoke.py; report.py formats them.
"""

from __future__ import annotations

import dataclasses

from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.adapters import check_adapters
from vllm_mcp.doctor.gateway import check_gateway
from vllm_mcp.doctor.gpu import GpuProbe, check_gpu_memory, check_gpus, check_parallel, probe_gpus
from vllm_mcp.doctor.host import (
    check_config,
    check_cpu,
    check_disk,
    check_metrics,
    check_packages,
    check_python,
    check_torch,
)
from vllm_mcp.doctor.layout import check_layout
from vllm_mcp.doctor.model import ModelFacts, check_context, check_memory, check_model, check_token
from vllm_mcp.doctor.oauth import check_oauth
from vllm_mcp.doctor.probes import CommandResult, Probes, TorchProbe
from vllm_mcp.doctor.replicas import check_replicas
from vllm_mcp.doctor.report import Check, Report
from vllm_mcp.doctor.smoke import StatusFactory, smoke_test
from vllm_mcp.doctor.store import check_store

__all__ = [
    "Check",
    "CommandResult",
    "GpuProbe",
    "ModelFacts",
    "Probes",
    "Report",
    "TorchProbe",
    "probe_gpus",
    "run_checks",
]


def run_checks(
    p: Probes | None = None, smoke: bool = False, smoke_status: StatusFactory | None = None
) -> Report:
    """All checks in the order an operator reads them; ``smoke`` adds a real generation."""
    p = p or Probes()
    checks = [check_python(p), check_packages(p)]
    gpu = probe_gpus(p.run)
    checks += [check_gpus(gpu, p), check_torch(gpu, p)]
    cfg, settings = check_config(p, gpu)
    if settings is None:
        if not gpu.gpus:
            checks.append(check_cpu(p, Settings.load(environ={})))
        checks += [cfg, check_gateway(p)]
        if (replicas := check_replicas(p, gpu)) is not None:
            checks.append(replicas)
        return Report(checks)
    several = settings.models_file is not None
    if several:  # each model's GPUs and the shares of each GPU (doctor/layout.py)
        checks += [check_layout(gpu, settings)] if gpu.gpus else [check_cpu(p, settings)]
        checks += [] if gpu.gpus else [check_layout(gpu, settings)]
    elif gpu.gpus:
        checks += [check_gpu_memory(gpu, settings), check_parallel(gpu, settings)]
    else:
        checks += [check_cpu(p, settings), check_parallel(gpu, settings)]
    checks.append(cfg)
    facts = None
    for spec in settings.models:
        own = settings.for_model(spec) if several else settings
        found: list[Check] = []
        model, facts = check_model(own, p)
        found.append(model)
        if facts is not None:
            found += [check_context(own, facts), check_memory(own, facts, gpu, p)]
        adapters = check_adapters(own, facts, p)
        if adapters is not None:
            found.append(adapters)
        if several:  # each model's download: its own disk line
            checks += [_of_model(c, spec.name) for c in [*found, check_disk(own, facts, p)]]
        else:
            checks += found
    checks += [
        check_token(settings, p),
        *([] if several else [check_disk(settings, facts, p)]),
        check_metrics(settings),
        check_store(settings),
        check_gateway(p),
    ]
    if (replicas := check_replicas(p, gpu, settings.tensor_parallel_size)) is not None:
        checks.append(replicas)
    oauth = check_oauth(settings)
    if oauth is not None:
        checks.append(oauth)
    if smoke:
        checks.append(smoke_test(settings, status=smoke_status))
    return Report(checks)


def _of_model(check: Check, name: str) -> Check:
    """One model's check, named after it (several models: one of each check per model)."""
    fix = check.fix and check.fix.replace("VLLM_MODEL_NAME", f"model {name!r}'s model in VLLM_MCP_MODELS")
    return dataclasses.replace(
        check, name=f"{check.name}[{name}]", message=f"{name}: {check.message}", fix=fix
    )
