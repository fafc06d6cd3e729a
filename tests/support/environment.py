"""The caller's environment, kept from every test: ``VLLM_*``, ``HF_*`` and the token variables.

The suite runs the same whatever the caller exported. tests/conftest.py removes these before
any test module is imported (huggingface_hub reads some once, at import); ``without_callers_variables``,
an autouse fixture for every conftest that imports it, removes them again around each test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

CALLER_PREFIXES = ("VLLM_", "HF_", "HUGGING_FACE", "TRANSFORMERS_OFFLINE")


def callers_variables() -> list[str]:
    """The names of the variables set now that a test must not inherit."""
    return [name for name in os.environ if name.startswith(CALLER_PREFIXES)]


@pytest.fixture(autouse=True)
def without_callers_variables(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No VLLM_*, HF_* or token variable from outside (or from an earlier test) reaches a test."""
    for name in callers_variables():
        monkeypatch.delenv(name)
    yield
