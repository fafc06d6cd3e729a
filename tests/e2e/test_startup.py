"""End to end: what a client meets while the model loads, on stdio and on HTTP.

A real `vllm-mcp serve` on the tiny model, called the moment it answers: the load phase in
model_info and /healthz, progress notifications for a call that waits, an error (not an empty
success) for a call whose budget ends first, the load phases in the log; then, loaded, text
content parts.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.httpserver import HttpServer, mcp_client
from tests.support import McpClient, serve_env

pytestmark = pytest.mark.engine

LOADING_PHASES = {"importing", "starting_engine", "loading_weights", "compiling", "warming_up"}
PARTS = [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "world"}]


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


class Heard:
    """Progress notifications of one call, from the client's own thread or loop."""

    def __init__(self) -> None:
        self.notes: list[tuple[float, float | None, str | None]] = []
        self._lock = threading.Lock()

    def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        with self._lock:
            self.notes.append((progress, total, message))

    def waits(self) -> list[str]:
        return [m or "" for _, total, m in self.notes if total is None]

    def check(self) -> None:
        waits = self.waits()
        assert waits and all(w.startswith("waiting for the model to load: ") for w in waits), self.notes
        assert any(" s so far" in w for w in waits)
        values = [p for p, _, _ in self.notes]
        assert values == sorted(values) and len(set(values)) == len(values)  # only ever increasing


def test_stdio_a_call_during_the_load_hears_the_phase_and_a_budget_that_ends_first_is_an_error(
    tiny_model: Path,
) -> None:
    client = McpClient(serve_env(tiny_model, VLLM_DEFAULT_MAX_TOKENS="8"))
    try:
        info = client.info()
        assert info["server_state"] == "loading" and info["load_phase"] in LOADING_PHASES, info
        assert info["load_s"] >= info["load_phase_s"] >= 0
        heard = Heard()
        waiting = client.call_async("chat_completion", {"messages": user("hi")}, heard, timeout=600)
        short = client.call("chat_completion", {"messages": user("hi"), "timeout_s": 1})
        assert short.is_error, short.structured_content
        message = short.content[0].text
        assert message.startswith("the model is still loading: ") and "time budget of 1 s" in message
        result = waiting.result(610)
        assert not result.is_error, result.content[0].text
        assert result.structured_content["usage"]["completion_tokens"] > 0
        heard.check()
        ready = client.info()
        assert (ready["server_state"], ready["load_phase"]) == ("ready", "ready") and ready["load_s"] > 0
        # Loaded: OpenAI-style text parts are one message; anything else is named and refused.
        joined = client.call("chat_completion", {"messages": user(PARTS), "session_id": "p"})
        assert not joined.is_error, joined.content[0].text
        image = client.call(
            "chat_completion", {"messages": user([{"type": "image_url", "image_url": {"url": "x"}}])}
        )
        assert image.is_error
        assert "part [0] has type 'image_url': this model takes text only" in image.content[0].text
    finally:
        client.close()


def test_http_healthz_says_the_phase_and_a_call_during_the_load_behaves_as_on_stdio(tiny_model: Path) -> None:
    server = HttpServer(tiny_model, VLLM_DEFAULT_MAX_TOKENS="8")
    try:
        health = server.health()
        body = health.json()
        assert health.status_code == 503 and body["state"] == "loading", body
        assert body["phase"] in LOADING_PHASES and body["load_s"] >= body["phase_s"] >= 0

        async def calls() -> tuple[Any, Any, Heard]:
            heard = Heard()
            async with mcp_client(server.url, None) as client:

                async def progress(p: float, total: float | None, message: str | None) -> None:
                    heard(p, total, message)

                waiting = asyncio.ensure_future(
                    client.call_tool(
                        "chat_completion",
                        {"messages": user("hi")},
                        read_timeout_seconds=600,
                        progress_callback=progress,
                    )
                )
                short = await client.call_tool("chat_completion", {"messages": user("hi"), "timeout_s": 1})
                return short, await waiting, heard

        short, result, heard = asyncio.run(calls())
        assert short.is_error and short.content[0].text.startswith("the model is still loading: ")
        assert not result.is_error, result.content[0].text
        heard.check()
        done = server.health().json()
        assert done["state"] == "ready" and done["phase"] == "ready" and done["load_s"] > 0
        # One log line per phase change, in order.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(r.get("phase") == "ready" for r in server.log):
            time.sleep(0.2)
        phases = [r["phase"] for r in server.log if str(r.get("message", "")).startswith("load phase: ")]
        assert phases[0] == "starting_engine" and phases[-1] == "ready", phases
        assert "loading_weights" in phases and len(phases) == len(set(phases)), phases
    finally:
        server.close()
