"""Per-request records and the summary figures ``vllm bench serve`` reports."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES = (50, 90, 99)


@dataclass
class RequestRecord:
    """Timestamps (``time.perf_counter`` seconds) of one request as the client saw it.

    ``chunks`` are the arrival times of each streamed piece carrying new output
    (a token for the engine and `vllm serve`, a progress notification for MCP).
    """

    start: float
    end: float = 0.0
    chunks: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    error: str | None = None
    server_ttft: float | None = None  # what the server itself reports, when it does
    server_total: float | None = None
    server_queued: float | None = None  # of server_total, the wait for a generation slot

    def take_reply(self, data: dict[str, Any]) -> None:
        """Counts and server timings from a chat_completion result's structuredContent."""
        self.output_tokens = data["usage"]["completion_tokens"]
        self.prompt_tokens = data["usage"]["prompt_tokens"]
        timings = data["timings"]
        self.server_ttft = timings["time_to_first_token_s"]
        self.server_total = timings["total_s"]
        self.server_queued = timings.get("queued_s")

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        return self.chunks[0] - self.start if self.chunks else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RequestRecord:
        return cls(**d)


def distribution(values: list[float], scale: float = 1000.0) -> dict[str, float | None]:
    """mean / p50 / p90 / p99 (milliseconds by default); ``None`` when nothing was measured."""
    if not values:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    ordered = sorted(v * scale for v in values)
    out: dict[str, float | None] = {"mean": statistics.fmean(ordered)}
    for p in PERCENTILES:
        out[f"p{p}"] = _percentile(ordered, p)
    return out


def _percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, as vLLM uses)."""
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarize(records: list[RequestRecord], duration: float) -> dict[str, Any]:
    """Throughput and latency figures of one level, named as in ``vllm bench serve``."""
    ok = [r for r in records if r.ok]
    out_tokens = sum(r.output_tokens for r in ok)
    in_tokens = sum(r.prompt_tokens for r in ok)
    ttfts = [t for r in ok if (t := r.ttft) is not None]
    tpots = [
        (r.end - r.start - r.ttft) / (r.output_tokens - 1)
        for r in ok
        if r.ttft is not None and r.output_tokens > 1
    ]
    itls = [b - a for r in ok for a, b in zip(r.chunks, r.chunks[1:], strict=False)]
    chunks = sum(len(r.chunks) for r in ok)
    server_ttfts = [r.server_ttft for r in ok if r.server_ttft is not None]
    server_totals = [r.server_total for r in ok if r.server_total is not None]
    generating = [
        r.server_total - r.server_queued
        for r in ok
        if r.server_total is not None and r.server_queued is not None
    ]
    return {
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "errors": sorted({r.error for r in records if r.error})[:5],
        "duration_s": duration,
        "total_input_tokens": in_tokens,
        "total_output_tokens": out_tokens,
        "request_throughput": len(ok) / duration if duration else None,
        "output_throughput": out_tokens / duration if duration else None,
        "total_token_throughput": (in_tokens + out_tokens) / duration if duration else None,
        "tokens_per_chunk": out_tokens / chunks if chunks else None,
        "ttft_ms": distribution(ttfts),
        "tpot_ms": distribution(tpots),
        "itl_ms": distribution(itls),
        "e2el_ms": distribution([r.end - r.start for r in ok]),
        "server_ttft_ms": distribution(server_ttfts),
        "server_e2el_ms": distribution(server_totals),
        # Calls the server was generating at once, on average: the seconds each spent past its
        # slot wait, summed, over the level's wall time. A server that serializes calls stays
        # at <= 1 whatever the machine's load; one that batches them approaches the concurrency.
        "server_concurrency": sum(generating) / duration
        if generating and len(generating) == len(ok) and duration
        else None,
    }
