"""The served models' engines, by name, in the models file's order.

Each model has its own ``Engine`` (its load phases, state and failure). They load one after
another, in file order: their engine processes' start-up is what takes the CPU, and the first
model serves as soon as it is ready while the next loads. A model that fails to load is
``failed`` alone; only calls that name it get its failure. vLLM's log lines (where the load
phases are read) go to the model loading at the time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from vllm_mcp.engine.types import EngineState

if TYPE_CHECKING:
    from vllm_mcp.engine.core import Engine


class ModelSet:
    """Engines by the name callers pass; the first generative one answers calls naming none."""

    def __init__(self, engines: Sequence[Engine]) -> None:
        self.engines: dict[str, Engine] = {e.name: e for e in engines}
        self.loading: Engine | None = None  # the one whose load is running now

    def __iter__(self) -> Iterator[Engine]:
        return iter(self.engines.values())

    def __len__(self) -> int:
        return len(self.engines)

    def get(self, name: str) -> Engine | None:
        return self.engines.get(name)

    def names(self, kind: str | None = None) -> list[str]:
        return [n for n, e in self.engines.items() if kind is None or e.kind == kind]

    def first(self, kind: str = "generate") -> Engine | None:
        """The first model of ``kind`` in file order (the default model of its tools)."""
        return next((e for e in self if e.kind == kind), None)

    @property
    def default(self) -> Engine:
        """The model today's single-model fields describe: the first generative, else the first."""
        return self.first("generate") or next(iter(self))

    async def start(self) -> None:
        """Load every model, one after another; never raises but on cancellation."""
        for engine in self:
            self.loading = engine
            try:
                await engine.start()
            finally:
                self.loading = None

    def observe_log_line(self, line: str) -> None:
        """The log pump's observer: vLLM's lines belong to the model loading now."""
        engine = self.loading
        if engine is not None:
            engine.load.observe_log_line(line)

    def state(self) -> str:
        """One state for the server: loading while any model loads, ready while any serves."""
        states = [e.state for e in self]
        if EngineState.LOADING in states:
            return EngineState.LOADING.value
        if EngineState.READY in states:
            return EngineState.READY.value
        if EngineState.FAILED in states:
            return EngineState.FAILED.value
        return EngineState.STOPPED.value

    def failure(self) -> str | None:
        """Why models failed: the one model's reason, or each failed model's, named."""
        failed = [e for e in self if e.failure is not None]
        if len(self) == 1 or not failed:
            return failed[0].failure if failed else None
        return "; ".join(f"model {e.name!r}: {e.failure}" for e in failed)

    def load_status(self) -> dict[str, Any]:
        """The load status /healthz shows: the loading model's, else the default model's."""
        engine = self.loading or self.default
        status = engine.load.status()
        return {**status, "model": engine.name} if len(self) > 1 else status

    def died(self) -> Engine | None:
        """A loaded model whose engine core process died (its state then says failed)."""
        return next((e for e in self if e.died()), None)

    def unfinished_requests(self) -> int:
        return sum(e.unfinished_requests() for e in self)

    async def aclose(self) -> None:
        for engine in reversed(list(self)):
            with contextlib.suppress(Exception):
                await engine.aclose()
