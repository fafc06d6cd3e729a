"""Admission and pacing: how many calls generate at once, and how often one call reports.

``Admission`` bounds generations in flight (``VLLM_MCP_MAX_CONCURRENCY``) and calls waiting
(``VLLM_MCP_MAX_QUEUE``); beyond both a call is told the server is busy rather than queued
without end. ``ProgressPacer`` coalesces token deltas so one call sends at most one progress
notification per ``VLLM_MCP_PROGRESS_INTERVAL``; ``ProgressRate`` stretches that interval when
many calls stream, so all of them together stay under ``VLLM_MCP_PROGRESS_MAX_RATE``.
``output_interval`` turns that pace (and a call's time budget) into vLLM's per-request
``stream_interval``: how many tokens vLLM coalesces into one output, so the engine hands over
no more outputs than the caller will be told about.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from vllm_mcp.errors import OutOfTime, ServerBusy
from vllm_mcp.tools import tasks

ProgressSender = Callable[[str, float, int | None], Awaitable[None]]
"""``(new_text, tokens_so_far, max_tokens)``, called at a bounded rate; or, while a call waits,
``(what_it_waits_for, progress below 1, None)``: no total marks a message that is not reply text."""

WAIT_REPORT_INTERVAL = 2.0
"""Seconds between the notifications of a call waiting for the model or a slot."""

COALESCE_TOKENS = 64
"""Tokens per engine output when nobody reads the text before the end (and the most ever)."""

REPORT_SHARE = 0.5
"""Engine outputs per notification interval, inverted: at half the interval's worth of tokens
an output lands at most half an interval after the pacer's time, so the notification gap stays
within 1.5 intervals (at a whole interval's worth, jitter would let every other output miss the
pacer's time and double the gap)."""

BUDGET_SHARE = 0.01
"""A call cut by its time budget loses the tokens vLLM had not yet handed over: at most this
share of the budget's worth of tokens."""

RATE_WEIGHT = 0.2
"""Weight of the latest call in the running estimate of one call's decode rate."""


def output_interval(streams: bool, report_s: float, budget_s: float | None, decode_rate: float | None) -> int:
    """Tokens vLLM coalesces into one output after the first (its ``stream_interval``).

    vLLM counts in tokens, the pacer in seconds: ``decode_rate`` (tokens/s of one call, as
    recently measured) converts. A streaming call gets ``REPORT_SHARE`` of its notification
    interval's worth; a call with a time budget at most ``BUDGET_SHARE`` of the budget's worth
    (the cut keeps only what vLLM handed over); a call with neither, ``COALESCE_TOKENS``.
    Without an estimate yet, a call that streams or has a budget gets every token, as before.
    vLLM always sends the first token at once (time to first token unchanged) and the last
    output with the finish reason, so the result still carries every token.
    """
    tokens = COALESCE_TOKENS
    if streams or budget_s is not None:
        if not decode_rate:
            return 1
        if streams:
            tokens = min(tokens, int(REPORT_SHARE * report_s * decode_rate))
        if budget_s is not None:
            tokens = min(tokens, 1 + int(BUDGET_SHARE * max(0.0, budget_s) * decode_rate))
    return max(1, tokens)


class Admission:
    """At most ``limit`` generations at once, at most ``max_queue`` calls waiting."""

    def __init__(self, limit: int, max_queue: int) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float | None = None) -> Any:
        """A generation slot; ``OutOfTime`` if none frees within ``timeout`` seconds."""
        if self._slots.locked() and self.waiting >= self.max_queue:
            raise ServerBusy(
                f"server busy: {self.in_flight} calls generating and {self.waiting} waiting "
                f"(VLLM_MCP_MAX_CONCURRENCY={self.limit}, VLLM_MCP_MAX_QUEUE={self.max_queue}); "
                "retry later"
            )
        self.waiting += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise OutOfTime from None
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()


