"""Fixtures shared by unit and end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ROOT, make_tiny_model

MODELS = ROOT / ".cache" / "test-models"


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """A tiny random Llama with a chat template (made once, kept in .cache/)."""
    return make_tiny_model(MODELS / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_base_model() -> Path:
    """The same model without a chat template: a base model."""
    return make_tiny_model(MODELS / "tiny-llama-base", chat_template=False)
