"""A per-caller cap on MCP sessions in stateful HTTP (``VLLM_MCP_MAX_SESSIONS_PER_CALLER``).

The SDK's ``StreamableHTTPSessionManager`` caps sessions only globally (10,000), so one
caller opening sessions in a loop could fill it for everyone. At the cap, a caller's new
session ends its own oldest one first (as the session stores evict, sessions/base.py), so a
client that abandons sessions without DELETE keeps working and others are never touched.
The caller is the SDK's own notion of who owns a session (its ``requestor``: client, issuer,
subject); without authentication everyone is one caller.

This wraps the manager's ``_admit_session`` (the SDK's place where a session is registered,
under its creation lock); tests/protocol/test_http.py runs it against the pinned SDK.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def cap_per_caller(manager: Any, limit: int) -> None:
    """Make ``manager`` end a caller's oldest sessions so that its new one is at most its ``limit``-th."""
    admit = manager._admit_session
    ending: set[asyncio.Task[None]] = set()

    def admit_capped(requestor: Any) -> Any:
        owners: dict[str, Any] = manager._session_owners
        mine = [sid for sid in manager._server_instances if owners.get(sid) == requestor]  # oldest first
        for sid in mine[: max(0, len(mine) - limit + 1)]:
            transport = manager._server_instances.pop(sid, None)
            owners.pop(sid, None)  # forgotten now: its id answers 404 from here on
            if transport is None:
                continue
            log.info(
                "MCP session ended: its caller opened more than VLLM_MCP_MAX_SESSIONS_PER_CALLER",
                extra={"limit": limit},
            )
            task = asyncio.get_running_loop().create_task(manager._discard_session(sid, transport))
            ending.add(task)
            task.add_done_callback(ending.discard)
        return admit(requestor)

    manager._admit_session = admit_capped
