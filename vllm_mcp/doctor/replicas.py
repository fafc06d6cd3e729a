"""The replica layout deploy/install.sh sets up (REPLICAS=N): one ``vllm-mcp-http@N.service``
per GPU, each with its own GPU(s) and port in /etc/vllm-mcp/http@N.env. Checked against the
GPUs this host has: no GPU claimed twice or missing, no port used twice."""

from __future__ import annotations

import re
from pathlib import Path

from vllm_mcp.config import files as config_files
from vllm_mcp.config import settings as config
from vllm_mcp.doctor.gateway import unit_egress
from vllm_mcp.doctor.gpu import GpuProbe
from vllm_mcp.doctor.probes import Probes
from vllm_mcp.doctor.report import Check

TEMPLATE = "/etc/systemd/system/vllm-mcp-http@.service"
WANTS = "/etc/systemd/system/multi-user.target.wants"
ETC = "/etc/vllm-mcp"
BALANCER_CONFIG = "/etc/vllm-mcp/haproxy.cfg"
BALANCER_PORT = 8099
_INSTANCE = re.compile(r"^http@(?P<name>[^/]+)\.env$")


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def instances(root: Path) -> dict[str, Path]:
    """Instance name -> its env file: the enabled instances, or every env file when none is."""
    files = {
        m["name"]: f for f in sorted(_under(root, ETC).glob("http@*.env")) if (m := _INSTANCE.match(f.name))
    }
    enabled = {
        link.name.removeprefix("vllm-mcp-http@").removesuffix(".service")
        for link in _under(root, WANTS).glob("vllm-mcp-http@*.service")
    }
    if enabled:
        missing = {name: _under(root, f"{ETC}/http@{name}.env") for name in enabled - files.keys()}
        return dict(sorted({**{n: files[n] for n in enabled & files.keys()}, **missing}.items()))
    return files


def check_replicas(p: Probes, gpu: GpuProbe, tensor_parallel_size: int | None = None) -> Check | None:
    """None when no replicas are installed; else their GPUs and ports, checked."""
    if not _under(p.root, TEMPLATE).is_file():
        return None
    found = instances(p.root)
    if not found:
        return Check(
            "replicas",
            "warn",
            f"{TEMPLATE} is installed but no instance has an env file ({ETC}/http@N.env)",
            "re-run deploy/install.sh with REPLICAS=N (it writes one file per GPU)",
        )
    problems: list[str] = []
    warnings: list[str] = []
    fixes: list[str] = []
    devices: dict[str, list[str]] = {}
    ports: dict[str, int] = {}
    for name, path in found.items():
        try:
            env = config_files.read_env_file(path)
        except FileNotFoundError:
            problems.append(f"vllm-mcp-http@{name} is enabled but {path.relative_to(p.root)} is missing")
            fixes.append(
                f"write /{path.relative_to(p.root)} (CUDA_VISIBLE_DEVICES=..., VLLM_MCP_HTTP_PORT=...)"
            )
            continue
        except (OSError, UnicodeDecodeError, config.ConfigError) as e:
            problems.append(f"{path.relative_to(p.root)} cannot be read: {str(e).splitlines()[0]}")
            fixes.append(f"correct /{path.relative_to(p.root)} (KEY=value lines)")
            continue
        visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
        devices[name] = [d.strip() for d in visible.split(",") if d.strip()]
        if not devices[name]:
            problems.append(f"vllm-mcp-http@{name} sets no CUDA_VISIBLE_DEVICES, so it would use every GPU")
            fixes.append(
                f"give each instance its own GPU: CUDA_VISIBLE_DEVICES=N in /etc/vllm-mcp/http@{name}.env"
            )
        port = env.get("VLLM_MCP_HTTP_PORT", "").strip()
        if not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"vllm-mcp-http@{name} has no usable VLLM_MCP_HTTP_PORT ({port or 'unset'})")
            fixes.append(f"set VLLM_MCP_HTTP_PORT in /etc/vllm-mcp/http@{name}.env (install.sh uses 8100+N)")
        else:
            ports[name] = int(port)
    _shared(devices, "GPU", problems, fixes, "give each instance its own CUDA_VISIBLE_DEVICES")
    _shared(
        {n: [str(p)] for n, p in ports.items()}, "port", problems, fixes, "give each instance its own port"
    )
    if _under(p.root, BALANCER_CONFIG).is_file():
        for name, number in ports.items():
            if number == BALANCER_PORT:
                problems.append(f"vllm-mcp-http@{name} takes port {number}, the balancer's")
                fixes.append("replicas listen on 8100+N; HAProxy on 8099")
    _against_gpus(devices, gpu, tensor_parallel_size, problems, warnings, fixes)
    outside, reach = unit_egress(p, TEMPLATE)  # a remote store the replicas share
    problems += outside
    fixes += reach
    details = {"instances": {n: {"gpus": devices.get(n), "port": ports.get(n)} for n in found}}
    layout = ", ".join(
        f"@{n}: GPU {','.join(devices.get(n) or ['?'])} port {ports.get(n, '?')}" for n in found
    )
    if problems:
        return Check("replicas", "fail", "; ".join(problems), "; ".join(dict.fromkeys(fixes)), details)
    if warnings:
        return Check(
            "replicas", "warn", "; ".join(warnings), "; ".join(dict.fromkeys(fixes)) or None, details
        )
    return Check("replicas", "ok", f"{len(found)} replicas ({layout})", None, details)


def _shared(claims: dict[str, list[str]], what: str, problems: list[str], fixes: list[str], fix: str) -> None:
    """Every ``what`` claimed by more than one instance, as one problem each."""
    owners: dict[str, list[str]] = {}
    for name, items in claims.items():
        for item in items:
            owners.setdefault(item, []).append(name)
    for item, names in owners.items():
        if len(names) > 1:
            problems.append(f"{what} {item} is used by {' and '.join(f'vllm-mcp-http@{n}' for n in names)}")
            fixes.append(fix)


def _against_gpus(
    devices: dict[str, list[str]],
    gpu: GpuProbe,
    tensor_parallel_size: int | None,
    problems: list[str],
    warnings: list[str],
    fixes: list[str],
) -> None:
    if not gpu.gpus:
        warnings.append(f"{len(devices)} replicas on a host without a usable GPU: they share its CPU cores")
        return
    have = {str(g.index) for g in gpu.gpus}
    for name, ids in devices.items():
        absent = [i for i in ids if i.isdigit() and i not in have]
        if absent:
            there = ",".join(sorted(have))
            problems.append(
                f"vllm-mcp-http@{name} asks for GPU {','.join(absent)}; this host has GPU {there}"
            )
            fixes.append(
                "one instance per GPU: REPLICAS=<number of GPUs> deploy/install.sh, or correct the env file"
            )
        if tensor_parallel_size and ids and len(ids) != tensor_parallel_size:
            tp = tensor_parallel_size
            warnings.append(f"vllm-mcp-http@{name} sees {len(ids)} GPU(s) but VLLM_TENSOR_PARALLEL_SIZE={tp}")
            fixes.append("give each instance as many GPUs as VLLM_TENSOR_PARALLEL_SIZE")
    used = {i for ids in devices.values() for i in ids}
    idle = sorted(have - used)
    if idle and not problems:
        warnings.append(f"GPU {','.join(idle)} serve no replica")
        fixes.append(f"REPLICAS={len(have)} deploy/install.sh runs one replica per GPU")
