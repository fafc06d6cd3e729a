"""The tools, free of any protocol: ``chat_completion``, ``model_info``, ``end_session``.

``protocol/server.py`` maps these onto MCP. Here live the argument and result models (their
JSON schemas are what ``tools/list`` declares), admission control (a bound on
generations in flight and on calls waiting), session turns, and progress pacing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vllm_mcp import prompts
from vllm_mcp.config import Settings, check_top_k
from vllm_mcp.engine import Engine, EngineDead, EngineUnavailable, PromptRejected, Sampling
from vllm_mcp.metrics import Metrics
from vllm_mcp.sessions import SessionStore

ProgressSender = Callable[[str, int, int], Awaitable[None]]
"""``(new_text, tokens_so_far, max_tokens)``, called at a bounded rate."""


class ToolError(Exception):
    """A call that fails with a message meant for the caller (an ``isError`` result)."""

    outcome = "error"


class InvalidArguments(ToolError):
    outcome = "invalid"


class ServerBusy(ToolError):
    outcome = "busy"


class ShuttingDown(ToolError):
    pass


# --- argument and result models -------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ChatArguments(BaseModel):
    """Arguments of ``chat_completion``; unset sampling values take the server defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[ChatMessage] = Field(
        min_length=1, description="The new messages of this turn (system, user, assistant)."
    )
    session_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Keep the conversation under this id: earlier turns are prepended.",
    )
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="0-2; 0 is greedy.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (>= 1).")
    top_p: float | None = Field(None, gt=0.0, le=1.0, description="Nucleus sampling, (0, 1].")
    top_k: int | None = Field(None, description="Top-k sampling: -1 (off) or >= 1.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Same seed + same input = same output.")
    min_tokens: int | None = Field(
        None, ge=0, description="Generate at least this many tokens (ignores end of text)."
    )

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v: int | None) -> int | None:
        return v if v is None else check_top_k(v)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class Timings(BaseModel):
    time_to_first_token_s: float | None = Field(description="Seconds until the first token.")
    total_s: float = Field(description="Seconds for the whole call, queueing included.")
    queued_s: float = Field(description="Seconds spent waiting for a generation slot.")


