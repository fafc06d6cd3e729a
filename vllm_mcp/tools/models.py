"""Which served model answers a call (its ``model`` argument), and what ``model_info`` says of each.

A call names a model by the name the models file gives it (``VLLM_MCP_MODELS``); without a name
the first model of the kind its tool needs answers. A server without the file serves one model,
named by ``VLLM_MODEL_NAME``; the name its results show (the checkpoint's) is accepted too.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.core import Engine
from vllm_mcp.engine.model_set import ModelSet
from vllm_mcp.errors import InvalidArguments
from vllm_mcp.tools.admission import Admission

_TOOLS = {"generate": "chat_completion and complete", "embed": "embed"}


def pick(models: ModelSet, name: str | None, kind: Literal["generate", "embed"]) -> Engine:
    """The engine that answers: ``name``'s, or the first of ``kind``; a clear error otherwise."""
    if name is None:
        engine = models.first(kind)
        if engine is None:
            raise InvalidArguments(
                f"no {'embedding' if kind == 'embed' else 'generative'} model is served here, so "
                f"{_TOOLS[kind]} cannot answer; model_info lists the models"
            )
        return engine
    engine = models.get(name)
    if engine is None and len(models) == 1 and name == models.default.model_name:
        engine = models.default  # the checkpoint's name, as results show it
    if engine is None:
        listed = ", ".join(f"{n!r} ({e.kind})" for n, e in models.engines.items())
        raise InvalidArguments(
            f"invalid arguments: model: unknown model {name!r}; this server serves {listed}"
        )
    if engine.kind != kind:
        others = ", ".join(repr(n) for n in models.names(kind)) or "none"
        what = "an embedding model" if engine.kind == "embed" else "a generative model"
        raise InvalidArguments(
            f"invalid arguments: model: {name!r} is {what}; {_TOOLS[kind]} need"
            f"{'s' if kind == 'embed' else ''} a{'n embedding' if kind == 'embed' else ' generative'} "
            f"model: {others}"
        )
    return engine


def shown_name(models: ModelSet, engine: Engine) -> str:
    """The name results carry: the one callers pass with several models, else the checkpoint's."""
    return engine.name if engine.settings.models_file is not None else engine.model_name


def waiting_for(engine: Engine, several: bool, seconds: float) -> str:
    """What a call waiting for ``engine`` is told in its progress notifications."""
    if engine.state.value == "loading":
        which = f"model {engine.name!r}" if several else "the model"
        return f"waiting for {which} to load: {engine.load.describe()}"
    return f"waiting for a free generation slot ({seconds:.0f} s so far)"


def not_started(
    engine: Engine, admission: Admission, several: bool, started: float, deadline: float | None
) -> str:
    """Why a call's time budget ran out before it could start: the load, or the slots."""
    budget = f"{(deadline or started) - started:g} s"
    if engine.state.value == "loading":
        load = engine.load
        which = f"model {engine.name!r}" if several else "the model"
        return (
            f"{which} is still loading: {load.describe()} ({load.seconds_loading():.0f} s since "
            f"the load began); this call's time budget of {budget} (timeout_s, capped at "
            "VLLM_MCP_MAX_CALL_SECONDS) ran out before it could start. Retry later, or wait "
            "until model_info's server_state is 'ready'"
        )
    waited = time.monotonic() - started
    return (
        f"waited {waited:.1f} s for a free generation slot ({admission.in_flight} calls "
        f"generating, VLLM_MCP_MAX_CONCURRENCY={admission.limit}); this call's time "
        f"budget of {budget} ran out before it could start. Retry later, or allow more time"
    )


def no_first_token(started: float, deadline: float | None) -> str:
    """Why a call that was admitted ended with no token: the prompt outlasted its budget."""
    return (
        f"no token within this call's time budget of {(deadline or started) - started:g} s: "
        "the model was still reading the prompt. Allow more time (timeout_s, "
        "VLLM_MCP_MAX_CALL_SECONDS) or send a shorter prompt"
    )


class ModelEntry(BaseModel):
    """One served model in ``model_info``'s ``models``."""

    name: str = Field(description="What a call passes as 'model'.")
    model: str = Field(description="The checkpoint: a Hugging Face id or a local directory.")
    kind: Literal["generate", "embed"] = Field(
        description="'generate' (chat_completion, complete) or 'embed' (the embed tool)."
    )
    state: Literal["loading", "ready", "failed", "stopped", "stopping"]
    failure: str | None = Field(description="Why it failed to load or stopped serving.")
    load_phase: str
    load_phase_s: float
    load_s: float
    max_model_len: int | None
    dtype: str
    dimensions: int | None = Field(description="An embedding model's vector size, once loaded.")
    adapters: list[str] = Field(description="LoRA adapters a call can name in 'adapter'.")
    devices: list[int] | None = Field(description="GPU indices its engine uses (all if unset).")
    in_flight_requests: int
    queued_requests: int


