"""Unit tests of the protocol-free tool layer: argument checks, schemas, admission, pacing.

No engine here: the last part runs ``Tools`` over the ``FakeEngine`` test double; the
end-to-end behaviour of the tools on the real engine is in tests/e2e/test_server.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.engine.core import EngineUnavailable
from vllm_mcp.tools import handlers as tools


def chat_args(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (chat_args(temperature=2.5), "temperature: Input should be less than or equal to 2"),
        (chat_args(temperature="hot"), "temperature: Input should be a valid number"),
        (chat_args(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        (chat_args(max_tokens=1.5), "max_tokens: Input should be a valid integer"),
        (chat_args(top_p=0), "top_p: Input should be greater than 0"),
        (chat_args(top_k=0), "top_k: must be -1 (disabled) or >= 1"),
        (chat_args(seed=-1), "seed: Input should be greater than or equal to 0"),
        (chat_args(stream=True), "stream: unknown argument"),
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({}, "messages: required argument is missing"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role: Input should be"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages[0].content: must be a string or a list of {'type': 'text', 'text': ...} parts",
        ),
        (chat_args(session_id=""), "session_id: String should have at least 1 character"),
    ],
)
def test_bad_arguments_are_named(arguments: dict[str, Any], expected: str) -> None:
    with pytest.raises(tools.InvalidArguments) as e:
        tools.parse_arguments(tools.ChatArguments, arguments)
    assert str(e.value).startswith("invalid arguments: ")
    assert expected in str(e.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(tools.InvalidArguments) as e:
        tools.parse_arguments(tools.ChatArguments, chat_args(temperature=9, top_k=-5))
    assert "temperature:" in str(e.value) and "top_k:" in str(e.value)


def test_good_arguments_parse() -> None:
    args = tools.parse_arguments(tools.ChatArguments, chat_args(top_k=-1, seed=3, temperature=0))
    assert (args.top_k, args.seed, args.temperature, args.max_tokens) == (-1, 3, 0.0, None)


def test_schemas_have_no_refs_and_declare_the_output() -> None:
    for model, mode in [(tools.ChatArguments, "validation"), (tools.ChatResult, "serialization")]:
        s = tools.schema(model, mode)  # type: ignore[arg-type]
        assert "$ref" not in json.dumps(s)
    out = tools.schema(tools.ChatResult, "serialization")
    assert set(out["required"]) >= {"text", "finish_reason", "model", "session_id", "usage", "timings"}
    assert out["properties"]["usage"]["properties"].keys() == {"prompt_tokens", "completion_tokens"}


def test_admission_bounds_in_flight_and_queue() -> None:
    async def scenario() -> tuple[int, int, str]:
        adm = tools.Admission(limit=2, max_queue=1)
        release = asyncio.Event()
        peak = 0

        async def call() -> None:
            nonlocal peak
            async with adm.slot():
                peak = max(peak, adm.in_flight)
                await release.wait()

        running = [asyncio.create_task(call()) for _ in range(3)]  # 2 run, 1 waits
        await asyncio.sleep(0.01)
        waiting = adm.waiting
        with pytest.raises(tools.ServerBusy) as busy:
            async with adm.slot():
                pass
        release.set()
        await asyncio.gather(*running)
        return peak, waiting, str(busy.value)

    peak, waiting, message = asyncio.run(scenario())
    assert peak == 2 and waiting == 1
    assert message.startswith("server busy:") and "VLLM_MCP_MAX_CONCURRENCY=2" in message


def test_pacer_sends_the_first_delta_at_once_then_coalesces() -> None:
    sent: list[tuple[str, int, int]] = []

    async def send(text: str, tokens: int, total: int) -> None:
        sent.append((text, tokens, total))

    async def scenario() -> None:
        pacer = tools.ProgressRate(interval=60.0, max_rate=0).pacer(send, total=50)
        await pacer.add("Hel", 1)
        for i, piece in enumerate(["lo", ",", " wor", "ld"], start=2):
            await pacer.add(piece, i)
        await pacer.flush()
        await pacer.flush()  # nothing pending: nothing sent

    asyncio.run(scenario())
    assert sent == [("Hel", 1, 50), ("lo, world", 5, 50)]


def test_pacer_reports_tokens_that_decode_to_no_text() -> None:
    """An end-of-text token has no text; the last notification still counts it."""
    sent: list[tuple[str, int, int]] = []

    async def send(text: str, tokens: int, total: int) -> None:
        sent.append((text, tokens, total))

    async def scenario() -> None:
        pacer = tools.ProgressRate(interval=60.0, max_rate=0).pacer(send, total=3)
        await pacer.add("a", 1)
        await pacer.add("b", 2)
        await pacer.add("", 3)
        await pacer.flush()

    asyncio.run(scenario())
    assert sent == [("a", 1, 3), ("b", 3, 3)]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def paced_run(calls: int, interval: float, max_rate: float, tokens: int, step: float) -> list[list[int]]:
    """``calls`` pacers on one rate, one token each per ``step`` seconds of the fake clock.

    Returns, per call, the token counts its notifications carried.
    """
    clock = FakeClock()
    rate = tools.ProgressRate(interval=interval, max_rate=max_rate, clock=clock)
    sent: list[list[int]] = [[] for _ in range(calls)]

    def sender(i: int) -> tools.ProgressSender:
        async def send(text: str, count: int, total: int) -> None:
            assert text == "x" * (count - (sent[i][-1] if sent[i] else 0))  # no text lost
            sent[i].append(count)

        return send

    async def scenario() -> None:
        pacers = [rate.pacer(sender(i), total=tokens) for i in range(calls)]
        assert rate.streaming == calls
        for n in range(1, tokens + 1):
            for pacer in pacers:
                await pacer.add("x", n)
            clock.now += step
        for pacer in pacers:
            await pacer.flush()
            pacer.close()
            pacer.close()  # idempotent: a call is uncounted once

    asyncio.run(scenario())
    assert rate.streaming == 0
    return sent


# Binary fractions of a second, so the fake clock's sums are exact: a token every 1/128 s for
# 1 s, a per-call interval of 1/16 s (8 tokens).
STEP, INTERVAL, TOKENS = 1 / 128, 1 / 16, 128


def test_one_call_paces_at_the_interval_under_the_cap() -> None:
    (counts,) = paced_run(calls=1, interval=INTERVAL, max_rate=200, tokens=TOKENS, step=STEP)
    assert counts[0] == 1  # time to first token: the first delta at once
    assert counts[-1] == TOKENS  # the last notification carries every token
    assert counts == [*range(1, TOKENS, 8), TOKENS]  # one per interval between


def test_many_calls_share_the_cap() -> None:
    # 64 calls: at 1/16 s each they would send 64 * 17 = 1,088 in the second; the cap of 200/s
    # stretches each call's interval to 64 / 200 = 0.32 s (41 tokens).
    sent = paced_run(calls=64, interval=INTERVAL, max_rate=200, tokens=TOKENS, step=STEP)
    assert all(counts == [1, 42, 83, 124, TOKENS] for counts in sent)  # first at once, last complete


def test_no_cap_keeps_the_per_call_interval() -> None:
    sent = paced_run(calls=64, interval=INTERVAL, max_rate=0, tokens=TOKENS, step=STEP)
    assert all(counts == [*range(1, TOKENS, 8), TOKENS] for counts in sent)


def test_a_call_that_fails_stops_counting_against_the_cap() -> None:
    class Gone(Exception):
        pass

    async def progress(text: str, tokens: int, total: int) -> None:
        pass

    async def broken(text: str, tokens: int, total: int) -> None:
        raise Gone  # the client's stream went away mid-call

    async def scenario() -> int:
        t, engine = make_tools(FakeEngine(reply="one two"))
        await engine.start()
        await t.chat_completion(chat_args(max_tokens=2), progress)
        with pytest.raises(Gone):
            await t.chat_completion(chat_args(max_tokens=2), broken)
        return t.progress_rate.streaming

    assert run(scenario) == 0


# --- Tools over the FakeEngine double: admission, queueing, cancellation, shutdown ------------


def make_tools(engine: FakeEngine | None = None, **env: str) -> tuple[tools.Tools, FakeEngine]:
    """``Tools`` as the app builds them, over the double; settings from ``env`` only."""
    engine = engine or FakeEngine()
    return tools_over(engine, **env), engine


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 10))


async def until(condition: Any, timeout: float = 2.0) -> None:
    """Yield to the loop until ``condition()`` holds (no fixed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.001)


