"""Turning chat messages (or a raw prompt) into prompt tokens that fit the model's context.

Chat models get their tokenizer's chat template; base models (no template) get a
plain role-prefixed transcript. When a session's history no longer fits, the
oldest turns are dropped rather than failing the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]


class PromptTooLong(ValueError):
    """Even without any history the prompt does not fit the context."""

    def __init__(self, tokens: int, limit: int, shorten: str = "the messages") -> None:
        super().__init__(
            f"the prompt has {tokens} tokens but the model's context holds {limit} "
            f"(VLLM_MAX_MODEL_LEN), leaving no room for a reply; shorten {shorten}"
        )
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    max_tokens: int
    dropped_messages: int


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(
    tokenizer: Any, messages: Sequence[Message], template_kwargs: Mapping[str, Any] | None = None
) -> list[int]:
    """``template_kwargs``: the template's extra arguments (tools, enable_thinking, ...), if any."""
    if has_chat_template(tokenizer):
        ids = tokenizer.apply_chat_template(
            list(messages),
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
            **(template_kwargs or {}),
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)
    text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
    return list(tokenizer.encode(text + "Assistant:"))


def fit(
    tokenizer: Any,
    history: Sequence[Message],
    new: Sequence[Message],
    max_model_len: int,
    max_tokens: int,
    template_kwargs: Mapping[str, Any] | None = None,
) -> Prompt:
    """Render ``history + new`` so that prompt + reply fit ``max_model_len``.

    Drops the oldest history turns (a system prompt is kept) until prompt plus
    ``max_tokens`` fits; if the new messages alone leave less room than
    ``max_tokens``, the reply is capped to the room left.
    """
    system = [m for m in history[:1] if m["role"] == "system"]
    turns = list(history[len(system) :])
    if any(m["role"] == "system" for m in new):
        system = []  # the caller brings its own system prompt this turn
    dropped = 0
    while True:
        ids = render(tokenizer, [*system, *turns, *new], template_kwargs)
        if len(ids) + max_tokens <= max_model_len or not turns:
            break
        # Drop one whole turn: a message, then any assistant replies to it, so the
        # history still alternates as strict chat templates require.
        turns.pop(0)
        dropped += 1
        while turns and turns[0]["role"] in ("assistant", "tool"):
            turns.pop(0)
            dropped += 1
    if len(ids) >= max_model_len:
        raise PromptTooLong(len(ids), max_model_len)
    return Prompt(ids, min(max_tokens, max_model_len - len(ids)), dropped)


def raw(tokenizer: Any, text: str, max_model_len: int, max_tokens: int) -> Prompt:
    """A raw prompt as the tokenizer encodes it (with its usual BOS, as ``vllm serve``'s completions)."""
    ids = list(tokenizer.encode(text))
    if len(ids) >= max_model_len:
        raise PromptTooLong(len(ids), max_model_len, "the prompt")
    return Prompt(ids, min(max_tokens, max_model_len - len(ids)), 0)
