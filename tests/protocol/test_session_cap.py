"""VLLM_MCP_MAX_SESSIONS_PER_CALLER for MCP sessions in stateful HTTP (protocol/session_cap.py).

The real transport and the SDK's session manager serve a bare SDK ``Server`` (no engine
needed: sessions are the transport's business). Issue 27, finding 3: on main the SDK's cap was
10,000 sessions for everyone together, so one caller could take them all.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.httpserver import ACCEPT
from tests.support.served import INIT, ServedDouble, wait_listening


@pytest.fixture
def capped(tmp_path):  # type: ignore[no-untyped-def]
    token_file = tmp_path / "tokens"
    token_file.write_text("alice:" + "a" * 32 + "\nbob:" + "b" * 32 + "\n")
    token_file.chmod(0o600)
    served = ServedDouble(
        tmp_path, VLLM_MCP_HTTP_TOKEN_FILE=str(token_file), VLLM_MCP_MAX_SESSIONS_PER_CALLER="2"
    )
    yield served
    served.close()


def test_a_callers_new_session_ends_its_own_oldest_and_no_one_elses(capped: ServedDouble) -> None:
    """Fails on main: alice's third session left her first one open (no per-caller cap)."""
    import httpx2

    wait_listening(capped.base + "/healthz")

    def headers(who: str, session: str | None = None) -> dict[str, str]:
        h = {**ACCEPT, "Authorization": "Bearer " + who * 32}
        if session:
            h |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        return h

    def open_session(who: str) -> str:
        r = httpx2.post(capped.url, json=INIT, headers=headers(who))
        assert r.status_code == 200, r.text
        return str(r.headers["mcp-session-id"])

    def ping(who: str, session: str) -> Any:
        body = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        return httpx2.post(capped.url, json=body, headers=headers(who, session)).status_code

    bob = open_session("b")
    alice = [open_session("a") for _ in range(3)]
    assert ping("a", alice[0]) == 404  # her oldest ended for her third
    assert ping("a", alice[1]) == 200 and ping("a", alice[2]) == 200
    assert ping("b", bob) == 200  # bob's untouched