def test_a_call_streams_the_engines_reply_and_reports_usage() -> None:
    sent: list[tuple[str, int, int]] = []

    async def progress(text: str, tokens: int, total: int) -> None:
        sent.append((text, tokens, total))

    async def scenario() -> tools.ChatResult:
        t, engine = make_tools(
            FakeEngine(reply="one two three four"),
            VLLM_MCP_PROGRESS_INTERVAL="0",
            VLLM_MCP_PROGRESS_MAX_RATE="0",
        )
        await engine.start()
        return await t.chat_completion(chat_args(max_tokens=3, temperature=0), progress)

    result = run(scenario)
    assert result.text == "one two three " and result.finish_reason == "length"
    assert result.usage.completion_tokens == 3 and result.model == "fake-model"
    assert sent == [("one ", 1, 3), ("two ", 2, 3), ("three ", 3, 3)]


def test_sampling_defaults_come_from_the_settings() -> None:
    async def scenario() -> Any:
        t, engine = make_tools(
            VLLM_DEFAULT_TEMPERATURE="0.3", VLLM_DEFAULT_TOP_K="5", VLLM_DEFAULT_MAX_TOKENS="9"
        )
        await engine.start()
        await t.chat_completion(chat_args(seed=4))
        await t.chat_completion(chat_args(temperature=0, top_k=-1, max_tokens=2))
        return [engine.sampling[r] for r in engine.started]

    defaults, explicit = run(scenario)
    assert (defaults.temperature, defaults.top_k, defaults.max_tokens, defaults.seed) == (0.3, 5, 9, 4)
    assert (explicit.temperature, explicit.top_k, explicit.max_tokens, explicit.seed) == (0.0, -1, 2, None)


