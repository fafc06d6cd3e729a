"""Reasoning kept apart from the answer, and the chat template's arguments.

The split runs vLLM's own reasoning parser (``qwen3``) on the tiny thinking model's tokenizer
over the ``FakeEngine`` double (whose reply is the text a thinking model would write: the tiny
model's own output is gibberish); the template arguments reach the real tokenizer's template.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.engine.parsers import Parsers
from vllm_mcp.protocol.server import _ok
from vllm_mcp.tools import handlers as tools
from vllm_mcp.tools import prompts
from vllm_mcp.tools.reasoning import REASONING_TAG

THOUGHT = "the user greets me so I greet back</think>Hello there"


@pytest.fixture(scope="module")
def tokenizer(tiny_thinking_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_thinking_model)


@pytest.fixture(scope="module")
def parsers(tokenizer: Any) -> Parsers:
    return Parsers.load("qwen3", None, tokenizer)


def chat(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], "temperature": 0, **extra}


def over(parsers: Parsers, reply: str = THOUGHT, **env: str) -> tuple[Any, FakeEngine]:
    engine = FakeEngine(reply=reply, loaded=True, parsers=parsers)
    return tools_over(engine, **env), engine


def test_the_answer_and_the_thinking_come_apart(parsers: Parsers) -> None:
    t, _ = over(parsers)
    result = asyncio.run(t.chat_completion(chat()))
    assert result.text == "Hello there"
    assert result.reasoning == "the user greets me so I greet back"
    shown = _ok(result)
    assert shown.content[0].text == "Hello there"  # the answer alone
    assert shown.structured_content["reasoning"] == result.reasoning


def test_include_reasoning_shows_the_thinking_first(parsers: Parsers) -> None:
    t, _ = over(parsers)
    result = asyncio.run(t.chat_completion(chat(include_reasoning=True)))
    text = _ok(result).content[0].text
    assert text.index("the user greets me") < text.index("Hello there") and result.text == "Hello there"


def test_thinking_turned_off_is_all_answer(parsers: Parsers) -> None:
    t, engine = over(parsers, reply="Hello there")
    result = asyncio.run(t.chat_completion(chat(chat_template_kwargs={"enable_thinking": False})))
    assert (result.text, result.reasoning) == ("Hello there", None)
    assert engine.tokenizer.template_kwargs[-1] == {"enable_thinking": False}


def test_the_session_keeps_the_answer_only(parsers: Parsers) -> None:
    t, engine = over(parsers)

    async def scenario() -> None:
        await t.chat_completion(chat(session_id="s"))
        await t.chat_completion(chat(session_id="s", messages=[{"role": "user", "content": "again"}]))

    asyncio.run(scenario())
    second = engine.tokenizer.texts[-1]
    assert "<assistant>Hello there<user>again" in second and "greet back" not in second


def test_progress_says_which_is_streaming(parsers: Parsers) -> None:
    sent: list[tuple[str, float]] = []

    async def progress(text: str, tokens: float, total: int | None) -> None:
        sent.append((text, tokens))

    t, _ = over(parsers, VLLM_MCP_PROGRESS_INTERVAL="0", VLLM_MCP_PROGRESS_MAX_RATE="0")
    asyncio.run(t.chat_completion(chat(), progress))
    thinking = [text for text, _ in sent if text.startswith(REASONING_TAG)]
    answer = [text for text, _ in sent if text and not text.startswith(REASONING_TAG)]
    assert "".join(x.removeprefix(REASONING_TAG) for x in thinking) == "the user greets me so I greet back"
    assert "".join(answer) == "Hello there"
    assert [tokens for _, tokens in sent] == sorted(tokens for _, tokens in sent)  # progress only grows
    assert len({tokens for _, tokens in sent}) == len(sent)


def test_enable_thinking_false_reaches_the_template(tokenizer: Any) -> None:
    messages = [{"role": "user", "content": "hi"}]
    off = tokenizer.decode(prompts.render(tokenizer, messages, {"enable_thinking": False}))
    on = tokenizer.decode(prompts.render(tokenizer, messages))
    assert off.endswith("<|assistant|>\n<think>\n\n</think>\n\n") and "<think>" not in on
    effort = tokenizer.decode(prompts.render(tokenizer, messages, {"reasoning_effort": "low"}))
    assert "<|effort|>\nlow" in effort


def test_template_arguments_pass_through_the_call() -> None:
    engine = FakeEngine(loaded=True)
    t = tools_over(engine)
    asyncio.run(
        t.chat_completion(chat(chat_template_kwargs={"enable_thinking": False}, reasoning_effort="high"))
    )
    assert engine.tokenizer.template_kwargs[-1] == {"enable_thinking": False, "reasoning_effort": "high"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"chat_template_kwargs": {"tools": []}}, "chat_template_kwargs: 'tools' is set by the server"),
        ({"chat_template_kwargs": "off"}, "chat_template_kwargs: Input should be a valid dictionary"),
        ({"reasoning_effort": "max"}, "reasoning_effort: Input should be 'none', 'minimal', 'low'"),
        ({"include_reasoning": "yes"}, "include_reasoning: Input should be a valid boolean"),
    ],
)
def test_bad_reasoning_arguments_are_named(extra: dict[str, Any], expected: str) -> None:
    with pytest.raises(tools.InvalidArguments, match="invalid arguments: ") as e:
        tools.parse_arguments(tools.ChatArguments, chat(**extra))
    assert expected in str(e.value)


def test_without_a_parser_the_reply_is_all_text() -> None:
    t = tools_over(FakeEngine(reply="abc</think>def", loaded=True))
    result = asyncio.run(t.chat_completion(chat()))
    assert (result.text, result.reasoning) == ("abc</think>def", None)


def test_json_schema_applies_to_the_answer_after_the_thinking(parsers: Parsers) -> None:
    t, _ = over(parsers, reply='I should say yes</think>{"ok":true}')
    result = asyncio.run(t.chat_completion(chat(json_schema={"type": "object"})))
    assert result.json_value == {"ok": True} and result.reasoning == "I should say yes"
