"""Unit tests of the bounds a call is held to before admission, and of session namespaces.

The engine is ``FakeEngine``, a TEST DOUBLE (tests/doubles.py): these test the tools' checks,
not generation. Issue 27's findings 1 and 4; each test says what main (5c4395e) did instead.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.engine import structured
from vllm_mcp.tools import handlers as tools
from vllm_mcp.tools import limits


def chat_args(content: Any = "hi", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


def run(scenario: Any) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 30))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (chat_args(stop=["x" * 1025]), "stop[0]: 1025 characters, more than 1024 (VLLM_MCP_MAX_STOP_CHARS)"),
        (chat_args(regex="a" * 4097), "regex: 4097 characters, more than 4096 (VLLM_MCP_MAX_REGEX_CHARS)"),
        (chat_args(choice=["a"] * 257), "choice: 257 strings, more than 256 (VLLM_MCP_MAX_CHOICES)"),
        (chat_args(choice=["a", "b" * 1025]), "choice[1]: 1025 characters, more than 1024"),
        (
            chat_args(json_schema={"description": "x" * 70_000}),
            "more than 65536 (VLLM_MCP_MAX_JSON_SCHEMA_BYTES)",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}] * 257},
            "messages: 257 messages, more than 256 (VLLM_MCP_MAX_MESSAGES)",
        ),
        (chat_args("a\x00b"), "messages[0].content: contains a NUL character (U+0000)"),
        (chat_args([{"type": "text", "text": "\x00"}]), "messages[0].content: contains a NUL"),
        (chat_args(session_id="alice\x1fs1"), "session_id: contains the control character U+001F"),
        (chat_args(session_id="s\x00"), "session_id: contains the control character U+0000"),
        (chat_args(session_id="s\n"), "session_id: contains the control character U+000A"),
        (chat_args(session_id="s\x85"), "session_id: contains the control character U+0085"),
        (chat_args(adapter="nope"), "adapter: unknown adapter 'nope'"),
    ],
)
def test_every_bound_is_a_clear_argument_error_before_work(arguments: dict[str, Any], expected: str) -> None:
    """Issue 27, findings 1 and 4. On main: stop, choice, regex, json_schema and the message count
    had no bound; '\\x1f' in a session_id reached another caller's namespace; NUL went to the
    store after the generation (PostgreSQL: "session store unavailable"). Now each is refused
    by name, and the engine is never reached."""

    async def scenario() -> None:
        engine = FakeEngine(loaded=True)
        t = tools_over(engine)
        with pytest.raises(tools.InvalidArguments) as e:
            await t.chat_completion(arguments, caller="alice")
        assert expected in str(e.value)
        assert engine.started == [] and t.sessions._locks == {}

    run(scenario)


def test_the_bounds_are_settings() -> None:
    async def scenario() -> None:
        t = tools_over(FakeEngine(loaded=True), VLLM_MCP_MAX_STOP_CHARS="2", VLLM_MCP_MAX_MESSAGES="1")
        with pytest.raises(tools.InvalidArguments, match=r"stop\[0\]: 3 characters, more than 2"):
            await t.complete({"prompt": "x", "stop": "abc"})
        with pytest.raises(tools.InvalidArguments, match=r"more than 1 \(VLLM_MCP_MAX_MESSAGES\)"):
            await t.chat_completion({"messages": [{"role": "user", "content": "x"}] * 2})
        assert (await t.complete({"prompt": "x", "stop": "ab"})).text

    run(scenario)


def test_end_session_refuses_a_session_id_with_a_control_character() -> None:
    """Issue 27, finding 4: on main ``end_session(session_id="alice\\x1fs")`` without
    authentication ended alice's session."""

    async def scenario() -> None:
        t = tools_over(FakeEngine(loaded=True))
        await t.chat_completion(chat_args(session_id="s"), caller="alice")
        with pytest.raises(tools.InvalidArguments, match="session_id: contains the control character U"):
            await t.end_session({"session_id": "alice\x1fs"})
        assert await t.sessions.count() == 1

    run(scenario)


def test_a_token_without_a_caller_claim_has_no_session_namespace() -> None:
    """Issue 27, finding 4: on main a token without ``sub`` was named by its ``client_id``, a
    namespace a user could share; now it generates, but a session_id is refused by name."""

    async def scenario() -> None:
        t = tools_over(FakeEngine(loaded=True))
        assert (await t.chat_completion(chat_args(), caller=limits.NO_NAMESPACE)).text
        with pytest.raises(tools.InvalidArguments, match="no session namespace"):
            await t.chat_completion(chat_args(session_id="s"), caller=limits.NO_NAMESPACE)
        with pytest.raises(tools.InvalidArguments, match="no session namespace"):
            await t.end_session({"session_id": "s"}, caller=limits.NO_NAMESPACE)

    run(scenario)


def test_a_bad_schema_is_named_after_admission(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine = FakeEngine(loaded=True)
        t = tools_over(engine)
        with pytest.raises(tools.InvalidArguments, match=r"json_schema\.type: .* \(not a valid JSON"):
            await t.complete({"prompt": "x", "json_schema": {"type": "objekt"}})
        assert engine.started == []

    run(scenario)


def test_a_second_call_is_answered_while_a_1_mb_schema_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27, finding 1: on main the meta-schema check of a 1.2 MB schema ran on the event loop
    before admission (and again when the sampling parameters were built), so nothing else was
    served for ~10 s. Here the check is held until the second call has been answered: on main
    that second call could not run until the check returned, so the check saw it unanswered
    (the gate timed out) and ran twice. Now it runs once, in a thread, after admission."""
    entered, answered = threading.Event(), threading.Event()
    checks: list[bool] = []
    real = structured.schema_problem

    def gated(schema: dict[str, Any]) -> str | None:
        entered.set()
        checks.append(answered.wait(timeout=5))
        return real(schema)

    monkeypatch.setattr(structured, "schema_problem", gated)
    schema = {"type": "object", "description": "x" * (1 << 20), "properties": {"a": {"type": "integer"}}}

    async def scenario() -> None:
        engine = FakeEngine(loaded=True, reply='{"a":1}')
        t = tools_over(engine, VLLM_MCP_MAX_JSON_SCHEMA_BYTES=str(2 << 20))
        big = asyncio.create_task(t.complete({"prompt": "x", "json_schema": schema}))
        while not entered.is_set():  # the big call reaches its schema check first
            await asyncio.sleep(0.001)
        info = await t.model_info()
        assert info.in_flight_requests == 1  # admitted, its schema being checked
        answered.set()
        assert (await big).json_value == {"a": 1}

    run(scenario)
    assert checks == [True]


def test_a_call_with_an_unknown_adapter_leaves_no_session_lock() -> None:
    """Issue 27, finding 3: on main each such call left an entry in the lock map (20,000 calls,
    20,000 entries): the adapter was found unknown under the session's lock."""

    async def scenario() -> None:
        t = tools_over(FakeEngine(loaded=True))
        for i in range(50):
            with pytest.raises(tools.InvalidArguments, match="unknown adapter"):
                await t.chat_completion(chat_args(session_id=f"s{i}", adapter="nope"), caller="c")
        await t.chat_completion(chat_args(session_id="kept"), caller="c")
        assert t.sessions._locks == {}

    run(scenario)
