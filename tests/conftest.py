"""Fixtures shared by unit and end-to-end tests.

The suite runs the same whatever the caller exported: the settings' variables (and the
Hugging Face ones, which huggingface_hub reads once, at import) are removed before any test
module is imported, and again around every test; a test sets what it needs with monkeypatch.
End-to-end servers get their environment from ``tests.support.models.serve_env``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.environment import callers_variables, without_callers_variables  # noqa: F401 - autouse
from tests.support.models import make_tiny_adapter, make_tiny_embedding_model, make_tiny_model
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures, for every test
from tests.support.servers import ENGINE_COUNTS
from tests.support.vision import make_tiny_vision_model

# Before huggingface_hub is imported by any test module: it turns HF_HUB_OFFLINE, HF_HOME and
# HF_ENDPOINT into constants then.
for _name in callers_variables():
    del os.environ[_name]
# ... and import it now, while the environment is clean (its hf_api and file_download copy
# constants at import too), rather than in whichever test first needs it: a test's
# monkeypatched HF_HUB_OFFLINE would become every later test's constant.
import huggingface_hub.file_download  # noqa: E402
import huggingface_hub.hf_api  # noqa: E402, F401

MODELS = ROOT / ".cache" / "test-models"
AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


def pytest_report_header() -> str | None:
    """Say when the kernel may starve servers spawned by the SDK's stdio_client (docs/performance.md)."""
    try:
        if AUTOGROUP.read_text().strip() == "1":
            return (
                "kernel.sched_autogroup_enabled=1: on a small CPU machine the concurrency tests may run "
                "slowly at random; .ci/run turns it off"
            )
    except OSError:
        pass
    return None


# Unit tests first (a failure shows in a minute), then the end-to-end modules, the longest
# first: CI runs them on three workers (pytest-xdist, --dist loadscope --no-loadscope-reorder),
# and a long module started last would run alone at the end. The list is the modules' own
# time, longest first, measured on a 2-core AMD EPYC (each starts one or more engines); the
# modules not named follow in their usual order.
E2E_LONGEST_FIRST = (
    "test_multinode",
    "test_faults",
    "test_persistence",
    "test_http_workers",
    "test_session_store",
    "test_hostile",
    "test_hostile_http",
    "test_tasks_replicas",
    "test_tasks_ts_client",
    "test_secrets",
    "test_gateway",
    "test_sdk_client",
    "test_fluidmcp_main",
    "test_generation",
    "test_lifecycle",
    "test_http_unit",
    "test_embedded",
    "test_replicas",
    "test_doctor_smoke",
    "test_protocol",
    "test_http_life",
)


def _order(item: pytest.Item) -> tuple[int, int]:
    path = Path(str(item.fspath))
    if path.parent.name != "e2e":
        return (0, 0)
    if path.stem in E2E_LONGEST_FIRST:
        return (1, E2E_LONGEST_FIRST.index(path.stem))
    return (2, 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_order)  # stable: the order within each module (and group) is kept


@contextlib.contextmanager
def _models_lock() -> Iterator[None]:
    """The test models are made once on disk; parallel workers (pytest -n) wait for each other."""
    MODELS.mkdir(parents=True, exist_ok=True)
    with open(MODELS / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A tiny random Llama with a chat template (made once, kept in .cache/)."""
    with _models_lock():
        return make_tiny_model(MODELS / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_base_model() -> Path:
    """The same model without a chat template: a base model."""
    with _models_lock():
        return make_tiny_model(MODELS / "tiny-llama-base", chat_template=False)


@pytest.fixture(scope="session")
def tiny_thinking_model() -> Path:
    """The tiny model with a thinking chat template and <think>/<tool_call> tokens (models.py)."""
    with _models_lock():
        return make_tiny_model(MODELS / "tiny-llama-thinking", thinking=True)


@pytest.fixture(scope="session")
def tiny_vision_model(tiny_model: Path) -> Path:
    """A tiny random Idefics3 (images in, tests/support/vision.py) on the tiny Llama's tokenizer."""
    with _models_lock():
        return make_tiny_vision_model(MODELS / "tiny-idefics3", tiny_model)


@pytest.fixture(scope="session")
def tiny_embedding_model() -> Path:
    """A tiny random Llama of its own size, served as an embedding model (models.py)."""
    with _models_lock():
        return make_tiny_embedding_model(MODELS / "tiny-llama-embed")


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model: Path) -> dict[str, Path]:
    """Two random LoRA adapters (rank 8) for the tiny model: name -> directory."""
    with _models_lock():
        return {
            name: make_tiny_adapter(MODELS / f"tiny-llama-lora-{name}", tiny_model, seed)
            for name, seed in (("alpha", 1), ("beta", 2))
        }


# --- the e2e engine census, added up ------------------------------------------------------
# Here, not in tests/e2e/conftest.py: pytest-xdist's controller runs no test and loads only
# this conftest; each worker writes its part (tests/e2e/conftest.py), the controller adds them.


def _engine_count_parts() -> list[Path]:
    return sorted(ENGINE_COUNTS.parent.glob(f"{ENGINE_COUNTS.stem}-*.json"))


def pytest_sessionstart(session: pytest.Session) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        for old in _engine_count_parts():
            old.unlink()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    parts = [json.loads(p.read_text()) for p in _engine_count_parts()]
    if not parts:
        return
    per_module: dict[str, Counter[str]] = {}
    for part in parts:
        for module, counts in part["per_module"].items():
            per_module.setdefault(module, Counter()).update(counts)
    report = {
        "serve_processes": sum(p["serve_processes"] for p in parts),
        "engines": sum(p["engines"] for p in parts),
        "per_module": {m: dict(c) for m, c in sorted(per_module.items())},
    }
    ENGINE_COUNTS.write_text(json.dumps(report, indent=1) + "\n")
    terminalreporter.write_sep("-", "vLLM engines started by the e2e tests")
    for module, counts in report["per_module"].items():
        terminalreporter.write_line(
            f"{counts.get('engine', 0):3d} engines {counts.get('serve', 0):3d} serve  {module}"
        )
    terminalreporter.write_line(
        f"{report['engines']:3d} engines {report['serve_processes']:3d} serve  in all ({ENGINE_COUNTS})"
    )
