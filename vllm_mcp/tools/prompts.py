"""Turning chat messages (or a raw prompt) into prompt tokens that fit the model's context.

Chat models get their tokenizer's chat template; base models (no template) get a
plain role-prefixed transcript. When a session's history no longer fits, the
oldest turns are dropped rather than failing the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vllm_mcp.errors import RequestError

Message = dict[str, Any]


class PromptTooLong(RequestError, ValueError):
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
    messages: Sequence[Message] = ()
    """The messages rendered (the history that fit, then the new ones): their images go along."""


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

    Drops the fewest oldest history turns (a system prompt is kept) until prompt plus
    ``max_tokens`` fits; if the new messages alone leave less room than ``max_tokens``, the
    reply is capped to the room left. Linear in the conversation: one render, and when it does
    not fit, one pass of per-message token counts guesses how many turns to drop; a render each
    side of the guess confirms it (a bad guess costs a binary search: log2(turns) renders, never
    one render per dropped turn as before).
    """
    system = [m for m in history[:1] if m["role"] == "system"]
    turns = list(history[len(system) :])
    if any(m["role"] == "system" for m in new):
        system = []  # the caller brings its own system prompt this turn
    # Where the history may start: after one whole turn (a message, then any assistant replies
    # and tool results to it) is dropped, so it still alternates as strict chat templates require.
    cuts = [0]
    while cuts[-1] < len(turns):
        i = cuts[-1] + 1
        while i < len(turns) and turns[i]["role"] in ("assistant", "tool"):
            i += 1
        cuts.append(i)
    rendered: dict[int, list[int]] = {}

    def ids_from(k: int) -> list[int]:
        if k not in rendered:
            rendered[k] = render(tokenizer, [*system, *turns[cuts[k] :], *new], template_kwargs)
        return rendered[k]

    def fits(k: int) -> bool:
        return k == len(cuts) - 1 or len(ids_from(k)) + max_tokens <= max_model_len

    k = 0
    if not fits(0):
        k = _fewest_cuts(tokenizer, turns, cuts, len(ids_from(0)) + max_tokens - max_model_len, fits)
    ids = ids_from(k)
    if len(ids) >= max_model_len:
        raise PromptTooLong(len(ids), max_model_len)
    kept = [*system, *turns[cuts[k] :], *new]
    return Prompt(ids, min(max_tokens, max_model_len - len(ids)), cuts[k], kept)


def _fewest_cuts(tokenizer: Any, turns: Sequence[Message], cuts: list[int], excess: int, fits: Any) -> int:
    """The smallest ``k`` with ``fits(k)`` (``fits`` is monotone and true at the last cut)."""
    # The guess: drop turns until their content's tokens cover the excess.
    shed, guess = 0, len(cuts) - 1
    for k in range(1, len(cuts)):
        shed += sum(len(tokenizer.encode(_text(m.get("content")))) for m in turns[cuts[k - 1] : cuts[k]])
        if shed >= excess:
            guess = k
            break
    lo, hi = 0, len(cuts) - 1  # fits(lo) is false, fits(hi) is true
    if fits(guess):
        hi = guess
        if guess - 1 > lo and not fits(guess - 1):
            lo = guess - 1
    else:
        lo = guess
        if guess + 1 < hi and fits(guess + 1):
            hi = guess + 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def raw(tokenizer: Any, text: str, max_model_len: int, max_tokens: int) -> Prompt:
    """A raw prompt as the tokenizer encodes it (with its usual BOS, as ``vllm serve``'s completions)."""
    ids = list(tokenizer.encode(text))
    if len(ids) >= max_model_len:
        raise PromptTooLong(len(ids), max_model_len, "the prompt")
    return Prompt(ids, min(max_tokens, max_model_len - len(ids)), 0)


def _text(content: Any) -> str:
    """A message's text, whether its content is a string or parts (images count as none)."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""
