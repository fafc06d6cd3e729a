"""Fixtures of the benchmark's own tests: the same clean environment as tests/ and its real
PostgreSQL (tests/support/), which ``--sessions`` measures."""

from __future__ import annotations

from tests.support.environment import without_callers_variables  # noqa: F401 - autouse
from tests.support.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures
