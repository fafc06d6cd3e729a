"""Prompt rendering and fitting, with the real tokenizers of the test models."""

from __future__ import annotations

from pathlib import Path

import pytest

from vllm_mcp.tools import prompts


def tokenizer(directory: Path):  # type: ignore[no-untyped-def]
    """transformers (and torch with it) imported when a test needs it, not when pytest collects."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def chat_tok(tiny_model: Path):  # type: ignore[no-untyped-def]
    return tokenizer(tiny_model)


@pytest.fixture(scope="module")
def base_tok(tiny_base_model: Path):  # type: ignore[no-untyped-def]
    return tokenizer(tiny_base_model)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def reply(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def test_chat_model_uses_its_template(chat_tok) -> None:  # type: ignore[no-untyped-def]
    ids = prompts.render(chat_tok, [user("hello there")])
    expected = chat_tok.apply_chat_template([user("hello there")], add_generation_prompt=True, tokenize=False)
    assert chat_tok.decode(ids) == expected


def test_base_model_gets_a_role_prefixed_transcript(base_tok) -> None:  # type: ignore[no-untyped-def]
    assert not prompts.has_chat_template(base_tok)
    ids = prompts.render(base_tok, [{"role": "system", "content": "be brief"}, user("hi")])
    assert base_tok.decode(ids) == "System: be brief\nUser: hi\nAssistant:"


def test_fit_keeps_everything_when_it_fits(chat_tok) -> None:  # type: ignore[no-untyped-def]
    history = [user("one"), reply("two")]
    p = prompts.fit(chat_tok, history, [user("three")], max_model_len=1024, max_tokens=16)
    assert p.dropped_messages == 0
    assert p.token_ids == prompts.render(chat_tok, [*history, user("three")])
    assert p.max_tokens == 16


def test_fit_drops_oldest_whole_turns_and_keeps_the_system_prompt(chat_tok) -> None:  # type: ignore[no-untyped-def]
    system = {"role": "system", "content": "you are terse"}
    history = [system]
    for i in range(20):
        history += [user(f"question number {i} " * 5), reply(f"answer number {i} " * 5)]
    new = [user("latest question")]
    full = len(prompts.render(chat_tok, [*history, *new]))
    limit = full // 2
    p = prompts.fit(chat_tok, history, new, max_model_len=limit, max_tokens=8)
    assert len(p.token_ids) + 8 <= limit
    assert p.dropped_messages > 0 and p.dropped_messages % 2 == 0  # user + assistant pairs
    kept = [system, *history[1 + p.dropped_messages :], *new]
    assert p.token_ids == prompts.render(chat_tok, kept)


def test_fit_caps_the_reply_to_the_room_left(chat_tok) -> None:  # type: ignore[no-untyped-def]
    new = [user("a fairly short question")]
    n = len(prompts.render(chat_tok, new))
    p = prompts.fit(chat_tok, [], new, max_model_len=n + 5, max_tokens=100)
    assert p.max_tokens == 5


def test_prompt_that_cannot_fit_says_tokens_and_limit(chat_tok) -> None:  # type: ignore[no-untyped-def]
    new = [user("word " * 300)]
    n = len(prompts.render(chat_tok, new))
    with pytest.raises(prompts.PromptTooLong) as e:
        prompts.fit(chat_tok, [], new, max_model_len=64, max_tokens=8)
    assert e.value.tokens == n and e.value.limit == 64
    assert f"{n} tokens" in str(e.value) and "64" in str(e.value)


def _fit_one_turn_at_a_time(tok, history, new, max_model_len, max_tokens):  # type: ignore[no-untyped-def]
    """main's ``fit`` (5c4395e): one render per dropped turn, the reference for what to drop."""
    system = [m for m in history[:1] if m["role"] == "system"]
    turns = list(history[len(system) :])
    dropped = 0
    while True:
        ids = prompts.render(tok, [*system, *turns, *new])
        if len(ids) + max_tokens <= max_model_len or not turns:
            return ids, dropped
        turns.pop(0)
        dropped += 1
        while turns and turns[0]["role"] == "assistant":
            turns.pop(0)
            dropped += 1


class CountingTokenizer:
    """The real tokenizer, counting whole-conversation renders."""

    def __init__(self, tok) -> None:  # type: ignore[no-untyped-def]
        self.tok, self.renders = tok, 0
        self.chat_template = tok.chat_template

    def apply_chat_template(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.renders += 1
        return self.tok.apply_chat_template(*args, **kwargs)

    def encode(self, text: str):  # type: ignore[no-untyped-def]
        return self.tok.encode(text)


@pytest.mark.parametrize("room", [60, 300, 2000])
def test_fit_renders_a_few_times_not_once_per_dropped_turn(chat_tok, room: int) -> None:  # type: ignore[no-untyped-def]
    """Issue 27, finding 1: main's ``fit`` re-rendered and re-tokenized the whole conversation
    per dropped turn (quadratic, on the event loop): 120 renders here. Now a handful, dropping
    exactly what main dropped."""
    history = [{"role": "system", "content": "be brief"}]
    for i in range(60):
        history += [user(f"question {i} " + "word " * (i % 7)), reply(f"answer {i}"), reply("and more")]
    new = [user("last")]
    counting = CountingTokenizer(chat_tok)
    got = prompts.fit(counting, history, new, max_model_len=room + 16, max_tokens=16)
    ids, dropped = _fit_one_turn_at_a_time(chat_tok, history, new, room + 16, 16)
    assert (got.token_ids, got.dropped_messages) == (ids, dropped)
    assert counting.renders <= 10, counting.renders
