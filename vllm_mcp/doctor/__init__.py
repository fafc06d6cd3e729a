"""``vllm-mcp doctor``: is this machine ready to serve, and if not, what to do about it.

Every check yields one line, ok / warn / FAIL, and a failure carries the fix. The
system is reached only through ``Probes`` (probes.py), so parsing is tested on recorded
output from real machines. vLLM itself is never imported here: versions come from
package metadata, and ``--smoke`` goes through ``vllm_mcp.engine.core``. The checks live by
subject: gpu.py, host.py, model.py, adapters.py, store.py, gateway.py, replicas.py, oauth.py,
smoke.py; report.py formats them.
"""

from __future__ import annotations

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
    if gpu.gpus:
        checks += [check_gpu_memory(gpu, settings), check_parallel(gpu, settings)]
    else:
        checks += [check_cpu(p, settings), check_parallel(gpu, settings)]
    checks.append(cfg)
    model, facts = check_model(settings, p)
    checks.append(model)
    if facts is not None:
        checks += [check_context(settings, facts), check_memory(settings, facts, gpu, p)]
    adapters = check_adapters(settings, facts, p)
    if adapters is not None:
        checks.append(adapters)
    checks += [
        check_token(settings, p),
        check_disk(settings, facts, p),
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
