"""Driving one level: N requests with at most ``concurrency`` in flight (no rate limit)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.procs import LoadWindow
from bench.stats import RequestRecord, summarize

Send = Callable[[int], Awaitable[RequestRecord]]
"""Send request number i of the workload; returns its record (errors recorded, not raised)."""


async def run_level(send: Send, requests: int, concurrency: int) -> dict[str, Any]:
    """As ``vllm bench serve --max-concurrency C --request-rate inf``: slots refill at once."""
    slots = asyncio.Semaphore(concurrency)

    async def one(i: int) -> RequestRecord:
        async with slots:
            try:
                return await send(i)
            except Exception as e:  # a harness-level failure of one request
                return RequestRecord(start=time.perf_counter(), end=time.perf_counter(), error=repr(e)[:300])

    with LoadWindow(os.getpid()) as load:
        t0 = time.perf_counter()
        records = await asyncio.gather(*(one(i) for i in range(requests)))
        duration = time.perf_counter() - t0
    summary = summarize(list(records), duration)
    summary["concurrency"] = concurrency
    summary["requests"] = requests
    summary["load"] = load.result
    return summary


async def round_trips(call: Callable[[], Awaitable[Any]], n: int) -> dict[str, float]:
    """p50/p90/p99 and mean of ``n`` sequential calls, in milliseconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    from bench.stats import distribution

    return {k: v for k, v in distribution(times).items() if v is not None}
