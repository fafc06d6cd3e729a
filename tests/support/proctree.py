"""Process-tree helpers for the fault tests: who belongs to a server, and are they gone."""

from __future__ import annotations

import contextlib
import time

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (engine core, workers, resource tracker)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


# Each orphan sees its parent go within lifeline.POLL_SECONDS, but a loaded 2-core machine
# takes seconds more to tear down a process holding an engine's memory: a generous deadline.
GONE_WITHIN = 30.0


def wait_gone(processes: list[psutil.Process], timeout: float = GONE_WITHIN) -> list[psutil.Process]:
    """The processes still alive after ``timeout`` seconds (empty when all died)."""
    deadline = time.monotonic() + timeout
    left = alive(processes)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = alive(left)
    return left


def kill_all(processes: list[psutil.Process]) -> None:
    """Clean-up after a failed test: never leave an engine behind."""
    for p in alive(processes):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
