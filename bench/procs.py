"""Process-tree sampling: peak resident memory and the machine's other load."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Any

import psutil


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Sum of RSS over a process and its descendants (shared pages count once per process)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of one process (all its threads, none of its children)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(t.user + t.system)


class FrontEndCpu:
    """CPU time of a server's own process during a window: its front end, not its engine.

    For vllm-mcp and `vllm serve` the main process is the front end (HTTP or stdio, the
    protocol, vLLM's output handler and detokenizer); ``EngineCore`` and its workers are
    children and are not counted. On a loaded machine this is fairer than tokens/s: what
    one front end spends per token and per message, whatever else runs.
    """

    def __init__(self, *pids: int) -> None:
        self.pids = pids
        self.seconds: float | None = None

    def _now(self) -> float | None:
        times = [process_cpu_seconds(p) for p in self.pids]
        return None if None in times else sum(t for t in times if t is not None)

    def __enter__(self) -> FrontEndCpu:
        self._t0 = self._now()
        return self

    def __exit__(self, *exc: Any) -> None:
        t1 = self._now()
        self.seconds = t1 - self._t0 if t1 is not None and self._t0 is not None else None

    def figures(self, output_tokens: int, messages: int) -> dict[str, float | None]:
        s = self.seconds
        return {
            "cpu_s": s,
            "cpu_ms_per_1k_tokens": 1e6 * s / output_tokens if s is not None and output_tokens else None,
            "cpu_ms_per_message": 1e3 * s / messages if s is not None and messages else None,
            "messages": messages,
        }


class PeakRss:
    """Samples a process tree's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


def find_child(marker: str, parent: int | None = None) -> int:
    """The newest direct child of this process whose command line contains ``marker``."""
    me = psutil.Process(parent or os.getpid())
    found = [c for c in me.children() if marker in " ".join(_cmdline(c))]
    if not found:
        raise RuntimeError(f"no child process running {marker!r}")
    return max(found, key=lambda p: p.create_time()).pid


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


class LoadWindow:
    """CPU time used during a window by the whole machine, by us, and by everything else.

    The machine is shared with other work; ``other_cpu_pct`` (100 = one core busy)
    says how much of it was taken by processes outside the measured trees.
    """

    def __init__(self, *pids: int) -> None:
        self.pids = pids

    def _ours(self) -> float:
        return sum(tree_cpu_seconds(p) for p in self.pids)

    def __enter__(self) -> LoadWindow:
        self._t0 = time.perf_counter()
        self._sys0 = psutil.cpu_times()
        self._ours0 = self._ours()
        self._client0 = _own_cpu()
        self.loadavg_start = os.getloadavg()[0]
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = time.perf_counter() - self._t0
        sys1 = psutil.cpu_times()
        busy = _busy(sys1) - _busy(self._sys0)
        ours = self._ours() - self._ours0
        client = _own_cpu() - self._client0
        self.result = {
            "wall_s": wall,
            "loadavg_1m_start": self.loadavg_start,
            "loadavg_1m_end": os.getloadavg()[0],
            "machine_cpu_pct": 100 * busy / wall if wall else None,
            "measured_cpu_pct": 100 * ours / wall if wall else None,
            "other_cpu_pct": 100 * max(0.0, busy - ours) / wall if wall else None,
            # The driving process alone (the MCP or HTTP client, or the in-process engine driver).
            "client_cpu_pct": 100 * client / wall if wall else None,
        }


def _own_cpu() -> float:
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def _busy(t: Any) -> float:
    return float(t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0))