def test_a_session_carries_the_earlier_turns_into_the_prompt() -> None:
    prompts: list[str] = []

    def reply(ids: list[int]) -> str:
        prompts.append("".join(map(chr, ids)))
        return f"answer{len(prompts)}"

    async def scenario() -> None:
        t, engine = make_tools(FakeEngine(reply=reply))
        await engine.start()
        await t.chat_completion(chat_args(session_id="s"))
        await t.chat_completion({"messages": [{"role": "user", "content": "again"}], "session_id": "s"})
        await t.chat_completion({"messages": [{"role": "user", "content": "alone"}]})

    run(scenario)
    assert prompts[1] == "<user>hi<assistant>answer1<user>again<assistant>"
    assert prompts[2] == "<user>alone<assistant>"


def test_a_call_waits_for_the_model_then_reports_a_load_failure() -> None:
    async def scenario() -> str:
        t, engine = make_tools(FakeEngine(fail_to_load="out of memory"))
        call = asyncio.create_task(t.chat_completion(chat_args()))
        await asyncio.sleep(0.01)
        assert not call.done()  # still loading: the call waits
        await engine.start()
        with pytest.raises(EngineUnavailable) as e:
            await call
        return str(e.value)

    assert run(scenario) == "model failed: out of memory"


def test_text_parts_are_joined_in_order_and_the_session_keeps_the_joined_text() -> None:
    prompts: list[str] = []

    def reply(ids: list[int]) -> str:
        prompts.append("".join(map(chr, ids)))
        return "ok"

    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]

    async def scenario() -> None:
        t, engine = make_tools(FakeEngine(reply=reply))
        await engine.start()
        await t.chat_completion({"messages": [{"role": "user", "content": parts}], "session_id": "p"})
        await t.chat_completion({"messages": [{"role": "user", "content": "more"}], "session_id": "p"})

    run(scenario)
    assert prompts == ["<user>Hello<assistant>", "<user>Hello<assistant>ok<user>more<assistant>"]


def test_the_content_limit_counts_the_joined_parts() -> None:
    async def scenario() -> None:
        t, engine = make_tools(VLLM_MCP_MAX_CONTENT_CHARS="5")
        await engine.start()
        parts = [{"type": "text", "text": "123"}, {"type": "text", "text": "456"}]
        with pytest.raises(tools.InvalidArguments, match=r"messages\[0\].content: longer than 5"):
            await t.chat_completion({"messages": [{"role": "user", "content": parts}]})
        await t.chat_completion({"messages": [{"role": "user", "content": parts[:1]}]})
        assert len(engine.started) == 1

    run(scenario)


def test_too_long_content_is_refused_before_admission() -> None:
    async def scenario() -> None:
        t, engine = make_tools(VLLM_MCP_MAX_CONTENT_CHARS="5")
        await engine.start()
        with pytest.raises(tools.InvalidArguments, match="longer than 5 characters"):
            await t.chat_completion({"messages": [{"role": "user", "content": "123456"}]})
        assert engine.started == []

    run(scenario)


def test_admission_limits_generations_answers_busy_and_keeps_queue_order() -> None:
    async def scenario() -> None:
        t, engine = make_tools(VLLM_MCP_MAX_CONCURRENCY="2", VLLM_MCP_MAX_QUEUE="3")
        await engine.start()
        engine.hold()
        # max_tokens tells the calls apart in the engine's records.
        calls = []
        for n in range(1, 6):
            calls.append(asyncio.create_task(t.chat_completion(chat_args(max_tokens=n))))
            await asyncio.sleep(0)
        await until(lambda: len(engine.started) == 2 and t.admission.waiting == 3)
        info = await t.model_info()
        assert (info.in_flight_requests, info.queued_requests, info.engine_unfinished_requests) == (2, 3, 2)
        with pytest.raises(tools.ServerBusy) as busy:
            await t.chat_completion(chat_args())
        assert str(busy.value) == (
            "server busy: 2 calls generating and 3 waiting "
            "(VLLM_MCP_MAX_CONCURRENCY=2, VLLM_MCP_MAX_QUEUE=3); retry later"
        )
        engine.release()
        await asyncio.gather(*calls)
        assert [engine.sampling[r].max_tokens for r in engine.started] == [1, 2, 3, 4, 5]
        assert engine.finished == engine.started and engine.aborted == []
        assert (t.admission.in_flight, t.admission.waiting) == (0, 0)

    run(scenario)


