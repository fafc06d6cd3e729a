"""Unit tests of ``VLLM_MCP_HTTP_WORKERS`` (vllm_mcp/server/frontends.py) that need no engine.

The workers on a real engine core are tests/e2e/test_http_workers.py.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.models import serve_env
from vllm_mcp.errors import HttpSetupError, TokenFileError
from vllm_mcp.server import frontends as workers


def run_serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "serve", "--transport", "http", "--http-workers", "2"],
        env=serve_env(tmp_path / "no-model", VLLM_MCP_SESSION_STORE=str(tmp_path / "s.db"), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def records(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_port_in_use_stops_the_parent_before_any_engine(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT=str(port))
    assert done.returncode == HttpSetupError.exit_code == 2
    lines = records(done.stderr)
    assert [r["message"] for r in lines if r["level"] == "CRITICAL"] == [
        f"cannot listen on 127.0.0.1:{port}: Address already in use "
        "(set VLLM_MCP_HTTP_HOST / VLLM_MCP_HTTP_PORT)"
    ]
    assert not any(r["message"] == "starting HTTP workers" for r in lines)  # no engine, no worker
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_unreadable_token_file_stops_the_parent_before_any_engine(tmp_path: Path) -> None:
    done = run_serve(tmp_path, VLLM_MCP_HTTP_PORT="0", VLLM_MCP_HTTP_TOKEN_FILE=str(tmp_path / "absent"))
    assert done.returncode == TokenFileError.exit_code == 2
    assert "no such file (VLLM_MCP_HTTP_TOKEN_FILE)" in done.stderr
    assert not any(r["message"] == "starting HTTP workers" for r in records(done.stderr))


def test_without_a_session_store_serve_refuses_with_what_to_set(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "serve", "--transport", "http", "--http-workers", "3"],
        env=serve_env(tmp_path / "no-model"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "VLLM_MCP_HTTP_WORKERS=3 needs VLLM_MCP_SESSION_STORE" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def record_factory() -> Iterator[None]:
    saved = logging.getLogRecordFactory()
    yield
    logging.setLogRecordFactory(saved)


def test_every_record_of_a_worker_names_it(record_factory: None) -> None:
    workers.tag_logs(1)
    record = logging.getLogger("vllm.anything").makeRecord("x", logging.INFO, "f", 1, "m", (), None)
    assert record.worker == 1  # type: ignore[attr-defined]
