"""The tools, free of any protocol: ``chat_completion``, ``complete``, ``embed``, ``model_info``,
``end_session``.

``protocol/server.py`` maps these onto MCP. Here live each call's life (admission, time budget,
shutdown) and session turns. The argument and result models (whose JSON schemas ``tools/list``
declares) are in ``calls.py``, admission and pacing in ``admission.py``, which model answers and
what ``model_info`` says of it in ``models.py``; the errors are in ``vllm_mcp.errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import structured
from vllm_mcp.engine.core import Engine
from vllm_mcp.engine.model_set import ModelSet
from vllm_mcp.engine.parsers import Split
from vllm_mcp.errors import (
    EngineDead,
    EngineUnavailable,
    InvalidArguments,
    NotStarted,
    OutOfTime,
    PromptRejected,
    ServerBusy,
    SessionStoreFailed,
    SessionStoreUnavailable,
    ShuttingDown,
    ToolError,
)
from vllm_mcp.metrics import Metrics
from vllm_mcp.sessions import SessionStore
from vllm_mcp.tools import chat_turn, generation, limits, media, prompts, reasoning, tool_calls
from vllm_mcp.tools import embed as embedding
from vllm_mcp.tools import models as served
from vllm_mcp.tools.admission import (
    WAIT_REPORT_INTERVAL,
    Admission,
    ProgressPacer,
    ProgressRate,
    ProgressSender,
    WaitReporter,
)
from vllm_mcp.tools.arguments import parse_arguments, schema
from vllm_mcp.tools.calls import (
    ChatArguments,
    ChatResult,
    CompleteArguments,
    CompleteResult,
    EndSessionArguments,
    EndSessionResult,
    NoArguments,
)
from vllm_mcp.tools.generation import GenerationArguments, Timings, Usage
from vllm_mcp.tools.limits import session_key
from vllm_mcp.tools.models import ModelInfo
from vllm_mcp.tools.tasks import task_time_limit

__all__ = [
    "Admission",
    "InvalidArguments",
    "ModelInfo",
    "NotStarted",
    "ProgressPacer",
    "ProgressRate",
    "ServerBusy",
    "ShuttingDown",
    "ToolError",
    "Tools",
    "parse_arguments",
    "schema",
    "session_key",
]

R = TypeVar("R")


# --- the service ----------------------------------------------------------------------------


class Tools:
    """The tool implementations over the served models' engines and one session store."""

    def __init__(
        self, settings: Settings, engine: Engine | ModelSet, sessions: SessionStore, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.models = engine if isinstance(engine, ModelSet) else ModelSet([engine])
        self.sessions = sessions
        self.active_sessions = 0
        self.metrics = metrics
        # Admission per model: a busy model does not hold calls to another one back.
        self.admissions = {
            name: Admission(settings.max_concurrency, settings.max_queue) for name in self.models.names()
        }
        self.progress_rate = ProgressRate(settings.progress_interval, settings.progress_max_rate)
        self.started = time.monotonic()
        self.stopping = False
        self._hard_stop = asyncio.Event()
        self._ids = itertools.count(1)
        self._calls: set[asyncio.Task[Any]] = set()
        self.wait_report_interval = WAIT_REPORT_INTERVAL
        #: Counts tasks by status for model_info (set by the protocol layer that runs tasks).
        self.task_counts: Callable[[], Awaitable[dict[str, int]]] | None = None

    @property
    def engine(self) -> Engine:
        """The default model's engine (the first generative one)."""
        return self.models.default

    @property
    def admission(self) -> Admission:
        """The default model's admission."""
        return self.admissions[self.engine.name]

    @property
    def offers_embed(self) -> bool:
        """Whether a served model is an embedding model (the ``embed`` tool is listed then)."""
        return self.models.first("embed") is not None

    def metrics_model(self, engine: Engine | None) -> str | None:
        """The metrics' model label of a call to ``engine``: its name with several models (never a
        caller's free text); None, the server's label, with one."""
        return engine.name if engine is not None and self.settings.models_file is not None else None

    def called_model(self, tool: str, arguments: dict[str, Any] | None) -> Engine | None:
        """The served model a call names (or its tool's default); None for other tools or names."""
        kind = {"chat_completion": "generate", "complete": "generate", "embed": "embed"}.get(tool)
        if kind is None:
            return None
        named = (arguments or {}).get("model")
        if isinstance(named, str):
            return self.models.get(named)
        return self.models.first(kind)

    # --- life cycle ---------------------------------------------------------------

    def stop_intake(self) -> None:
        self.stopping = True

    def abort_all(self) -> None:
        """Grace is over: every waiting or generating call ends now, with an error."""
        self.stopping = True
        self._hard_stop.set()
        for call in list(self._calls):
            call.cancel()

    # --- tools -----------------------------------------------------------------------------

    async def chat_completion(
        self,
        arguments: dict[str, Any] | None,
        progress: ProgressSender | None = None,
        *,
        caller: str | None = None,
    ) -> ChatResult:
        """``caller`` is the authenticated HTTP caller: its sessions live in its own namespace."""
        return await self.checked_chat(arguments, caller=caller)(progress)

    def checked_chat(
        self, arguments: dict[str, Any] | None, *, caller: str | None = None
    ) -> Callable[[ProgressSender | None], Awaitable[ChatResult]]:
        """The arguments checked now (``InvalidArguments``), the call run by what it returns:
        a call made as a task is refused before the task exists, as a plain call is."""
        if (where := media.first_image_part(arguments)) is not None:
            named = (arguments or {}).get("model")
            engine = served.pick(self.models, named if isinstance(named, str) else None, "generate")
            if _text_only(engine):
                raise InvalidArguments(media.refusal(where, engine.model_name))
        args: ChatArguments = parse_arguments(ChatArguments, arguments)
        engine = served.pick(self.models, args.model, "generate")
        # Every bound is checked before the call is admitted, in microseconds (tools/limits.py).
        limits.check_messages(args.messages, self.settings)
        media.check_count([m.as_dict() for m in args.messages], self.settings)
        limits.check_generation(args, engine.settings)
        key = session_key(caller, args.session_id)
        return lambda progress: self._guarded(self._chat(engine, args, progress, key))

    async def complete(
        self, arguments: dict[str, Any] | None, progress: ProgressSender | None = None
    ) -> CompleteResult:
        return await self.checked_complete(arguments)(progress)

    def checked_complete(
        self, arguments: dict[str, Any] | None
    ) -> Callable[[ProgressSender | None], Awaitable[CompleteResult]]:
        """As ``checked_chat``, for ``complete``."""
        args: CompleteArguments = parse_arguments(CompleteArguments, arguments)
        engine = served.pick(self.models, args.model, "generate")
        if len(args.prompt) > self.settings.max_content_chars:
            raise InvalidArguments(
                f"invalid arguments: prompt: longer than {self.settings.max_content_chars} "
                "characters (VLLM_MCP_MAX_CONTENT_CHARS)"
            )
        limits.check_generation(args, engine.settings)
        return lambda progress: self._guarded(self._complete(engine, args, progress))

    async def embed(
        self, arguments: dict[str, Any] | None, progress: ProgressSender | None = None
    ) -> embedding.EmbedResult:
        """Vectors for the inputs from an embedding model (tools/embed.py)."""
        args: embedding.EmbedArguments = parse_arguments(embedding.EmbedArguments, arguments)
        engine = served.pick(self.models, args.model, "embed")
        return await self._guarded(self._embed(engine, args, progress))

    async def _embed(
        self, engine: Engine, args: embedding.EmbedArguments, progress: ProgressSender | None
    ) -> embedding.EmbedResult:
        started = time.monotonic()
        deadline = _deadline(started, self.time_budget(None))
        async with self._ready_slot(engine, started, deadline, progress):
            embedding.check_dimensions(engine, args.dimensions)
            token_ids = embedding.tokenize(engine, args, self.settings.max_content_chars)
            result = await embedding.run(
                engine, args, token_ids, f"mcp-{next(self._ids)}", served.shown_name(self.models, engine)
            )
        self.metrics.add_tokens(result.usage.prompt_tokens, 0, self.metrics_model(engine))
        return result

    async def _guarded(self, work: Coroutine[Any, Any, R]) -> R:
        """Run one call's work as its own task, so the end of the shutdown grace can cancel it."""
        if self._hard_stop.is_set():
            work.close()
            # New requests are refused by the transport once a shutdown starts; a call it
            # accepted just before (its request read before end of input) still runs.
            raise ShuttingDown("server is shutting down; no new calls are accepted")
        # A cancellation of the caller (notifications/cancelled) reaches the inner task too.
        inner = asyncio.create_task(work)
        self._calls.add(inner)
        try:
            return await inner
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._hard_stop.is_set() and me is not None and not _cancelling(me):
                raise ShuttingDown("server shut down before this call could finish") from None
            raise
        finally:
            self._calls.discard(inner)

    def time_budget(self, requested: float | None) -> float | None:
        """Seconds a call may take: its ``timeout_s``, capped at VLLM_MCP_MAX_CALL_SECONDS
        (VLLM_MCP_MAX_TASK_SECONDS for a call run as a task, tools/tasks.py)."""
        limit = task_time_limit.get() or self.settings.max_call_seconds
        if requested is None or (limit is not None and requested > limit):
            return limit
        return requested

    @contextlib.asynccontextmanager
    async def _ready_slot(
        self, engine: Engine, started: float, deadline: float | None, progress: ProgressSender | None
    ) -> AsyncIterator[float]:
        """A generation slot and a loaded model, within the call's deadline; yields seconds queued.

        Meanwhile a caller that sent a progress token hears what it waits for (WaitReporter).
        Raises ``NotStarted`` when the deadline passes first.
        """
        admission = self.admissions[engine.name]
        # No reporter (no task) for the usual call, which waits for nothing.
        waits = engine.state.value == "loading" or admission.in_flight >= admission.limit
        reporter = WaitReporter(
            progress if waits else None,
            lambda seconds: served.waiting_for(engine, len(self.models) > 1, seconds),
            started,
            self.wait_report_interval,
        )
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with reporter.running():
                    await stack.enter_async_context(admission.slot(_left(deadline)))
                    queued = time.monotonic() - started
                    self.metrics.set_queued(sum(a.waiting for a in self.admissions.values()))
                    await asyncio.wait_for(engine.wait_ready(), _left(deadline))
            except (OutOfTime, asyncio.TimeoutError):
                message = served.not_started(engine, admission, len(self.models) > 1, started, deadline)
                raise NotStarted(message) from None
            yield queued

    async def _chat(
        self, engine: Engine, args: ChatArguments, progress: ProgressSender | None, key: str | None
    ) -> ChatResult:
        started = time.monotonic()
        deadline = _deadline(started, self.time_budget(args.timeout_s))
        new = [m.as_dict() for m in args.messages]
        if media.image_places(new):
            # Checked (and fetched) before a slot is taken; kept as data URLs (docs/tools.md, "Images").
            new = await media.resolve(new, self.settings)
        try:
            async with self._ready_slot(engine, started, deadline, progress) as queued:
                if key is None:
                    return await self._turn(engine, args, new, [], progress, started, queued, deadline)
                async with self.sessions.lock(key):
                    with _store_errors():
                        history = await self.sessions.history(key)
                    result = await self._turn(engine, args, new, history, progress, started, queued, deadline)
                    # A turn cut by the time limit is stored as the caller received it.
                    # The answer only: the thinking is not sent back (docs/tools.md, "Reasoning").
                    reply: dict[str, Any] = {"role": "assistant", "content": result.text}
                    if result.tool_calls:
                        reply["tool_calls"] = tool_calls.as_message(result.tool_calls)
                    with _store_errors():
                        await self.sessions.append_turn(key, new, reply)
                await self._count_sessions()
                return result
        except OutOfTime:
            # Not one token yet: nothing is stored, so the caller can send the same turn again.
            raise NotStarted(served.no_first_token(started, deadline)) from None

    async def _turn(
        self,
        engine: Engine,
        args: ChatArguments,
        new: list[dict[str, Any]],
        history: list[dict[str, Any]],
        progress: ProgressSender | None,
        started: float,
        queued: float,
        deadline: float | None,
    ) -> ChatResult:
        max_tokens = args.max_tokens or self.settings.default_max_tokens
        assert engine.max_model_len is not None
        parsers = engine.parsers
        kwargs = chat_turn.prepare(args, engine.tokenizer, parsers)
        media.check_model(new, engine.model_name, engine.image_input, engine.tokenizer)
        prompt, image_urls = chat_turn.fit(
            engine.tokenizer, history, new, engine.max_model_len, max_tokens, kwargs, engine.image_input
        )
        images = await asyncio.to_thread(media.decode, image_urls) if image_urls else []
        splitter = parsers.reasoning_split(args.chat_template_kwargs)
        if progress is not None and splitter is not None:
            progress = reasoning.PhasedProgress(progress, splitter)
        fields = await self._generate(
            engine,
            args,
            prompt.token_ids,
            prompt.max_tokens,
            progress,
            started,
            queued,
            deadline,
            splitter,
            images,
        )
        fields = chat_turn.finish(args, fields, parsers)
        result = ChatResult(
            **fields, session_id=args.session_id, dropped_history_messages=prompt.dropped_messages
        )
        result._shown = reasoning.shown(result.text, result.reasoning, args.include_reasoning)
        return result

    async def _complete(
        self, engine: Engine, args: CompleteArguments, progress: ProgressSender | None
    ) -> CompleteResult:
        started = time.monotonic()
        deadline = _deadline(started, self.time_budget(args.timeout_s))
        try:
            async with self._ready_slot(engine, started, deadline, progress) as queued:
                max_tokens = args.max_tokens or self.settings.default_max_tokens
                assert engine.max_model_len is not None
                try:
                    prompt = prompts.raw(engine.tokenizer, args.prompt, engine.max_model_len, max_tokens)
                except prompts.PromptTooLong as e:
                    raise InvalidArguments(str(e)) from None
                fields = await self._generate(
                    engine, args, prompt.token_ids, prompt.max_tokens, progress, started, queued, deadline
                )
                return CompleteResult(**fields)
        except OutOfTime:
            raise NotStarted(served.no_first_token(started, deadline)) from None

    async def _generate(
        self,
        engine: Engine,
        args: GenerationArguments,
        prompt_ids: list[int],
        max_tokens: int,
        progress: ProgressSender | None,
        started: float,
        queued: float,
        deadline: float | None,
        splitter: Split | None = None,
        images: Sequence[Any] = (),
    ) -> dict[str, Any]:
        """One engine request for any tool; returns the ``GenerationResult`` fields.

        With ``splitter`` (a reasoning parser) the fields are the answer's, ``reasoning`` apart;
        ``images`` (PIL) go with the prompt, in the order of its image placeholders.
        """
        if args.json_schema is not None:
            # Once per call, after admission, in a thread: a large schema takes seconds to check
            # and the event loop serves every other caller meanwhile.
            problem = await asyncio.to_thread(structured.schema_problem, args.json_schema)
            if problem:
                raise InvalidArguments(f"invalid arguments: {problem}")
        try:
            params = generation.sampling(args, engine.settings, max_tokens)
        except generation.UnknownAdapter as e:
            raise InvalidArguments(f"invalid arguments: {e}") from None
        pacer = self.progress_rate.pacer(progress, max_tokens) if progress else None
        request_id = f"mcp-{next(self._ids)}"
        try:
            out = await generation.stream(
                engine,
                prompt_ids,
                params,
                request_id,
                started,
                pacer.add if pacer else None,
                deadline,
                self.progress_rate,  # paces vLLM's outputs too (issue 31)
                images,
            )
            if pacer:
                await pacer.flush()
        except PromptRejected as e:
            raise InvalidArguments(f"vLLM rejected the request: {str(e).strip()}") from None
        finally:
            if pacer:
                pacer.close()
        if out.first_token_s is not None:
            self.metrics.observe_ttft(out.first_token_s, self.metrics_model(engine))
        self.metrics.add_tokens(len(prompt_ids), out.tokens, self.metrics_model(engine))
        try:
            out.text, thinking = reasoning.split(out.text, splitter)  # json_schema: the answer's
            fields = generation.result_fields(args, served.shown_name(self.models, engine), out, max_tokens)
        except structured.IncompleteJson as e:
            raise ToolError(str(e)) from None
        return {
            **fields,
            **({"reasoning": thinking} if splitter is not None else {}),
            "usage": Usage(prompt_tokens=len(prompt_ids), completion_tokens=out.tokens),
            "timings": Timings(
                # Microseconds are plenty; more digits are noise on the wire.
                time_to_first_token_s=None if out.first_token_s is None else round(out.first_token_s, 6),
                total_s=round(time.monotonic() - started, 6),
                queued_s=round(queued, 6),
            ),
        }

    async def _count_sessions(self) -> int:
        """Sessions in the store (all servers sharing it); the last count if it cannot answer."""
        with contextlib.suppress(SessionStoreFailed):
            self.active_sessions = await self.sessions.count()
            self.metrics.set_sessions(self.active_sessions)
        return self.active_sessions

    async def model_info(self, arguments: dict[str, Any] | None = None) -> ModelInfo:
        parse_arguments(NoArguments, arguments)
        return served.describe(
            self.settings,
            self.models,
            self.admissions,
            stopping=self.stopping,
            uptime_s=time.monotonic() - self.started,
            active_sessions=await self._count_sessions(),
            tasks=await self._count_tasks(),
        )

    async def _count_tasks(self) -> dict[str, int]:
        if self.task_counts is None:
            return {}
        # model_info needs no store: a store that is down (or slow) leaves the counts out.
        with contextlib.suppress(SessionStoreFailed, SessionStoreUnavailable, asyncio.TimeoutError):
            return await asyncio.wait_for(self.task_counts(), 2.0)
        return {}

    async def end_session(
        self, arguments: dict[str, Any] | None, *, caller: str | None = None
    ) -> EndSessionResult:
        args: EndSessionArguments = parse_arguments(EndSessionArguments, arguments)
        with _store_errors():
            ended = await self.sessions.end(session_key(caller, args.session_id))
        await self._count_sessions()
        return EndSessionResult(session_id=args.session_id, ended=ended)


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """The store's failure during a call, as the caller's tool error (same message)."""
    try:
        yield
    except SessionStoreFailed as e:
        raise SessionStoreUnavailable(str(e)) from None


def _cancelling(task: asyncio.Task[Any]) -> int:
    """Cancellations requested of ``task`` itself; Python 3.10 cannot tell, so none there."""
    if sys.version_info >= (3, 11):
        return task.cancelling()
    return 0


def engine_error_message(error: BaseException) -> str:
    if isinstance(error, EngineDead):
        return f"{error}; the server will exit so its supervisor restarts it"
    if isinstance(error, EngineUnavailable):
        return str(error)
    return f"internal error: {type(error).__name__}: {error}"


def _deadline(started: float, budget: float | None) -> float | None:
    return None if budget is None else started + budget


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (never negative), or ``None`` for no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _text_only(engine: Engine) -> bool:
    """The loaded model takes no images (before it is loaded, nobody knows yet)."""
    return engine.state.value == "ready" and engine.image_input is None
