"""The ``backend`` fixture: each store scenario on memory, SQLite and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stores import Backend


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path, request)
