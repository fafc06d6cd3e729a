"""The engine's threads and processes, without importing vLLM.

The load thread that builds the ``AsyncLLM``, stopping the engine processes a cancelled load
left behind, the CPU workers' priority, the devices one model's processes see, and a load
failure explained (the root cause in the engine's log, what to try).
core.py (the only module that imports vLLM) uses them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from vllm_mcp.config.settings import Settings

log = logging.getLogger("vllm_mcp.engine.core")  # the engine's log lines, as before the split


LOAD_THREAD = "vllm-mcp-load"
"""The thread that builds the ``AsyncLLM``; a daemon, so an exit never waits for a load."""


async def in_load_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a daemon thread (``asyncio.to_thread``'s pool is joined at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as e:
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=LOAD_THREAD, daemon=True).start()
    return await future


@contextlib.contextmanager
def visible_devices(devices: tuple[int, ...] | None) -> Iterator[None]:
    """``CUDA_VISIBLE_DEVICES`` for the engine processes one model's load starts, then as before.

    vLLM's processes inherit the environment when they are spawned, during the load; models load
    one after another, so each model's processes see only its ``devices``. Without devices
    (no models file, or none given) the environment is left alone. On CPU it changes nothing.
    """
    if devices is None:
        yield
        return
    name = "CUDA_VISIBLE_DEVICES"
    before = os.environ.get(name)
    os.environ[name] = ",".join(str(d) for d in devices)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def stop_engine_processes(timeout: float = 3.0) -> int:
    """Terminate the engine processes a cancelled load left behind; returns how many."""
    children = multiprocessing.active_children()
    for child in children:
        with contextlib.suppress(Exception):
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(Exception):
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join(1.0)
    return len(children)


WORKER_NAME = "VLLM::Worker"


def lower_worker_priority(root: int, nice: int) -> list[int]:
    """Renice every thread of vLLM's worker processes below ``root``; returns their pids.

    On CPU, vLLM's engine core and worker busy-poll each other. Where the kernel groups a
    session's processes for scheduling (autogroup, on by default in most distributions) and
    the MCP client started us in a new session (the official SDK does), the server's front
    end then waits behind them for whole time slices: 8 concurrent calls took as long as 8
    calls one after another on a 2-core machine. A lower priority for the worker lets the
    front end run when it needs to and costs nothing measurable otherwise (docs/performance.md,
    "Findings"). Failures are logged, never raised: this is tuning, not correctness.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    descendants: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - descendants
        descendants |= frontier
    workers = []
    for pid in sorted(descendants):
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith(WORKER_NAME):
                continue
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
            workers.append(pid)
        except OSError as e:
            log.warning("could not lower the priority of a vLLM worker", extra={"pid": pid, "error": str(e)})
    if workers:
        log.info("lowered the priority of vLLM's CPU workers", extra={"pids": workers, "nice": nice})
    return workers


_CAUSE_MARKERS = ("Error", "error:", "Exception", "out of memory", "ValueError", "RuntimeError")


def root_cause(lines: Sequence[str]) -> str | None:
    """The last line of the engine's log that names an error: vLLM only says 'see above'."""
    for line in reversed(lines):
        stripped = line.strip()
        if not stripped or "See root cause above" in stripped or stripped.startswith("File "):
            continue
        if any(m in stripped for m in _CAUSE_MARKERS):
            return stripped[-500:]
    return None


def explain_failure(error: BaseException, log_lines: Sequence[str], s: Settings, model: str | None) -> str:
    """A load failure in one line: the error, the root cause from the engine's log, and what to
    try when memory ran out (``model``: its name in VLLM_MCP_MODELS, whose keys are then named)."""
    text = f"{type(error).__name__}: {error}".strip()
    cause = root_cause(log_lines)
    if cause and cause not in text:
        text = f"{text} (root cause: {cause})"
    lowered = text.lower()
    if not ("out of memory" in lowered or "outofmemory" in lowered or "kv cache" in lowered):
        return text
    if model is not None:  # the model's own keys in the models file
        return text + (
            f". Try: 1) reduce model {model!r}'s gpu_memory_utilization (current: "
            f"{s.gpu_memory_utilization}) or max_model_len (current: "
            f"{s.max_model_len or 'model default'}) in VLLM_MCP_MODELS, 2) give it more GPUs "
            "(tensor_parallel_size, devices), 3) on CPU raise VLLM_CPU_KVCACHE_SPACE "
            f"(current: {s.cpu_kvcache_space_gib} GiB)"
        )
    return text + (
        ". Try: 1) reduce VLLM_GPU_MEMORY_UTILIZATION (current: "
        f"{s.gpu_memory_utilization}), 2) reduce VLLM_MAX_MODEL_LEN (current: "
        f"{s.max_model_len or 'model default'}), 3) use a smaller model or more GPUs "
        f"(VLLM_TENSOR_PARALLEL_SIZE, current: {s.tensor_parallel_size}), "
        f"4) on CPU raise VLLM_CPU_KVCACHE_SPACE (current: {s.cpu_kvcache_space_gib} GiB)"
    )
