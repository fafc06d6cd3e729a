"""Unit tests of the protocol-free tool layer: argument checks, schemas, admission, pacing.

No engine here; the end-to-end behaviour of the tools is in tests/e2e/test_server.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from vllm_mcp import tools


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
            "messages[0].content: Input should be a valid string",
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
        pacer = tools.ProgressPacer(send, total=50, interval=60.0)
        await pacer.add("Hel", 1)
        for i, piece in enumerate(["lo", ",", " wor", "ld"], start=2):
            await pacer.add(piece, i)
        await pacer.flush()
        await pacer.flush()  # nothing pending: nothing sent

    asyncio.run(scenario())
    assert sent == [("Hel", 1, 50), ("lo, world", 5, 50)]


def test_session_keys_are_namespaced_per_caller() -> None:
    assert tools.session_key(None, "s") == "s"  # stdio, or HTTP without tokens: as before
    assert tools.session_key("alice", None) is None
    assert tools.session_key("alice", "s") != tools.session_key("bob", "s")
    assert tools.session_key("alice", "s") != "s"