def test_cancelling_a_call_aborts_its_engine_request_and_frees_the_slot() -> None:
    async def scenario() -> None:
        t, engine = make_tools(FakeEngine(reply="a " * 1000, pace=0.001), VLLM_MCP_MAX_CONCURRENCY="1")
        await engine.start()
        call = asyncio.create_task(t.chat_completion(chat_args()))
        queued = asyncio.create_task(t.chat_completion(chat_args(max_tokens=3)))
        await until(lambda: engine.started)
        call.cancel()  # what notifications/cancelled does to the SDK's request task
        with pytest.raises(asyncio.CancelledError):
            await call
        assert engine.aborted == ["mcp-1"]
        result = await queued  # the slot went to the next call
        assert result.finish_reason == "length" and engine.finished == ["mcp-2"]

    run(scenario)


def test_abort_all_ends_generating_and_waiting_calls_with_an_error_and_refuses_new_ones() -> None:
    async def scenario() -> None:
        t, engine = make_tools(VLLM_MCP_MAX_CONCURRENCY="1")
        await engine.start()
        engine.hold()
        generating = asyncio.create_task(t.chat_completion(chat_args()))
        waiting = asyncio.create_task(t.chat_completion(chat_args()))
        await until(lambda: engine.started and t.admission.waiting == 1)
        t.stop_intake()
        assert (await t.model_info()).server_state == "stopping"
        t.abort_all()
        for call in (generating, waiting):
            with pytest.raises(tools.ShuttingDown, match="server shut down before this call could finish"):
                await call
        assert engine.aborted == ["mcp-1"] and engine.unfinished_requests() == 0
        with pytest.raises(tools.ShuttingDown, match="no new calls are accepted"):
            await t.chat_completion(chat_args())

    run(scenario)


def test_cancelling_a_queued_call_leaves_the_queue_without_reaching_the_engine() -> None:
    async def scenario() -> None:
        t, engine = make_tools(VLLM_MCP_MAX_CONCURRENCY="1", VLLM_MCP_MAX_QUEUE="1")
        await engine.start()
        engine.hold()
        generating = asyncio.create_task(t.chat_completion(chat_args()))
        queued = asyncio.create_task(t.chat_completion(chat_args()))
        await until(lambda: engine.started and t.admission.waiting == 1)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert t.admission.waiting == 0  # its place in the queue is free again
        third = asyncio.create_task(t.chat_completion(chat_args()))
        engine.release()
        await asyncio.gather(generating, third)
        assert engine.started == engine.finished == ["mcp-1", "mcp-2"] and engine.aborted == []

    run(scenario)


def test_session_keys_are_namespaced_per_caller() -> None:
    assert tools.session_key(None, "s") == "s"  # stdio, or HTTP without tokens: as before
    assert tools.session_key("alice", None) is None
    assert tools.session_key("alice", "s") != tools.session_key("bob", "s")
    assert tools.session_key("alice", "s") != "s"


def test_a_failing_session_store_fails_the_call_but_not_the_server(tmp_path: Any) -> None:
    """A store that refuses every statement (a full disk): the call is a tool error naming the
    store, nothing is recorded, model_info still answers, and the next call succeeds once it is back."""
    import sqlite3

    from vllm_mcp.errors import SessionStoreUnavailable
    from vllm_mcp.sessions import SqliteSessionStore

    async def scenario() -> None:
        t, engine = make_tools()
        store = SqliteSessionStore(tmp_path / "s.db", 10, 50)
        await store.open()
        t.sessions = store
        await engine.start()
        await t.chat_completion(chat_args(session_id="s"))
        assert store._db is not None
        store._db.set_authorizer(lambda *action: sqlite3.SQLITE_DENY)
        with pytest.raises(SessionStoreUnavailable, match="the sqlite session store failed") as e:
            await t.chat_completion(chat_args(session_id="s"))
        assert str(tmp_path) not in str(e.value)  # issue 27, finding 4: main showed callers the path
        assert (await t.model_info()).active_sessions == 1  # the last count the store gave
        store._db.set_authorizer(None)
        await t.chat_completion(chat_args(session_id="s"))
        assert len(await store.history("s")) == 4  # the failed turn left nothing
        await store.aclose()

    run(scenario)
