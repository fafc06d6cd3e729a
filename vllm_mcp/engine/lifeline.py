"""Processes the server spawns die with it, even when it is killed with SIGKILL.

vLLM starts its engine core with multiprocessing's *spawn*, and the engine core
does not watch its parent: after a SIGKILL of the server it lives on, holding
the model's memory (its workers already follow the engine core through vLLM's
death pipe). A spawned child first runs the parent's "main module" as
``__mp_main__``; ``adopt_children`` makes that main module this one, so each
spawned descendant starts a thread that polls its parent pid and kills its own
process once it has been re-parented, within ``POLL_SECONDS``.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing.process
import multiprocessing.spawn
import os
import signal
import sys
import threading
import time
from typing import Any

POLL_SECONDS = 0.5
_MODULE = "vllm_mcp.engine.lifeline"
_closed = threading.Event()


def forbid_new_children() -> None:
    """From now on no process is spawned (a cancelled model load must not start one).

    A child started after we exit would begin its watch already orphaned and so never
    see its parent go; refusing the spawn is the only sure way.
    """
    _closed.set()


def adopt_children() -> None:
    """In the server, before vLLM starts: spawned children run ``watch_parent`` first.

    Only the choice of main module is changed: the child then imports this small
    module instead of re-running the server's entry script, which it never needs
    (vLLM's process targets live in vLLM's own modules).
    """
    original = multiprocessing.spawn.get_preparation_data
    if getattr(original, "_vllm_mcp", False):
        return

    def preparation_data(name: str) -> dict[str, Any]:
        if _closed.is_set():
            raise RuntimeError("vllm-mcp is shutting down; no new processes")
        data = original(name)
        data.pop("init_main_from_path", None)
        data["init_main_from_name"] = _MODULE
        return data

    preparation_data._vllm_mcp = True  # type: ignore[attr-defined]
    multiprocessing.spawn.get_preparation_data = preparation_data


def watch_parent() -> None:
    """In a spawned descendant: SIGKILL ourselves once our parent is gone.

    A parent pid of 1 is no sign of orphanhood: in a container the server may be pid 1.
    """
    parent = os.getppid()

    def poll() -> None:
        while True:
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(POLL_SECONDS)

    threading.Thread(target=poll, name="vllm-mcp-lifeline", daemon=True).start()


def exit_without_teardown() -> None:
    """In a spawned descendant: once its target has returned, end the process at once.

    After the exit handlers, interpreter shutdown collects every object a process holds,
    and one that imported torch and vLLM holds millions: that took 4-5 s of a vLLM CPU
    worker's exit here, longer than vLLM waits for its engine core (which it then kills),
    so every stop of the server took 5 s more. multiprocessing has already joined the
    process's threads and run its finalizers when ``_bootstrap`` returns; the exit handlers
    run here, the streams are flushed, and the exit status is the target's.
    """
    original = multiprocessing.process.BaseProcess._bootstrap  # type: ignore[attr-defined]

    def bootstrap(self: multiprocessing.process.BaseProcess, parent_sentinel: Any = None) -> int:
        code: int = original(self, parent_sentinel)
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed or broken stream: nothing more to say
                stream.flush()
        os._exit(code)

    multiprocessing.process.BaseProcess._bootstrap = bootstrap  # type: ignore[attr-defined]


if __name__ == "__mp_main__":
    exit_without_teardown()
    watch_parent()
