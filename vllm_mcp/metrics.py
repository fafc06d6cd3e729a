"""Prometheus metrics, written as a textfile for node_exporter's textfile collector.

A stdio server has no port to scrape, so the metrics go to a file that node_exporter
(``--collector.textfile.directory``) serves. The file is replaced atomically, so a scrape never
sees half of it. Our own series are ``vllm_mcp_*`` in a private registry; vLLM's ``vllm:*``
series are copied from the default registry as ``vllm_*``. ``process_*`` and ``python_*`` are left out on
purpose: node_exporter exports its own, and duplicate series break its scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from vllm_mcp import __version__

_Metric = TypeVar("_Metric", Counter, Gauge, Histogram, Enum)

log = logging.getLogger(__name__)

ENGINE_STATES = ("loading", "ready", "failed", "stopped")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


class _VllmSeries(Collector):
    """vLLM's own ``vllm:*`` families from the default registry, renamed ``vllm_*``.

    Colons are reserved for recording rules: ``promtool check metrics`` rejects them in an
    exposition, and the textfile must pass it. So ``vllm:num_requests_running`` is written as
    ``vllm_num_requests_running``; labels and values are vLLM's own.
    """

    def collect(self) -> Iterator[Metric]:
        for family in prometheus_client.REGISTRY.collect():
            if family.name.startswith("vllm:"):
                yield _renamed(family)


def _renamed(family: Metric) -> Metric:
    name = "vllm_" + family.name.removeprefix("vllm:")
    if family.type != "counter":
        name = name.removesuffix("_total")  # "_total" is for counters only
    copy = Metric(name, family.documentation, family.type, family.unit)
    copy.samples = [
        sample._replace(name=name + sample.name.removeprefix(family.name)) for sample in family.samples
    ]
    return copy


class _Labelled(Collector):
    """Every sample of ``registry`` with ``labels`` added."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            copy = Metric(family.name, family.documentation, family.type, family.unit)
            copy.samples = [s._replace(labels={**s.labels, **self.labels}) for s in family.samples]
            yield copy


