"""Unit tests of lifeline: spawned children die with their parent, even on SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests.support import ROOT, proctree
from vllm_mcp.engine import lifeline

PARENT = """
import multiprocessing, os, signal, sys, time
from vllm_mcp.engine import lifeline
if sys.argv[1] == "adopt":
    lifeline.adopt_children()
ctx = multiprocessing.get_context("spawn")
up = ctx.Event()
# The child runs its main module (lifeline's watch, when adopted) before its target says it is up.
child = ctx.Process(target=exec, args=("up.set(); import time; time.sleep(600)", {"up": up}), daemon=False)
child.start()
print(child.pid, flush=True)
assert up.wait(60), "the child never started"
os.kill(os.getpid(), signal.SIGKILL)
"""


def spawn_and_kill_parent(mode: str) -> psutil.Process:
    proc = subprocess.Popen([sys.executable, "-c", PARENT, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = psutil.Process(int(proc.stdout.readline()))
    assert proc.wait(30) == -9
    return child


def test_a_spawned_child_dies_with_its_killed_parent() -> None:
    child = spawn_and_kill_parent("adopt")
    assert proctree.wait_gone([child], timeout=3) == []


def test_without_it_the_child_outlives_the_parent() -> None:
    """The behaviour lifeline exists to prevent (vLLM's engine core does this)."""
    child = spawn_and_kill_parent("plain")
    try:
        time.sleep(1.5)
        assert proctree.alive([child]) == [child]
    finally:
        proctree.kill_all([child])


def test_no_process_is_spawned_once_children_are_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancelled model load's thread must not start an engine process after we exit."""
    import multiprocessing
    import multiprocessing.spawn

    monkeypatch.setattr(
        multiprocessing.spawn, "get_preparation_data", multiprocessing.spawn.get_preparation_data
    )
    monkeypatch.setattr(lifeline, "_closed", threading.Event())
    lifeline.adopt_children()
    lifeline.forbid_new_children()
    child = multiprocessing.get_context("spawn").Process(target=print)
    with pytest.raises(RuntimeError, match="shutting down"):
        child.start()
    assert multiprocessing.active_children() == []


EXITING_CHILD = """
import multiprocessing, sys
from vllm_mcp.engine import lifeline
lifeline.adopt_children()
TARGET = '''
import atexit, sys
class Cycle:
    def __del__(self):
        print("collected at teardown", flush=True)
a, b = Cycle(), Cycle()
a.other, b.other = b, a  # only a full collection at interpreter shutdown finds these
del a, b
atexit.register(lambda: print("exit handler ran", flush=True))
print("unflushed output", end="")
sys.exit(3)
'''
child = multiprocessing.get_context("spawn").Process(target=exec, args=(TARGET, {}))
child.start()
child.join(60)
print("exitcode", child.exitcode, flush=True)
"""


def test_a_spawned_child_ends_without_teardown_keeping_its_status_handlers_and_output() -> None:
    """Interpreter teardown took 4-5 s of a vLLM worker's exit; the child skips only that."""
    out = subprocess.run(
        [sys.executable, "-c", EXITING_CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120
    ).stdout
    assert "exit handler ran" in out
    assert "unflushed output" in out
    assert "exitcode 3" in out
    assert "collected at teardown" not in out
