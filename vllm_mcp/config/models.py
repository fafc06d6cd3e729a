"""The models a server serves: ``VLLM_MCP_MODELS`` (a TOML file of ``[[models]]`` tables), or the
one model today's single-model settings describe.

``Settings.models`` is always a list of ``ModelSpec``: without the file, one spec built from
``VLLM_MODEL_NAME``, ``VLLM_DTYPE`` and the other single-model settings, so the rest of the code
sees one shape. A key a table leaves out takes the value of the matching variable
(``dtype`` <- ``VLLM_DTYPE``; ``engine_args`` is merged over ``VLLM_MCP_ENGINE_ARGS``), except
``lora_modules``, which belong to one model. Every problem in the file is one line
(``ConfigError.lines``): unknown keys with the nearest known one, duplicate names, values of
the wrong type, no generative model for the chat tools. ``Settings.for_model`` gives the engine
of one model the ``Settings`` it reads, its own values in place of the single-model ones.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vllm_mcp.config import rules
from vllm_mcp.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found]


class Settings(Protocol):
    """What this module reads of ``Settings`` (settings.py imports this module, not the reverse)."""

    @property
    def model_name(self) -> str: ...
    @property
    def dtype(self) -> Literal["auto", "float16", "bfloat16", "float32"]: ...
    @property
    def max_model_len(self) -> int | None: ...
    @property
    def tensor_parallel_size(self) -> int: ...
    @property
    def gpu_memory_utilization(self) -> float: ...
    @property
    def engine_args(self) -> dict[str, Any]: ...
    @property
    def lora_modules(self) -> dict[str, str]: ...
    @property
    def models_file(self) -> Path | None: ...
    @property
    def models(self) -> tuple[ModelSpec, ...]: ...
    @property
    def http_workers(self) -> int: ...
    @property
    def nnodes(self) -> int: ...


ENV_NAME = "VLLM_MCP_MODELS"
Kind = Literal["generate", "embed"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")

#: The single-model settings a ``[[models]]`` table may give for its model, and their variables.
INHERITED = {
    "dtype": "VLLM_DTYPE",
    "max_model_len": "VLLM_MAX_MODEL_LEN",
    "tensor_parallel_size": "VLLM_TENSOR_PARALLEL_SIZE",
    "gpu_memory_utilization": "VLLM_GPU_MEMORY_UTILIZATION",
    "engine_args": "VLLM_MCP_ENGINE_ARGS",
}


class ModelSpec(BaseModel):
    """One served model: what callers name it, where it comes from, its engine's settings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str = Field(description="What callers pass as 'model'; unique in the file.")
    model: str = Field(min_length=1, description="Hugging Face id, local directory, or 'embedded'.")
    kind: Kind | None = Field(
        None, description="'generate' or 'embed'; vLLM's runner detection decides when unset."
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "float16"
    max_model_len: int | None = Field(None, ge=16)
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    engine_args: dict[str, Any] = Field(default_factory=dict)
    lora_modules: dict[str, str] = Field(default_factory=dict)
    devices: tuple[int, ...] | None = Field(
        None, description="GPU indices this model's engine processes may use (CUDA_VISIBLE_DEVICES)."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(
                "use letters, digits, '.', '_', ':', '/' or '-', starting with a letter or digit "
                "(at most 128 characters)"
            )
        return v

    @field_validator("dtype", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("gpu_memory_utilization", mode="before")
    @classmethod
    def _float(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("lora_modules", mode="before")
    @classmethod
    def _lora(cls, v: Any) -> Any:
        if isinstance(v, str):
            return rules.parse_lora_modules(v)
        if isinstance(v, Mapping):
            rules.parse_lora_modules(" ".join(f"{k}={p}" for k, p in v.items() if isinstance(p, str)))
        return v

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("must list at least one GPU index, e.g. [0, 1]")
            if any(not isinstance(i, int) or isinstance(i, bool) or i < 0 for i in v):
                raise ValueError("must be GPU indices (whole numbers from 0), e.g. [0, 1]")
            if len(set(v)) != len(v):
                raise ValueError("names a GPU twice")
            return tuple(v)
        return v

    # --- what the engine and the tools read -------------------------------------------

    @property
    def gpus_needed(self) -> int:
        """GPUs one engine of this model takes: data x pipeline x tensor parallel."""
        return rules.world_size(_Parallel(self))

    def public_dict(self) -> dict[str, Any]:
        """As ``config show`` and the start log may show it: secret engine arguments masked."""
        data = self.model_dump(mode="json")
        data["engine_args"] = rules.mask_engine_args(self.engine_args)
        return data


class _Parallel:
    """A spec as ``rules.world_size`` reads settings (pipeline parallelism is the server's)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.tensor_parallel_size = spec.tensor_parallel_size
        self.pipeline_parallel_size = 1
        self.nnodes = 1
        self.distributed_executor_backend: str | None = None
        self.engine_args = spec.engine_args


KEYS = tuple(ModelSpec.model_fields)


def single(settings: Settings) -> ModelSpec:
    """The one model of a server without ``VLLM_MCP_MODELS``: today's settings, unchanged."""
    return ModelSpec.model_construct(
        name=settings.model_name,
        model=settings.model_name,
        kind=None,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        tensor_parallel_size=settings.tensor_parallel_size,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        engine_args=dict(settings.engine_args),
        lora_modules=dict(settings.lora_modules),
        devices=None,
    )


def read(path: Path, settings: Settings) -> list[ModelSpec]:
    """The models ``path`` describes, unset keys from ``settings``; ``ConfigError``, a line per problem."""
    where = f"{ENV_NAME} ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{where}: no such file; point {ENV_NAME} at a TOML file of [[models]] tables"]
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{where}: cannot be read ({getattr(e, 'strerror', None) or e})"]) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{where}: not valid TOML: {e}"]) from None
    return parse(document, settings, where)


def parse(document: Mapping[str, Any], settings: Settings, where: str = ENV_NAME) -> list[ModelSpec]:
    """``read``'s work on a parsed document (tests give one directly)."""
    problems: list[str] = []
    for key in document:
        if key != "models":
            problems.append(f"{where}: unknown top-level key {key!r}{_nearest(key, ('models',))}")
    tables = document.get("models")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        if problems and tables is None:  # [[model]] for [[models]]: the hint says it all
            raise ConfigError(problems)
        problems.append(
            f"{where}: needs one [[models]] table per model, e.g. "
            '[[models]] name = "chat" model = "Qwen/Qwen3-8B"'
        )
        raise ConfigError(problems)
    specs: list[ModelSpec] = []
    seen: dict[str, int] = {}
    for number, table in enumerate(tables, 1):
        label = f"{where}: [[models]] #{number}" + (
            f" ({table['name']!r})" if isinstance(table.get("name"), str) else ""
        )
        spec, found = _one(table, settings, label)
        problems.extend(found)
        if spec is None:
            continue
        if spec.name in seen:
            problems.append(
                f"{label}: name {spec.name!r} is already used by [[models]] #{seen[spec.name]}; "
                "each model needs its own name"
            )
            continue
        seen[spec.name] = number
        specs.append(spec)
    if specs and not problems and all(s.kind == "embed" for s in specs):
        problems.append(
            f"{where}: every model is kind = 'embed', but chat_completion and complete need a "
            "generative model; add one (kind = 'generate', or leave kind unset for a chat model)"
        )
    if problems:
        raise ConfigError(problems)
    return specs


def _one(table: Mapping[str, Any], settings: Settings, label: str) -> tuple[ModelSpec | None, list[str]]:
    problems = [f"{label}: unknown key {key!r}{_nearest(key, KEYS)}" for key in table if key not in KEYS]
    for required in ("name", "model"):
        if required not in table:
            problems.append(f"{label}: missing {required!r} ({ModelSpec.model_fields[required].description})")
    if problems:
        return None, problems
    values: dict[str, Any] = {k: getattr(settings, k) for k in INHERITED}
    values.update(table)
    values["engine_args"] = (
        {**settings.engine_args, **table.get("engine_args", {})}
        if isinstance(table.get("engine_args", {}), dict)
        else table["engine_args"]
    )
    try:
        return ModelSpec.model_validate(values), []
    except ValidationError as e:
        return None, [_explain(label, item, table) for item in e.errors(include_url=False)]


def _explain(label: str, item: Any, table: Mapping[str, Any]) -> str:
    loc = item.get("loc") or ()
    key = str(loc[0]) if loc else ""
    msg = str(item["msg"]).removeprefix("Value error, ")
    msg = msg[0].lower() + msg[1:]
    if key in table and key != "engine_args":
        return f"{label}: {key} = {table[key]!r}: {msg}"
    return f"{label}: {'.'.join(str(p) for p in loc)}: {msg}"


def _nearest(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"


def problem(settings: Settings) -> str | None:
    """What the other settings cannot do with several models, as a sentence; None when fine."""
    if settings.models_file is None or len(settings.models) < 2:
        return None
    if settings.http_workers > 1:
        return (
            f"{ENV_NAME} names {len(settings.models)} models, but VLLM_MCP_HTTP_WORKERS="
            f"{settings.http_workers} shares one engine core between front ends; set "
            "VLLM_MCP_HTTP_WORKERS=1 (or run one server per model)"
        )
    if settings.nnodes > 1:
        return (
            f"{ENV_NAME} names {len(settings.models)} models, but VLLM_NNODES={settings.nnodes} "
            "spreads one model over several nodes; serve several models on one node"
        )
    return None


def engine_fields(spec: ModelSpec) -> dict[str, Any]:
    """The single-model fields of ``Settings`` with one model's values (``Settings.for_model``)."""
    return {
        "model_name": spec.model,
        "dtype": spec.dtype,
        "max_model_len": spec.max_model_len,
        "tensor_parallel_size": spec.tensor_parallel_size,
        "gpu_memory_utilization": spec.gpu_memory_utilization,
        "engine_args": dict(spec.engine_args),
        "lora_modules": dict(spec.lora_modules),
    }