class Metrics:
    """The server's counters; cheap to update, rendered only when the file is written."""

    def __init__(
        self, model_name: str, textfile: Path | None, interval: float, worker: int | None = None
    ) -> None:
        # "_created" series double the file for no use in a textfile; vLLM's series share the switch.
        prometheus_client.disable_created_metrics()
        # One of VLLM_MCP_HTTP_WORKERS front ends: a file of its own, every series labelled
        # worker="K" (node_exporter refuses one series from two files); sum without(worker).
        self.worker = worker
        if textfile is not None and worker is not None:
            textfile = textfile.with_name(f"{textfile.stem}-worker{worker}{textfile.suffix}")
        self.textfile = textfile
        self.interval = interval
        self.registry = CollectorRegistry(auto_describe=True)
        self._write_failed = False
        self._dropped_seen = 0
        model = {"model": model_name}
        r = self.registry

        def labelled(metric: _Metric, **labels: str) -> _Metric:
            return metric.labels(**model, **labels)

        self._requests = Counter(
            "vllm_mcp_requests",
            "Tool calls finished, by tool, outcome and caller (VLLM_MCP_METRICS_CALLER_LABEL: '' when off).",
            ["model", "tool", "outcome", "caller"],
            registry=r,
        )
        self._latency = Histogram(
            "vllm_mcp_request_duration_seconds",
            "Tool call latency, from request to response.",
            ["model", "tool"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        # Per served model (VLLM_MCP_MODELS): a call's model labels these; the server's by default.
        self._ttft = Histogram(
            "vllm_mcp_time_to_first_token_seconds",
            "Time from the call to its first generated token.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self._prompt_tokens = Counter(
            "vllm_mcp_prompt_tokens", "Prompt tokens sent to the engine.", ["model"], registry=r
        )
        self._generation_tokens = Counter(
            "vllm_mcp_generation_tokens", "Tokens generated by the engine.", ["model"], registry=r
        )
        self._in_flight = labelled(
            Gauge("vllm_mcp_requests_in_flight", "Tool calls being served now.", ["model"], registry=r)
        )
        self._queued = labelled(
            Gauge(
                "vllm_mcp_requests_queued", "Generation calls waiting for a free slot.", ["model"], registry=r
            )
        )
        self._sessions = labelled(
            Gauge(
                "vllm_mcp_active_sessions", "Conversations held in the session store.", ["model"], registry=r
            )
        )
        self._tasks = Gauge(
            "vllm_mcp_tasks",
            "Tasks (calls run in the background, polled for) in the task store, by status "
            "(every server sharing it).",
            ["model", "status"],
            registry=r,
        )
        self._evictions = labelled(
            Counter(
                "vllm_mcp_session_evictions",
                "Sessions dropped because the store was full.",
                ["model"],
                registry=r,
            )
        )
        self._engine_state = Enum(
            "vllm_mcp_engine_state",
            "State of the vLLM engine (one per served model).",
            ["model"],
            states=list(ENGINE_STATES),
            registry=r,
        )
        self._dropped = labelled(
            Counter(
                "vllm_mcp_log_lines_dropped",
                "Log lines dropped because stderr was not being read.",
                ["model"],
                registry=r,
            )
        )
        info = Gauge(
            "vllm_mcp_build_info", "Version of vllm-mcp; always 1.", ["model", "version"], registry=r
        )
        info.labels(**model, version=__version__).set(1)
        labelled(
            Gauge(
                "vllm_mcp_start_time_seconds",
                "Start time of the server, seconds since the epoch.",
                ["model"],
                registry=r,
            )
        ).set(time.time())
        self._model = model_name
        self.add_models([model_name])
        r.register(_VllmSeries())

    def add_models(self, names: list[str]) -> None:
        """Start each served model's series at zero, so a scrape sees them before a call."""
        for name in names:
            self._ttft.labels(model=name)
            self._prompt_tokens.labels(model=name)
            self._generation_tokens.labels(model=name)

    # --- updates (called from the event loop; each is a few attribute writes) ---

    def request_started(self, tool: str) -> None:
        self._in_flight.inc()

    def request_finished(
        self, tool: str, outcome: str, seconds: float, caller: str | None = None, model: str | None = None
    ) -> None:
        """``model``: the served model the call named (a configured name, never a caller's
        free text); the server's model label when None."""
        self._in_flight.dec()
        model = model or self._model
        self._requests.labels(model=model, tool=tool, outcome=outcome, caller=caller or "").inc()
        self._latency.labels(model=model, tool=tool).observe(seconds)

    def observe_ttft(self, seconds: float, model: str | None = None) -> None:
        self._ttft.labels(model=model or self._model).observe(seconds)

    def add_tokens(self, prompt: int, completion: int, model: str | None = None) -> None:
        model = model or self._model
        self._prompt_tokens.labels(model=model).inc(prompt)
        if completion:
            self._generation_tokens.labels(model=model).inc(completion)

    def set_queued(self, n: int) -> None:
        self._queued.set(n)

    def set_sessions(self, n: int) -> None:
        self._sessions.set(n)

    def set_tasks(self, counts: dict[str, int]) -> None:
        for status, n in counts.items():
            self._tasks.labels(model=self._model, status=status).set(n)

    def session_evicted(self, n: int = 1) -> None:
        self._evictions.inc(n)

    def set_engine_state(self, state: str, model: str | None = None) -> None:
        if state in ENGINE_STATES:
            self._engine_state.labels(model=model or self._model).state(state)

    def set_log_lines_dropped(self, total: int) -> None:
        if total > self._dropped_seen:
            self._dropped.inc(total - self._dropped_seen)
            self._dropped_seen = total

    # --- output ---

    def render(self) -> bytes:
        """The exposition text (Prometheus text format 0.0.4)."""
        if self.worker is None:
            return prometheus_client.generate_latest(self.registry)
        return prometheus_client.generate_latest(_Labelled(self.registry, {"worker": str(self.worker)}))

    def write(self) -> None:
        """Replace the textfile atomically; a failure is logged once and never stops the server."""
        if self.textfile is None:
            return
        try:
            write_atomically(self.textfile, self.render())
        except Exception as exc:  # a full disk or a broken collector must not stop serving
            if not self._write_failed:
                log.warning(
                    "cannot write the metrics textfile", extra={"path": str(self.textfile), "error": str(exc)}
                )
            self._write_failed = True
        else:
            if self._write_failed:
                log.info("metrics textfile writable again", extra={"path": str(self.textfile)})
            self._write_failed = False

    async def run(self) -> None:
        """Write the file every ``interval`` seconds until cancelled."""
        if self.textfile is None:
            return
        while True:
            await asyncio.to_thread(self.write)
            await asyncio.sleep(self.interval)


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a hidden temporary file beside ``path``, flush it to disk, then rename it over.

    The temporary name does not end in ``.prom``, so node_exporter never reads it; the mode is
    0644 because node_exporter usually runs as another user.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
