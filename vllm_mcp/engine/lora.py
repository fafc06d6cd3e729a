"""LoRA adapters: the engine settings they need, and lookup.

One base model serves many fine-tunes: each call names an adapter and vLLM batches calls on
different adapters together (up to ``max_loras`` adapters in one batch). No vLLM import here;
``engine.core`` turns an ``Adapter`` into a ``LoRARequest``; the ``VLLM_MCP_LORA_MODULES`` syntax
is a setting's rule (``config.rules.parse_lora_modules``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# vLLM 0.32 accepts only these values for max_lora_rank (vllm.config.lora.MaxLoRARanks).
_VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
_DEFAULT_RANK = 16  # vLLM's own default, used when no adapter's rank can be read here


@dataclass(frozen=True)
class Adapter:
    """One configured adapter; ``id`` is the integer vLLM keys its adapter cache on."""

    name: str
    id: int
    path: str


def adapters(modules: dict[str, str]) -> dict[str, Adapter]:
    """Name -> adapter, with ids 1, 2, ... in the order the setting lists them."""
    return {name: Adapter(name, i, path) for i, (name, path) in enumerate(modules.items(), 1)}


def adapter_config(path: str) -> dict[str, Any] | None:
    """An adapter's ``adapter_config.json`` when it is on this machine (a directory or the HF cache)."""
    local = Path(path).expanduser()
    candidate: Path | None = local / "adapter_config.json" if local.is_dir() else None
    if candidate is None and not local.is_absolute():
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(path, "adapter_config.json")
        except Exception:  # not a valid repo id: vLLM reports it when the adapter is used
            cached = None
        candidate = Path(cached) if isinstance(cached, str) else None
    if candidate is None or not candidate.is_file():
        return None
    try:
        config = json.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def engine_kwargs(modules: dict[str, str]) -> dict[str, Any]:
    """The engine arguments LoRA needs: on, one slot per adapter, a rank that fits them all.

    ``VLLM_MCP_ENGINE_ARGS`` can still override each (applied after these).
    """
    if not modules:
        return {}
    ranks = []
    for path in modules.values():
        config = adapter_config(path)
        if config and isinstance(config.get("r"), int):
            ranks.append(config["r"])
    needed = max(ranks, default=_DEFAULT_RANK)
    rank = next((r for r in _VLLM_RANKS if r >= needed), _VLLM_RANKS[-1])
    return {"enable_lora": True, "max_loras": len(modules), "max_lora_rank": rank}


def is_local(path: str) -> bool:
    """A path rather than a Hugging Face id (ids are ``org/name``, never absolute or dotted)."""
    return Path(path).expanduser().is_absolute() or path.startswith(("./", "../", "~")) or Path(path).exists()


def locate(path: str, hub_cache: Path | None = None) -> Path | None:
    """The adapter's directory on this machine (given, or its snapshot in the HF cache), or None."""
    local = Path(path).expanduser()
    if local.is_dir():
        return local
    if is_local(path):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(path, "adapter_config.json", cache_dir=hub_cache)
    except Exception:  # not a valid repo id
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def safetensors_shapes(directory: Path) -> dict[str, list[int]]:
    """Tensor name -> shape of every ``*.safetensors`` file in ``directory``, from the headers only."""
    shapes: dict[str, list[int]] = {}
    for file in sorted(directory.glob("*.safetensors")):
        with file.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size))
        shapes.update({k: v["shape"] for k, v in header.items() if k != "__metadata__"})
    return shapes


def mismatches(adapter_dir: Path, base_dir: Path) -> list[str]:
    """Where an adapter does not fit a base checkpoint: modules it lacks, or other sizes.

    LoRA's A is (rank, in) and B is (out, rank) for a base weight of (out, in).
    """
    base = safetensors_shapes(base_dir)
    problems = []
    for name, shape in sorted(safetensors_shapes(adapter_dir).items()):
        part = "lora_A" if ".lora_A." in name else "lora_B" if ".lora_B." in name else None
        if part is None or len(shape) != 2:
            continue
        module = name.removeprefix("base_model.model.").split(f".{part}.")[0]
        weight = base.get(f"{module}.weight")
        if weight is None:
            problems.append(f"{module} is not in the base model")
        elif part == "lora_A" and shape[1] != weight[-1]:
            problems.append(f"{module} takes {weight[-1]} inputs, the adapter {shape[1]}")
        elif part == "lora_B" and shape[0] != weight[0]:
            problems.append(f"{module} has {weight[0]} outputs, the adapter {shape[0]}")
    return problems