class ProgressRate:
    """A server-wide cap on progress notifications per second, shared by all streaming calls.

    Each notification costs the front end a fixed slice of CPU in the MCP SDK
    (docs/performance.md), so the total rate, not the per-call one, is what takes tokens/s
    away. Like vLLM's ``stream_interval``, one call streams at ``interval`` and many calls
    coarsen: each waits ``max(interval, streaming / max_rate)``. ``max_rate`` 0: no cap.
    """

    def __init__(self, interval: float, max_rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._max_rate = max_rate
        self.clock = clock
        self.streaming = 0
        self.decode_rate: float | None = None
        """Tokens/s of one call after its first token, a running average over recent calls."""
        self.recent_interval = 0.0
        """``interval()`` as recent calls ended, a running average: what a call starting in a
        burst will see once the rest of the burst streams too."""

    def interval(self) -> float:
        """The least seconds between two notifications of one call, given who streams now."""
        if not self._max_rate:
            return self._interval
        return max(self._interval, self.streaming / self._max_rate)

    def observe(self, tokens: int, seconds: float) -> None:
        """One call generated ``tokens`` more after its first output in ``seconds``."""
        if tokens < 1 or seconds <= 0:
            return
        rate, now = tokens / seconds, self.interval()
        old = self.decode_rate
        if old is None:
            self.decode_rate, self.recent_interval = rate, now
        else:
            self.decode_rate = old + RATE_WEIGHT * (rate - old)
            self.recent_interval += RATE_WEIGHT * (now - self.recent_interval)

    def output_interval(self, streams: bool, budget_s: float | None) -> int:
        """``output_interval`` for a call starting now (its pacer, if any, already counted).

        The pace is the larger of now's and the recent one: the first calls of a burst start
        while few others stream, but report at the burst's pace once the rest have started
        (the decode rate they are converted with is the burst's too).
        """
        report_s = max(self.interval(), self.recent_interval, tasks.report_floor.get())
        return output_interval(streams, report_s, budget_s, self.decode_rate)

    def pacer(self, send: ProgressSender, total: int) -> ProgressPacer:
        """A pacer for one call, counted as streaming until its ``close``."""
        self.streaming += 1
        return ProgressPacer(send, total, self)


class ProgressPacer:
    """Coalesces token deltas so one call sends at most one notification per interval.

    The first delta goes out at once (it is the caller's time to first token); ``flush``
    sends whatever is left, so the last notification carries every token.
    """

    def __init__(self, send: ProgressSender, total: int, rate: ProgressRate) -> None:
        self._send = send
        self._total = total
        self._rate = rate
        self._pending = ""
        self._tokens = 0
        self._sent_tokens = 0
        self._last = float("-inf")
        self._open = True

    async def add(self, text: str, tokens: int) -> None:
        self._pending += text
        self._tokens = tokens
        if self._rate.clock() - self._last >= self._rate.interval():
            await self.flush()

    async def flush(self) -> None:
        # A token can decode to no text (an end-of-text or special token): its count still
        # goes out, so the last notification's progress is the call's real token count.
        if not self._pending and self._tokens == self._sent_tokens:
            return
        text, self._pending = self._pending, ""
        self._last, self._sent_tokens = self._rate.clock(), self._tokens
        await self._send(text, self._tokens, self._total)

    def close(self) -> None:
        """The call no longer streams: it stops counting against the shared rate."""
        if self._open:
            self._open = False
            self._rate.streaming -= 1


class WaitReporter:
    """While a call waits (model loading, no free slot), tells its caller so every ``interval``.

    Clients that reset their request timeout on progress (the TypeScript SDK's
    ``resetTimeoutOnProgress``) then keep waiting. Progress must increase and the token counts
    that follow start at 1, so a wait reports n/(n+1), and no total.
    """

    def __init__(
        self,
        send: ProgressSender | None,
        describe: Callable[[float], str],
        started: float,
        interval: float = WAIT_REPORT_INTERVAL,
    ) -> None:
        self._send = send
        self._describe = describe
        self._started = started
        self._interval = interval
        self.sent = 0

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        if self._send is None:
            yield
            return
        task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self) -> None:
        assert self._send is not None
        while True:
            await asyncio.sleep(self._interval)
            self.sent += 1
            message = self._describe(time.monotonic() - self._started)
            await self._send(message, self.sent / (self.sent + 1), None)
