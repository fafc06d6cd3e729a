"""How often vLLM hands a call its tokens (``admission.output_interval``, issue 31).

vLLM counts its per-request ``stream_interval`` in tokens, the pacer in seconds; the running
estimate of one call's decode rate converts. The engine here is the FakeEngine TEST DOUBLE,
which coalesces words per ``stream_interval`` as vLLM coalesces tokens.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.doubles import FakeEngine
from vllm_mcp.tools import generation
from vllm_mcp.tools.admission import COALESCE_TOKENS, ProgressRate, output_interval


def test_without_an_estimate_a_streaming_or_budgeted_call_gets_every_token() -> None:
    assert output_interval(True, 0.05, None, None) == 1
    assert output_interval(False, 0.05, 30.0, None) == 1
    assert output_interval(False, 0.05, None, None) == COALESCE_TOKENS  # nobody reads it early


@pytest.mark.parametrize(
    ("report_s", "rate", "expected"),
    [
        (0.32, 94.0, 15),  # c=64 at the 200/s cap: half of 0.32 s at 94 tok/s
        (0.08, 230.0, 9),  # c=16
        (0.05, 20.0, 1),  # a slow model: never below one token
        (10.0, 500.0, COALESCE_TOKENS),  # never coarser than a call nobody streams
    ],
)
def test_a_streaming_call_gets_half_its_notification_interval_in_tokens(
    report_s: float, rate: float, expected: int
) -> None:
    assert output_interval(True, report_s, None, rate) == expected


def test_a_time_budget_bounds_what_the_cut_can_lose() -> None:
    # At the deadline only what vLLM handed over is kept: at most 1 % of the budget's tokens.
    assert output_interval(False, 0.05, 30.0, 100.0) == 31
    assert output_interval(False, 0.05, 1.0, 100.0) == 2
    assert output_interval(False, 0.05, 0.0, 100.0) == 1  # no time left: every token
    # Streaming and a budget: the finer of the two.
    assert output_interval(True, 0.32, 30.0, 100.0) == 16
    assert output_interval(True, 0.32, 5.0, 100.0) == 6


def test_the_rate_learns_one_calls_decode_rate_and_paces_by_who_streams() -> None:
    rate = ProgressRate(interval=0.05, max_rate=200.0)
    rate.observe(0, 1.0)  # a one-token call says nothing about the rate
    rate.observe(10, 0.0)
    assert rate.decode_rate is None
    rate.observe(100, 1.0)
    assert rate.decode_rate == 100.0
    rate.observe(200, 1.0)
    assert rate.decode_rate == pytest.approx(120.0)  # a running average, not the last call
    assert rate.output_interval(True, None) == 3  # one call: 0.05 s x 120 tok/s / 2
    pacers = [rate.pacer(_ignore, total=10) for _ in range(64)]
    assert rate.output_interval(True, None) == 19  # 64 calls share 200/s: 0.32 s each
    for pacer in pacers:
        pacer.close()


def test_a_call_opening_a_burst_gets_the_pace_the_last_burst_ended_at() -> None:
    rate = ProgressRate(interval=0.05, max_rate=200.0)
    pacers = [rate.pacer(_ignore, total=10) for _ in range(64)]
    for _ in range(64):  # a wave of 64 streaming calls ends, each at 0.32 s and 80 tok/s
        rate.observe(80, 1.0)
    for pacer in pacers:
        pacer.close()
    assert rate.recent_interval == pytest.approx(0.32)
    first = rate.pacer(_ignore, total=10)  # the next wave's first call: alone for now
    assert rate.interval() == 0.05
    assert rate.output_interval(True, None) == 12  # half of 0.32 s at 80 tok/s, not of 0.05 s
    first.close()


async def _ignore(text: str, tokens: float, total: int | None) -> None:
    pass


def test_a_coalesced_stream_still_shows_the_first_token_at_once_and_every_token() -> None:
    fake = FakeEngine(loaded=True, reply="one two three four five six seven")
    rate = ProgressRate(interval=0.05, max_rate=0.0)
    rate.decode_rate = 120.0  # as if learnt: 3 tokens per output
    seen: list[tuple[str, int]] = []

    async def on_text(text: str, tokens: int) -> None:
        seen.append((text, tokens))

    params = generation.Sampling(max_tokens=16, temperature=0.0, top_p=1.0, top_k=-1)
    out = asyncio.run(generation.stream(fake, [1], params, "r1", time.monotonic(), on_text, None, rate))
    assert fake.sampling["r1"].stream_interval == 3
    assert seen == [("one ", 1), ("two three four ", 4), ("five six seven", 7)]
    assert out.text == "one two three four five six seven" and out.tokens == 7
    assert out.finish_reason == "stop"


def test_a_budgeted_call_is_coalesced_no_coarser_than_its_budget_allows() -> None:
    fake = FakeEngine(loaded=True)
    rate = ProgressRate(interval=0.05, max_rate=0.0)
    rate.decode_rate = 10.5  # 100 s of budget: 1 % of it is ~10.5 tokens
    params = generation.Sampling(max_tokens=8, temperature=0.0, top_p=1.0, top_k=-1)
    deadline = time.monotonic() + 100.0
    out = asyncio.run(generation.stream(fake, [1], params, "r1", time.monotonic(), None, deadline, rate))
    assert fake.sampling["r1"].stream_interval == 11
    assert out.text == "the fake engine says hello"


def test_the_tools_pace_the_engine_by_their_shared_rate() -> None:
    """Through ``Tools`` (the FakeEngine TEST DOUBLE): a call with progress and one with a time
    budget ask the engine for the granularity their rate's estimate gives."""
    from tests.support.doubles import tools_over

    sent: list[tuple[str, float, int | None]] = []

    async def progress(text: str, tokens: float, total: int | None) -> None:
        sent.append((text, tokens, total))

    async def scenario() -> list[int]:
        engine = FakeEngine(reply="one two three four five six seven")
        tools = tools_over(engine, VLLM_MCP_PROGRESS_INTERVAL="0.05", VLLM_MCP_PROGRESS_MAX_RATE="0")
        await engine.start()
        tools.progress_rate.decode_rate = 120.0  # as if learnt: 3 tokens per output when streaming
        chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        await tools.chat_completion(chat, progress)
        tools.progress_rate.decode_rate = 10.5  # ~10.5 tokens in 1 % of a 100 s budget
        await tools.chat_completion({**chat, "timeout_s": 100.0})
        return [engine.sampling[r].stream_interval for r in engine.started]

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [3, 11]
    assert sent[0] == ("one ", 1, 16)  # the first token at once
    assert "".join(text for text, _, _ in sent) == "one two three four five six seven"
    assert sent[-1][1] == 7  # the last notification counts every token
