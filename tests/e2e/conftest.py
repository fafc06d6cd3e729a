"""A count of the vLLM engines the end-to-end suite starts.

Starting `vllm-mcp serve` on the tiny model costs a vLLM engine (most of a minute of one CPU
core here), so a module's tests share its server through the stages of the server's life
(``tests.support.life.Life``): the test that watches the load first, the tests that need it
loaded next, the one that ends it last. A test that needs other settings, a fault or a
restart keeps its own server: the settings are part of what it tests.

Every test waits for readiness (``wait_ready``: ``model_info`` says ready, ``/healthz`` is 200)
with generous deadlines instead of sleeping a fixed time, so a slower machine is only slower.

The suite counts the ``vllm-mcp serve`` processes and vLLM engine cores started under pytest
(any depth: gateways, systemd-style units and ``vllm-mcp chat`` included) by watching its
process tree; the counts per module are printed at the end (tests/conftest.py adds up the
parts of the xdist workers) and written to ``.cache/e2e-engines.json``.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.support.servers import ENGINE_COUNTS


class ProcessCensus:
    """Polls the pytest process's descendants for serve processes and engine cores."""

    INTERVAL = 0.3  # an engine core lives for seconds at least, a serve process too

    def __init__(self) -> None:
        self.seen: dict[tuple[int, float], tuple[str, str]] = {}  # (pid, start) -> (kind, test)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="e2e-census", daemon=True)

    @staticmethod
    def kind(p: psutil.Process) -> str | None:
        try:
            if "EngineCore" in p.name():
                return "engine"
            line = p.cmdline()
        except psutil.Error:
            return None
        if any("EngineCore" in word for word in line):
            return "engine"
        for i, word in enumerate(line[:-1]):
            if (word.endswith("vllm-mcp") or word == "vllm_mcp") and line[i + 1] == "serve":
                return "serve"
        return None

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(self.INTERVAL):
            try:
                children = me.children(recursive=True)
            except psutil.Error:
                continue
            test = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[0]
            for p in children:
                try:
                    key = (p.pid, p.create_time())
                except psutil.Error:
                    continue
                if key not in self.seen and (kind := self.kind(p)):
                    self.seen[key] = (kind, test)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        per_module: dict[str, Counter[str]] = {}
        for kind, module in self.seen.values():
            per_module.setdefault(module, Counter())[kind] += 1
        totals = Counter(kind for kind, _ in self.seen.values())
        return {
            "serve_processes": totals["serve"],
            "engines": totals["engine"],
            "per_module": {m: dict(c) for m, c in sorted(per_module.items())},
        }


_census: ProcessCensus | None = None


@pytest.fixture(scope="session", autouse=True)
def _count_engines() -> Iterator[None]:
    """Runs for every e2e test: the census starts with the first one."""
    global _census
    _census = ProcessCensus()
    _census.start()
    yield


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Each process that ran tests (each xdist worker) writes what its census saw; the root
    conftest, which the xdist controller also loads, adds the parts up at the end."""
    if _census is not None:
        ENGINE_COUNTS.parent.mkdir(parents=True, exist_ok=True)
        part = ENGINE_COUNTS.with_name(
            f"{ENGINE_COUNTS.stem}-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.json"
        )
        part.write_text(json.dumps(_census.stop()))
