"""The per-call time budget (VLLM_MCP_MAX_CALL_SECONDS, ``timeout_s``), on an engine double.

The real engine under a budget is tested end to end in tests/e2e/test_fluidmcp_main.py.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.doubles import FakeEngine, tools_over
from vllm_mcp import tools
from vllm_mcp.config import ConfigError, Settings


def chat(t: tools.Tools, **arguments: Any) -> tuple[tools.ChatResult, float]:
    started = time.monotonic()
    result = asyncio.run(t.chat_completion({"messages": [{"role": "user", "content": "hi"}], **arguments}))
    return result, time.monotonic() - started


def test_the_server_budget_cuts_a_long_generation_and_returns_the_text_so_far() -> None:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True)
    t = tools_over(engine, VLLM_MCP_MAX_CALL_SECONDS="0.3")
    result, took = chat(t, max_tokens=100_000, session_id="s")
    assert result.finish_reason == "time_limit"
    assert result.text and result.text == "x" * result.usage.completion_tokens
    assert 0.3 <= took < 5
    assert engine.aborted == ["mcp-1"]  # the generation was stopped, not left running
    # The turn is kept as the caller received it.
    assert asyncio.run(t.sessions.history("s"))[-1] == {"role": "assistant", "content": result.text}


def test_timeout_s_is_capped_at_the_server_budget() -> None:
    t = tools_over(
        FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True), VLLM_MCP_MAX_CALL_SECONDS="30"
    )
    assert t.time_budget(None) == 30 and t.time_budget(600) == 30 and t.time_budget(2.5) == 2.5
    result, took = chat(t, max_tokens=100_000, timeout_s=0.2)
    assert result.finish_reason == "time_limit" and took < 5
    t = tools_over(FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True))
    assert t.time_budget(None) is None and t.time_budget(7) == 7


def test_a_call_within_its_budget_is_untouched() -> None:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True)
    t = tools_over(engine, VLLM_MCP_MAX_CALL_SECONDS="30")
    result, _ = chat(t, max_tokens=5)
    assert result.finish_reason == "length" and result.usage.completion_tokens == 5
    assert engine.aborted == []


def test_time_spent_waiting_counts_and_nothing_is_stored() -> None:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double")  # still loading when the budget runs out
    t = tools_over(engine)
    result, took = chat(t, timeout_s=0.2, session_id="s")
    assert result.finish_reason == "time_limit" and result.text == "" and took < 5
    assert result.usage.completion_tokens == 0
    assert asyncio.run(t.sessions.history("s")) == []  # the same turn can simply be sent again


def test_time_queued_for_a_slot_counts() -> None:
    t = tools_over(
        FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True), VLLM_MCP_MAX_CONCURRENCY="1"
    )

    async def scenario() -> tuple[tools.ChatResult, tools.ChatResult]:
        first = asyncio.create_task(
            t.chat_completion({"messages": [{"role": "user", "content": "a"}], "max_tokens": 100})
        )
        await asyncio.sleep(0.05)
        second = await t.chat_completion(
            {"messages": [{"role": "user", "content": "b"}], "max_tokens": 100, "timeout_s": 0.2}
        )
        return await first, second

    first, second = asyncio.run(scenario())
    assert first.finish_reason == "length"
    assert second.finish_reason == "time_limit" and second.text == ""
    assert second.timings.queued_s >= 0.19


@pytest.mark.parametrize(("value", "expected"), [(0, "greater than 0"), ("10", "valid number")])
def test_bad_timeout_s_is_named(value: Any, expected: str) -> None:
    with pytest.raises(tools.InvalidArguments, match=f"timeout_s: .*{expected}"):
        tools.parse_arguments(
            tools.ChatArguments, {"messages": [{"role": "user", "content": "x"}], "timeout_s": value}
        )


def test_the_setting_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="VLLM_MCP_MAX_CALL_SECONDS"):
        Settings.load(environ={"VLLM_MCP_MAX_CALL_SECONDS": "0"})
