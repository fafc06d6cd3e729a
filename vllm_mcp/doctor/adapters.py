"""The LoRA adapters of ``VLLM_MCP_LORA_MODULES``: on this machine, and made for this base model."""

from __future__ import annotations

from pathlib import Path

from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.model import ModelFacts
from vllm_mcp.doctor.probes import Probes
from vllm_mcp.doctor.report import Check, Status
from vllm_mcp.engine import lora


def check_adapters(s: Settings, facts: ModelFacts | None, p: Probes) -> Check | None:
    """None when no adapter is configured. Shapes are compared when the base checkpoint is local."""
    if not s.lora_modules:
        return None
    base = Path(facts.where) if facts is not None and facts.kind != "remote" else None
    if base is not None and not any(base.glob("*.safetensors")):
        base = None  # a GGUF not yet converted, or .bin weights: nothing to compare with
    failed, missing, notes = [], [], []
    for name, path in s.lora_modules.items():
        where = lora.locate(path, p.hub_cache())
        if where is None and lora.is_local(path):
            failed.append(f"{name}: {path} does not exist")
            continue
        if where is None:
            missing.append(f"{name} ({path})")
            continue
        if not (where / "adapter_config.json").is_file():
            failed.append(f"{name}: {where} has no adapter_config.json (not a PEFT LoRA adapter)")
            continue
        if base is None:
            notes.append(f"{name}: found, base model not checked")
            continue
        problems = lora.mismatches(where, base)
        if problems:
            shown = "; ".join(problems[:3]) + (f"; {len(problems) - 3} more" if len(problems) > 3 else "")
            failed.append(f"{name}: not made for {s.model_name}: {shown}")
        else:
            notes.append(f"{name}: fits the base model")
    details = {"adapters": dict(s.lora_modules)}
    if failed:
        return Check(
            "lora",
            "fail",
            "; ".join(failed),
            "fix VLLM_MCP_LORA_MODULES: each adapter must be a LoRA adapter trained on VLLM_MODEL_NAME",
            details,
        )
    if missing:
        fix = "run `vllm-mcp prefetch` (it fetches the adapters too) on a machine with network access"
        status: Status = "fail" if p.offline() else "warn"
        why = "not on this machine and HF_HUB_OFFLINE is set" if p.offline() else "not fetched yet"
        return Check("lora", status, f"{', '.join(missing)}: {why}", fix, details)
    return Check("lora", "ok", "; ".join(notes), details=details)