def entry(engine: Engine, admission: Admission, stopping: bool) -> ModelEntry:
    state = engine.state.value
    status = engine.load.status()
    return ModelEntry(
        name=engine.name,
        model=engine.model_name,
        kind=engine.kind,
        state="stopping" if stopping and state == "ready" else state,
        failure=engine.failure,
        load_phase=str(status["phase"]),
        load_phase_s=float(status["phase_s"]),  # type: ignore[arg-type]
        load_s=float(status["load_s"]),  # type: ignore[arg-type]
        max_model_len=engine.max_model_len,
        dtype=engine.dtype,
        dimensions=engine.embedding_size,
        adapters=list(engine.settings.lora_modules),
        devices=list(engine.spec.devices) if engine.spec.devices is not None else None,
        in_flight_requests=admission.in_flight,
        queued_requests=admission.waiting,
    )


class ModelInfo(BaseModel):
    model_name: str
    dtype: str
    max_model_len: int | None
    tensor_parallel_size: int
    gpu_memory_utilization: float
    server_state: Literal["loading", "ready", "failed", "stopped", "stopping"]
    failure: str | None
    active_sessions: int
    max_sessions: int
    max_session_messages: int
    default_temperature: float
    default_max_tokens: int
    default_top_p: float
    default_top_k: int
    vllm_version: str
    device: str
    in_flight_requests: int
    queued_requests: int
    engine_unfinished_requests: int
    max_concurrency: int
    max_call_seconds: float | None
    uptime_s: float
    load_phase: str = Field(
        description="Where the model load stands: converting (the embedded model, first start), "
        "importing, starting_engine, loading_weights, compiling, warming_up, then ready or failed."
    )
    load_phase_s: float = Field(description="Seconds in load_phase so far.")
    load_s: float = Field(description="Seconds the load has taken so far (all of it once over).")
    adapters: list[str] = Field(description="LoRA adapters a call can name in 'adapter'.")
    tasks: dict[str, int] = Field(
        default_factory=dict,
        description="Tasks (calls run in the background, polled for) in the store, by status.",
    )
    input_modalities: list[str] = Field(
        description="What a call can send the model: ['text'], or ['text', 'image'] for a model "
        "that takes images (image parts in chat_completion messages)."
    )
    multimodal: bool = Field(description="The model itself takes images or other media (vLLM says so).")
    models: list[ModelEntry] = Field(
        description="Every served model (VLLM_MCP_MODELS), in order; the fields above describe the "
        "first generative one, and server_state all of them (loading while any loads)."
    )


def describe(
    settings: Settings,
    models: ModelSet,
    admissions: dict[str, Admission],
    *,
    stopping: bool,
    uptime_s: float,
    active_sessions: int,
    tasks: dict[str, int],
) -> ModelInfo:
    """``model_info``'s answer: the default model's fields, the server's, and every model's entry."""
    s, e = settings, models.default
    overall = models.state()
    status = e.load.status()
    return ModelInfo(
        model_name=e.model_name,
        dtype=e.dtype,
        max_model_len=e.max_model_len,
        tensor_parallel_size=e.settings.tensor_parallel_size,
        gpu_memory_utilization=e.settings.gpu_memory_utilization,
        server_state="stopping" if stopping and overall == "ready" else overall,
        failure=models.failure(),
        active_sessions=active_sessions,
        max_sessions=s.max_sessions,
        max_session_messages=s.max_session_messages,
        default_temperature=s.default_temperature,
        default_max_tokens=s.default_max_tokens,
        default_top_p=s.default_top_p,
        default_top_k=s.default_top_k,
        vllm_version=e.version,
        device=e.device,
        in_flight_requests=sum(a.in_flight for a in admissions.values()),
        queued_requests=sum(a.waiting for a in admissions.values()),
        engine_unfinished_requests=models.unfinished_requests(),
        max_concurrency=s.max_concurrency,
        max_call_seconds=s.max_call_seconds,
        uptime_s=round(uptime_s, 3),
        load_phase=str(status["phase"]),
        load_phase_s=float(status["phase_s"]),  # type: ignore[arg-type]
        load_s=float(status["load_s"]),  # type: ignore[arg-type]
        adapters=list(e.settings.lora_modules),
        tasks=tasks,
        input_modalities=["text"] if e.image_input is None else ["text", "image"],
        multimodal=e.multimodal,
        models=[entry(m, admissions[m.name], stopping) for m in models],
    )