class ChatResult(BaseModel):
    text: str
    finish_reason: str | None = Field(description="'stop', 'length' or 'abort'.")
    model: str
    session_id: str | None
    usage: Usage
    timings: Timings
    dropped_history_messages: int = Field(
        0, description="Oldest session messages left out so the prompt fits the context."
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
    uptime_s: float


class EndSessionArguments(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    session_id: str = Field(min_length=1, max_length=256)


class EndSessionResult(BaseModel):
    session_id: str
    ended: bool = Field(description="False when no such session existed.")


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


def schema(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    """A model's JSON schema with ``$ref``s inlined: some MCP clients do not follow them."""
    raw = model.model_json_schema(mode=mode)
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].split("/")[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(raw)


def parse_arguments(model: type[BaseModel], arguments: dict[str, Any] | None) -> Any:
    """Validate tool arguments, or raise ``InvalidArguments`` naming each bad one."""
    try:
        return model.model_validate(arguments or {})
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            where = where.lstrip(".") or "arguments"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown argument"
            elif err["type"] == "missing":
                msg = "required argument is missing"
            problems.append(f"{where}: {msg}")
        raise InvalidArguments("invalid arguments: " + "; ".join(problems)) from None


# --- admission ---------------------------------------------------------------------------


class Admission:
    """At most ``limit`` generations at once, at most ``max_queue`` calls waiting."""

    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> Any:
        if self._slots.locked() and self.waiting >= self.max_queue:
            raise ServerBusy(
                f"server busy: {self.in_flight} calls generating and {self.waiting} waiting "
                f"(VLLM_MCP_MAX_CONCURRENCY={self.limit}, VLLM_MCP_MAX_QUEUE={self.max_queue}); "
                "retry later"
            )
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()


class ProgressPacer:
    """Coalesces token deltas so one call sends at most one notification per interval.

    The first delta goes out at once (it is the caller's time to first token).
    """

    def __init__(self, send: ProgressSender, total: int, interval: float) -> None:
        self._send = send
        self._total = total
        self._interval = interval
        self._pending = ""
        self._tokens = 0
        self._last = float("-inf")

    async def add(self, text: str, tokens: int) -> None:
        self._pending += text
        self._tokens = tokens
        if time.monotonic() - self._last >= self._interval:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        text, self._pending = self._pending, ""
        self._last = time.monotonic()
        await self._send(text, self._tokens, self._total)


# --- the service ----------------------------------------------------------------------------


class Tools:
    """The tool implementations over one engine and one session store."""

    def __init__(self, settings: Settings, engine: Engine, sessions: SessionStore, metrics: Metrics) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.metrics = metrics
        self.admission = Admission(settings.max_concurrency, settings.max_queue)
        self.started = time.monotonic()
        self.stopping = False
        self._hard_stop = asyncio.Event()
        self._ids = itertools.count(1)
        self._calls: set[asyncio.Task[ChatResult]] = set()

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
        """One reply. ``caller`` (an authenticated HTTP caller's name) scopes its session ids."""
        args: ChatArguments = parse_arguments(ChatArguments, arguments)
        too_long = [
            i for i, m in enumerate(args.messages) if len(m.content) > self.settings.max_content_chars
        ]
        if too_long:
            raise InvalidArguments(
                f"invalid arguments: messages[{too_long[0]}].content: longer than "
                f"{self.settings.max_content_chars} characters (VLLM_MCP_MAX_CONTENT_CHARS)"
            )
        if self._hard_stop.is_set():
            # New requests are refused by the transport once a shutdown starts; a call it
            # accepted just before (its request read before end of input) still runs.
            raise ShuttingDown("server is shutting down; no new calls are accepted")
        # One inner task per call, so that the end of the shutdown grace can cancel
        # it; a cancellation of the caller (notifications/cancelled) reaches it too.
        inner = asyncio.create_task(self._chat(args, progress, session_key(caller, args.session_id)))
        self._calls.add(inner)
        try:
            return await inner
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self._hard_stop.is_set() and me is not None and not me.cancelling():
                raise ShuttingDown("server shut down before this call could finish") from None
            raise
        finally:
            self._calls.discard(inner)

    async def _chat(
        self, args: ChatArguments, progress: ProgressSender | None, key: str | None
    ) -> ChatResult:
        started = time.monotonic()
        async with self.admission.slot():
            queued = time.monotonic() - started
            self.metrics.set_queued(self.admission.waiting)
            await self.engine.wait_ready()
            if key is None:
                return await self._turn(args, [], progress, started, queued)
            async with self.sessions.lock(key):
                history = self.sessions.history(key)
                result = await self._turn(args, history, progress, started, queued)
                self.sessions.append(
                    key,
                    [m.model_dump() for m in args.messages],
                    {"role": "assistant", "content": result.text},
                )
                self.metrics.set_sessions(len(self.sessions))
                return result

    async def _turn(
        self,
        args: ChatArguments,
        history: list[dict[str, str]],
        progress: ProgressSender | None,
        started: float,
        queued: float,
    ) -> ChatResult:
        s = self.settings
        max_tokens = args.max_tokens or s.default_max_tokens
        assert self.engine.max_model_len is not None
        try:
            prompt = prompts.fit(
                self.engine.tokenizer,
                history,
                [m.model_dump() for m in args.messages],
                self.engine.max_model_len,
                max_tokens,
            )
        except prompts.PromptTooLong as e:
            raise InvalidArguments(str(e)) from None
        sampling = Sampling(
            max_tokens=prompt.max_tokens,
            temperature=s.default_temperature if args.temperature is None else args.temperature,
            top_p=args.top_p or s.default_top_p,
            top_k=s.default_top_k if args.top_k is None else args.top_k,
            seed=args.seed,
            min_tokens=min(args.min_tokens or 0, prompt.max_tokens),
        )
        pacer = ProgressPacer(progress, prompt.max_tokens, s.progress_interval) if progress else None
        parts: list[str] = []
        tokens = 0
        first: float | None = None
        finish: str | None = None
        request_id = f"mcp-{next(self._ids)}"
        try:
            async for delta in self.engine.generate(prompt.token_ids, sampling, request_id):
                if first is None and delta.new_tokens:
                    first = time.monotonic() - started
                parts.append(delta.text)
                tokens += delta.new_tokens
                finish = delta.finish_reason or finish
                if pacer and delta.text:
                    await pacer.add(delta.text, tokens)
            if pacer:
                await pacer.flush()
        except PromptRejected as e:
            raise InvalidArguments(f"vLLM rejected the request: {e}") from None
        if first is not None:
            self.metrics.observe_ttft(first)
        self.metrics.add_tokens(len(prompt.token_ids), tokens)
        return ChatResult(
            text="".join(parts),
            finish_reason=finish,
            model=self.engine.model_name,
            session_id=args.session_id,
            usage=Usage(prompt_tokens=len(prompt.token_ids), completion_tokens=tokens),
            timings=Timings(
                # Microseconds are plenty; more digits are noise on the wire.
                time_to_first_token_s=None if first is None else round(first, 6),
                total_s=round(time.monotonic() - started, 6),
                queued_s=round(queued, 6),
            ),
            dropped_history_messages=prompt.dropped_messages,
        )

    def model_info(self, arguments: dict[str, Any] | None = None) -> ModelInfo:
        parse_arguments(NoArguments, arguments)
        s, e = self.settings, self.engine
        state = "stopping" if self.stopping and e.state.value == "ready" else e.state.value
        return ModelInfo(
            model_name=e.model_name,
            dtype=e.dtype,
            max_model_len=e.max_model_len,
            tensor_parallel_size=s.tensor_parallel_size,
            gpu_memory_utilization=s.gpu_memory_utilization,
            server_state=state,
            failure=e.failure,
            active_sessions=len(self.sessions),
            max_sessions=s.max_sessions,
            max_session_messages=s.max_session_messages,
            default_temperature=s.default_temperature,
            default_max_tokens=s.default_max_tokens,
            default_top_p=s.default_top_p,
            default_top_k=s.default_top_k,
            vllm_version=e.version,
            device=e.device,
            in_flight_requests=self.admission.in_flight,
            queued_requests=self.admission.waiting,
            engine_unfinished_requests=e.unfinished_requests(),
            max_concurrency=s.max_concurrency,
            uptime_s=round(time.monotonic() - self.started, 3),
        )

    def end_session(self, arguments: dict[str, Any] | None, *, caller: str | None = None) -> EndSessionResult:
        args: EndSessionArguments = parse_arguments(EndSessionArguments, arguments)
        ended = self.sessions.end(session_key(caller, args.session_id))
        self.metrics.set_sessions(len(self.sessions))
        return EndSessionResult(session_id=args.session_id, ended=ended)


def session_key(caller: str | None, session_id: str | None) -> str | None:
    """Where a caller's session lives in the store: each authenticated caller has its own
    namespace, so one cannot read or end another's conversation by guessing its id. The
    caller still sees its own ``session_id``; without authentication (stdio) the key is the id.
    """
    if session_id is None or caller is None:
        return session_id
    return f"{caller}\x1f{session_id}"


def engine_error_message(error: BaseException) -> str:
    if isinstance(error, EngineDead):
        return f"{error}; the server will exit so its supervisor restarts it"
    if isinstance(error, EngineUnavailable):
        return str(error)
    return f"internal error: {type(error).__name__}: {error}"
