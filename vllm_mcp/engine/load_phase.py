"""Where a model load stands: the phase, and since when, for people and clients to see.

A load goes through phases the server knows itself (converting the embedded model, importing
vLLM, starting vLLM's engine processes) and phases only vLLM's engine processes know (loading
weights, compiling, the KV cache and warm-up). Those say so in their own INFO log lines, which
pass through ``LogPump`` on their way to stderr; ``observe_log_line`` reads the phase from the
few lines that mark a change (a substring test, nothing per token), and ``vllm_info_line``
tells the pump which of those lines to keep off stderr at the usual log levels. No vLLM import.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Phase(str, enum.Enum):
    """Load phases in the order they happen; a load never goes back to an earlier one."""

    QUEUED = "queued"
    CONVERTING = "converting"
    IMPORTING = "importing"
    STARTING_ENGINE = "starting_engine"
    LOADING_WEIGHTS = "loading_weights"
    COMPILING = "compiling"
    WARMING_UP = "warming_up"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


DESCRIPTIONS = {
    Phase.QUEUED: "waiting for the models before it to load",
    Phase.CONVERTING: "converting the embedded model",
    Phase.IMPORTING: "importing vLLM",
    Phase.STARTING_ENGINE: "starting vLLM's engine processes",
    Phase.LOADING_WEIGHTS: "loading the weights",
    Phase.COMPILING: "compiling the model",
    Phase.WARMING_UP: "allocating the KV cache and warming up",
    Phase.READY: "ready",
    Phase.FAILED: "failed",
    Phase.STOPPED: "stopped",
}

# vLLM's own messages (0.32) that begin a phase, in its CPU and GPU model runners and loaders.
_MARKERS: tuple[tuple[str, Phase], ...] = (
    ("Starting to load model", Phase.LOADING_WEIGHTS),
    ("Warming up model for the compilation", Phase.COMPILING),  # CPU: the compile runs here
    ("Dynamo bytecode transform time", Phase.COMPILING),  # GPU
    ("Compiling a graph for", Phase.COMPILING),  # GPU
    ("Warming up done", Phase.WARMING_UP),  # CPU
    ("Available KV cache memory", Phase.WARMING_UP),  # GPU
    ("KV cache size:", Phase.WARMING_UP),
    ("Capturing CUDA graphs", Phase.WARMING_UP),
)
_ORDER = list(Phase)
_ENDS = (Phase.READY, Phase.FAILED, Phase.STOPPED)

# "(EngineCore pid=12) INFO 12-01 22:37:08 [core.py:133] ...": vLLM's format in its processes.
_VLLM_INFO = re.compile(r"(?:\(\S+ pid=\d+\) )?INFO \d\d-\d\d \d\d:\d\d:\d\d \[")


def vllm_info_line(line: str) -> bool:
    """An INFO line in vLLM's own format (vLLM runs at INFO so that its phases can be read)."""
    return _VLLM_INFO.match(line) is not None


def describe(phase: Phase, seconds: float) -> str:
    """'loading the weights, 12 s so far': a phase and its time, never a promise of more."""
    return f"{DESCRIPTIONS[phase]}, {seconds:.0f} s so far"


class LoadProgress:
    """The current phase and when it began; safe to advance from any thread.

    ``on_change(previous, previous_seconds, new)`` runs in the thread that advanced; by default
    it logs one line per change. The log pump's thread must not log (it would write into the
    pipe it drains), so once ``attach``ed to an event loop the line is written by that loop.
    """

    def __init__(
        self,
        first: Phase = Phase.IMPORTING,
        on_change: Callable[[Phase, float, Phase], None] | None = None,
        model: str | None = None,
    ) -> None:
        """``model``: the served model's name, for the log lines (several models, VLLM_MCP_MODELS)."""
        self.model = model
        self.started = time.monotonic()
        self.phase = first
        self.since = self.started
        self.on_change = on_change or self._log_change
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, object]]]] = []

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def watch(self) -> asyncio.Queue[dict[str, object]]:
        """A queue, in the calling loop, of the status at each change as it happened: an
        in-process display shows every phase however short, even two in one turn of its loop
        (a poll once a second missed a tiny model's weights)."""
        changes: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        with self._lock:
            self._watchers.append((asyncio.get_running_loop(), changes))
        return changes

    def _log_change(self, previous: Phase, seconds: float, phase: Phase) -> None:
        def write() -> None:
            log.info(
                f"load phase: {phase.value}",
                extra={
                    "phase": phase.value,
                    "previous": previous.value,
                    "previous_s": round(seconds, 1),
                    **({"model": self.model} if self.model else {}),
                },
            )

        if self._loop is None:
            write()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads the log any more
            self._loop.call_soon_threadsafe(write)

    def advance(self, phase: Phase) -> None:
        """Move on to ``phase``; a phase already passed, or any after the end, changes nothing."""
        with self._lock:
            old = self.phase
            if old in _ENDS or (phase not in _ENDS and _ORDER.index(phase) <= _ORDER.index(old)):
                return
            now = time.monotonic()
            spent, self.phase, self.since = now - self.since, phase, now
            if old is Phase.QUEUED:  # its load begins now: the wait is not part of it
                self.started = now
            at_change: dict[str, object] = {
                "phase": phase.value,
                "phase_s": 0.0,
                "load_s": round(now - self.started, 1),
            }
            watchers = list(self._watchers)
        self.on_change(old, spent, phase)
        for loop, changes in watchers:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(changes.put_nowait, at_change)

    def status(self) -> dict[str, object]:
        """What model_info and /healthz show: the phase, seconds in it, seconds since the start."""
        now = time.monotonic()
        return {
            "phase": self.phase.value,
            "phase_s": round(now - self.since, 1),
            "load_s": round((self.since if self.phase in _ENDS else now) - self.started, 1),
        }

    def observe_log_line(self, line: str) -> None:
        """Called by the log pump for every line; only vLLM's INFO lines are looked at."""
        if "INFO" not in line:
            return
        for marker, phase in _MARKERS:
            if marker in line:
                self.advance(phase)
                return

    def seconds_in_phase(self) -> float:
        return time.monotonic() - self.since

    def seconds_loading(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        return describe(self.phase, self.seconds_in_phase())
