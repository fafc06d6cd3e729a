"""The per-call time budget (VLLM_MCP_MAX_CALL_SECONDS, ``timeout_s``) and what a waiting call
hears, on an engine double.

The real engine under a budget is tested end to end in tests/e2e/test_fluidmcp_main.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.load_phase import Phase
from vllm_mcp.errors import ConfigError
from vllm_mcp.tools import handlers as tools


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


def test_a_budget_that_ends_while_the_model_loads_is_an_error_that_says_so() -> None:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double")  # still loading when the budget runs out
    engine.load.advance(Phase.COMPILING)
    t = tools_over(engine)
    started = time.monotonic()
    with pytest.raises(tools.NotStarted) as e:
        chat(t, timeout_s=0.2, session_id="s")
    assert time.monotonic() - started < 5
    message = str(e.value)
    assert re.match(
        r"the model is still loading: compiling the model, 0 s so far \(0 s since the load", message
    )
    assert "this call's time budget of 0.2 s (timeout_s, capped at VLLM_MCP_MAX_CALL_SECONDS)" in message
    assert asyncio.run(t.sessions.history("s")) == []  # the same turn can simply be sent again
    assert engine.started == []


def test_a_budget_that_ends_in_the_queue_is_an_error_naming_the_wait_for_a_slot() -> None:
    t = tools_over(
        FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True), VLLM_MCP_MAX_CONCURRENCY="1"
    )

    async def scenario() -> tuple[tools.ChatResult, str]:
        first = asyncio.create_task(
            t.chat_completion({"messages": [{"role": "user", "content": "a"}], "max_tokens": 100})
        )
        await asyncio.sleep(0.05)
        with pytest.raises(tools.NotStarted) as e:
            await t.chat_completion(
                {"messages": [{"role": "user", "content": "b"}], "max_tokens": 100, "timeout_s": 0.2}
            )
        return await first, str(e.value)

    first, message = asyncio.run(scenario())
    assert first.finish_reason == "length"
    assert re.match(
        r"waited 0\.[2-9] s for a free generation slot \(1 calls generating, "
        r"VLLM_MCP_MAX_CONCURRENCY=1\)",
        message,
    ), message


def test_a_budget_that_ends_before_the_first_token_is_an_error_not_an_empty_reply() -> None:
    engine = FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True)
    engine.hold()  # the engine has the request, no token comes
    t = tools_over(engine)
    with pytest.raises(tools.NotStarted, match=r"no token within this call's time budget of 0\.2 s"):
        chat(t, timeout_s=0.2, session_id="s")
    assert asyncio.run(t.sessions.history("s")) == [] and engine.aborted == ["mcp-1"]


def test_a_call_waiting_for_the_model_hears_what_it_waits_for() -> None:
    engine = FakeEngine(reply="hello there", model_name="double")
    t = tools_over(engine)
    t.wait_report_interval = 0.05
    heard: list[tuple[str, float, int | None]] = []

    async def progress(text: str, done: float, total: int | None) -> None:
        heard.append((text, done, total))

    async def scenario() -> tools.ChatResult:
        call = asyncio.create_task(
            t.chat_completion({"messages": [{"role": "user", "content": "x"}]}, progress)
        )
        await asyncio.sleep(0.12)
        engine.load.advance(Phase.LOADING_WEIGHTS)
        await asyncio.sleep(0.12)
        await engine.start()
        return await call

    result = asyncio.run(scenario())
    assert result.text == "hello there"
    waits = [h for h in heard if h[2] is None]
    replies = [h for h in heard if h[2] is not None]
    assert len(waits) >= 3 and waits[0][0].startswith("waiting for the model to load: importing vLLM, ")
    assert waits[-1][0].startswith("waiting for the model to load: loading the weights, ")
    assert "".join(r[0] for r in replies) == "hello there"
    values = [h[1] for h in heard]
    assert values == sorted(values) and len(set(values)) == len(values)  # progress only increases
    assert all(v < 1 for _, v, _ in waits) and replies[0][1] >= 1


def test_a_call_that_does_not_wait_hears_no_waiting_message() -> None:
    t = tools_over(FakeEngine(reply="hi", loaded=True))
    t.wait_report_interval = 0.01
    heard: list[int | None] = []

    async def progress(text: str, done: float, total: int | None) -> None:
        heard.append(total)

    asyncio.run(t.chat_completion({"messages": [{"role": "user", "content": "x"}]}, progress))
    assert heard and None not in heard


@pytest.mark.parametrize(("value", "expected"), [(0, "greater than 0"), ("10", "valid number")])
def test_bad_timeout_s_is_named(value: Any, expected: str) -> None:
    with pytest.raises(tools.InvalidArguments, match=f"timeout_s: .*{expected}"):
        tools.parse_arguments(
            tools.ChatArguments, {"messages": [{"role": "user", "content": "x"}], "timeout_s": value}
        )


def test_the_setting_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="VLLM_MCP_MAX_CALL_SECONDS"):
        Settings.load(environ={"VLLM_MCP_MAX_CALL_SECONDS": "0"})


def test_a_call_queued_for_a_slot_hears_that_it_waits_for_one() -> None:
    t = tools_over(
        FakeEngine(endless="x", pace=0.01, model_name="double", loaded=True), VLLM_MCP_MAX_CONCURRENCY="1"
    )
    t.wait_report_interval = 0.05
    waits: list[str] = []

    async def progress(text: str, done: float, total: int | None) -> None:
        if total is None:
            waits.append(text)

    async def scenario() -> None:
        first = asyncio.create_task(
            t.chat_completion({"messages": [{"role": "user", "content": "a"}], "max_tokens": 30})
        )
        await asyncio.sleep(0.02)
        await t.chat_completion({"messages": [{"role": "user", "content": "b"}], "max_tokens": 2}, progress)
        await first

    asyncio.run(scenario())
    assert waits and all(re.fullmatch(r"waiting for a free generation slot \(0 s so far\)", w) for w in waits)
