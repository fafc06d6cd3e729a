"""Test doubles: stand-ins for the engine and the chat client, for fast unit tests only.

Nothing here runs vLLM or a model. End-to-end tests (tests/e2e/) use the real engine;
these doubles exist so the transport, admission, cancellation and shutdown logic can be
tested in milliseconds. Each double is named ``Fake*`` and says so.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from vllm_mcp.config.settings import ModelSpec
from vllm_mcp.engine.core import Delta, EngineState, EngineUnavailable, Sampling
from vllm_mcp.engine.load_phase import LoadProgress, Phase
from vllm_mcp.engine.parsers import Parsers
from vllm_mcp.engine.types import ImageInput


class FakeTokenizer:
    """TEST DOUBLE of a Hugging Face tokenizer, as ``vllm_mcp.tools.prompts`` uses it.

    One token per character of the rendered transcript, so prompt sizes are predictable.
    """

    chat_template = "fake: role-tagged transcript"

    def __init__(self) -> None:
        self.texts: list[str] = []  # every text encoded, so a test can see what reached a prompt
        self.template_kwargs: list[dict[str, Any]] = []  # the chat template's extra arguments, per render

    def apply_chat_template(
        self,
        messages: list[dict[str, str]],
        *,
        add_generation_prompt: bool,
        tokenize: bool,
        return_dict: bool,
        **template_kwargs: Any,
    ) -> list[int]:
        self.template_kwargs.append(template_kwargs)
        text = "".join(f"<{m['role']}>{_content(m['content'])}" for m in messages)
        return self.encode(text + ("<assistant>" if add_generation_prompt else ""))

    def encode(self, text: str) -> list[int]:
        self.texts.append(text)
        return [ord(c) % 50_000 for c in text]


def _content(content: Any) -> str:
    """Parts as a content-looping template writes them: text as is, ``<image>`` for an image."""
    if isinstance(content, list):
        return "".join(p["text"] if p["type"] == "text" else "<image>" for p in content)
    return str(content)


class FakeEngine:
    """TEST DOUBLE of ``vllm_mcp.engine.core.Engine``: the same interface, no vLLM, no model.

    ``generate`` streams ``reply`` (a string, or a function of the prompt's token ids)
    word by word as ``Delta`` objects, ``pace`` seconds apart, capped at the request's
    ``max_tokens``; one word is one token, and ``Sampling.stream_interval`` words make one
    delta as in vLLM (the first at once, the last with the finish). With ``endless`` it
    streams that text as every token until ``max_tokens`` (a long generation, for time
    budgets). ``loaded=True`` starts it ready, as if ``start()`` had run; otherwise calls
    wait for the model until ``start()``. ``hold()`` makes new generations wait before their
    first token until ``release()``. It records what a test
    needs to check: ``started`` (request ids in order), ``finished``, ``aborted`` (closed or
    cancelled before the end, as vLLM's abort would be called), ``sampling`` per request id
    and the ``prompts`` it was given.
    """

    def __init__(
        self,
        settings: Any = None,
        recent_log_lines: Callable[[], Sequence[str]] = tuple,
        *,
        reply: str | Callable[[list[int]], str] = "the fake engine says hello",
        pace: float = 0.0,
        model_name: str = "fake-model",
        max_model_len: int = 4096,
        fail_to_load: str | None = None,
        endless: str | None = None,
        loaded: bool = False,
        parsers: Parsers | None = None,
        image_input: ImageInput | None = None,
        kind: str = "generate",
        embedding_size: int = 4,
    ) -> None:
        self.settings = settings  # the app's (or tools_over's) settings when left None
        self.name = model_name  # what a call's 'model' names (Engine.name)
        self.kind = kind  # 'embed': ``embed`` answers, as an embedding model's engine
        self.spec = ModelSpec(name=model_name, model=model_name)
        self.embedding_size: int | None = embedding_size if kind == "embed" else None
        self.embedded: list[list[int]] = []  # the token ids of every input embedded
        self.matryoshka = False
        self.multimodal = image_input is not None
        self.image_input = image_input  # as a multimodal model's (engine/images.py), if given
        self.parsers = parsers or Parsers(None, None, None)  # real parsers a test may give
        self.reply = reply
        self.pace = pace
        self.fail_to_load = fail_to_load
        self.state = EngineState.LOADING
        self.failure: str | None = None
        self.model_name = model_name
        self.max_model_len: int | None = max_model_len
        self.dtype = "float32"
        self.device = "fake"
        self.version = "fake"
        self.tokenizer = FakeTokenizer()
        self.load_seconds: float | None = None
        self.errored = False
        self.started: list[str] = []
        self.finished: list[str] = []
        self.aborted: list[str] = []
        self.sampling: dict[str, Sampling] = {}
        self.prompts: list[list[int]] = []
        self.images: dict[str, list[Any]] = {}  # per request id: the images that came with the prompt
        self.endless = endless
        self.closed = False
        self._active: set[str] = set()
        self._ready = asyncio.Event()
        self._released = asyncio.Event()
        self._released.set()
        self.load = LoadProgress(Phase.IMPORTING)  # a test may advance it, as vLLM's log would
        if loaded:
            self.state, self.load_seconds = EngineState.READY, 0.0
            self.load.advance(Phase.READY)
            self._ready.set()

    # --- life cycle, as Engine ------------------------------------------------------

    async def start(self) -> None:
        if self.fail_to_load:
            self.state, self.failure = EngineState.FAILED, self.fail_to_load
            self.load.advance(Phase.FAILED)
        else:
            self.state, self.load_seconds = EngineState.READY, 0.0
            self.load.advance(Phase.READY)
        self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()
        self.check_serving()

    def check_serving(self) -> None:
        if self.state is not EngineState.READY:
            raise EngineUnavailable(f"model {self.state.value}: {self.failure}")

    def unfinished_requests(self) -> int:
        return len(self._active)

    def died(self) -> bool:
        """As ``Engine.died``: ``errored`` is set by a test, as AsyncLLM's once its core died."""
        if self.errored and self.state is EngineState.READY:
            self.state, self.failure = EngineState.FAILED, "the vLLM engine process died"
        return self.errored

    async def aclose(self) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        self.closed = True
        if self.state in (EngineState.READY, EngineState.LOADING):
            self.state, self.failure = EngineState.STOPPED, "shut down"

    # --- controls for tests ---------------------------------------------------------

    def hold(self) -> None:
        """New generations wait before their first token until ``release``."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    # --- embeddings ------------------------------------------------------------------

    async def embed(
        self, prompt_token_ids: list[int], normalize: bool, dimensions: int | None, request_id: str
    ) -> list[float]:
        """A vector of ``embedding_size`` made from the token ids (not a model's: a test's)."""
        self.check_serving()
        self.embedded.append(list(prompt_token_ids))
        size = self.embedding_size or 4
        vector = [float(sum(prompt_token_ids[i::size]) + 1) for i in range(size)]
        if normalize:
            length = sum(x * x for x in vector) ** 0.5
            vector = [x / length for x in vector]
        return vector[:dimensions] if dimensions else vector

    # --- generation ----------------------------------------------------------------

    async def generate(
        self, prompt_token_ids: list[int], sampling: Sampling, request_id: str, images: Sequence[Any] = ()
    ) -> AsyncIterator[Delta]:
        self.check_serving()
        self.images[request_id] = list(images)
        self.started.append(request_id)
        self.sampling[request_id] = sampling
        self.prompts.append(list(prompt_token_ids))
        self._active.add(request_id)
        done = False
        try:
            await self._released.wait()
            if self.endless is not None:
                words, reason = [self.endless] * sampling.max_tokens, "length"
            else:
                text = self.reply(prompt_token_ids) if callable(self.reply) else self.reply
                words = [w + " " for w in text.split(" ")]
                words[-1] = words[-1][:-1]
                words = words[: sampling.max_tokens]
                reason = "length" if len(words) < len(text.split(" ")) else "stop"
            held: list[str] = []  # coalesced as vLLM's stream_interval does: first, every N, last
            for i, word in enumerate(words):
                if self.pace:
                    await asyncio.sleep(self.pace)
                last = i == len(words) - 1
                held.append(word)
                if i == 0 or last or len(held) >= sampling.stream_interval:
                    delta = Delta(
                        text="".join(held), new_tokens=len(held), finish_reason=reason if last else None
                    )
                    held = []
                    yield delta
            done = True
        finally:
            self._active.discard(request_id)
            (self.finished if done else self.aborted).append(request_id)


class FakeChat:
    """TEST DOUBLE of ``vllm_mcp.protocol.client.chat_once``: no server is started.

    Passes ``statuses`` (load statuses, as the server reports them) to ``on_status``, streams
    ``pieces`` to the caller's ``on_text`` and returns ``result``, or raises ``error``; writes
    ``server_log`` to the log file the command chose (as the real server would) and records
    each call's arguments in ``calls``.
    """

    def __init__(
        self,
        pieces: Sequence[str] = ("Hello", ", world"),
        result: dict[str, Any] | None = None,
        error: BaseException | None = None,
        server_log: str | None = None,
        statuses: Sequence[dict[str, Any]] = (),
        tasks: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.pieces = list(pieces)
        self.statuses = list(statuses)
        self.tasks = list(tasks)  # task states given to ``on_task`` (``chat --task``)
        self.result = (
            result
            if result is not None
            else {
                "text": "".join(pieces),
                "model": "fake-model",
                "usage": {"prompt_tokens": 3, "completion_tokens": len(pieces)},
                "timings": {"time_to_first_token_s": 0.01, "total_s": 0.02},
            }
        )
        self.error = error
        self.server_log = server_log
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        question: str,
        server_command: list[str],
        env: dict[str, str],
        on_text: Callable[[str], None],
        **options: Any,
    ) -> dict[str, Any]:
        from vllm_mcp.protocol import client

        # Called as the real one is: an option it does not take fails here, not only in use.
        inspect.signature(client.chat_once).bind(question, server_command, env, on_text, **options)
        self.calls.append({"question": question, "command": server_command, "env": env, **options})
        if self.server_log is not None:
            with open(env["VLLM_MCP_LOG_FILE"], "w") as f:
                f.write(self.server_log)
        on_status = options.get("on_status")
        for status in self.statuses:
            on_status(status)
        for task in self.tasks:
            options["on_task"](task)
        for piece in self.pieces:
            on_text(piece)
        if self.error is not None:
            raise self.error
        return self.result


def tools_over(engine: FakeEngine, **env: str) -> Any:
    """``Tools`` as the app builds them, over the double; settings from ``env`` only."""
    from vllm_mcp.config.settings import Settings
    from vllm_mcp.metrics import Metrics
    from vllm_mcp.sessions import MemorySessionStore
    from vllm_mcp.tools.handlers import Tools

    settings = Settings.load(environ=env)
    if engine.settings is None:  # the app gives each engine its settings
        engine.settings = settings
    return Tools(settings, engine, MemorySessionStore(10, 50), Metrics(engine.model_name, None, 60))  # type: ignore[arg-type]
