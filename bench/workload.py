"""The fixed workload: prompts, output length and concurrency levels."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Fixed and varied: short chat prompts of different lengths, cycled in order.
_TOPICS = [
    "the water cycle",
    "how a compiler turns source code into machine code",
    "why the sky is blue",
    "the history of the printing press",
    "how vaccines train the immune system",
    "the rules of chess for a complete beginner",
    "how a bicycle stays upright",
    "what a hash table is and when to use one",
    "photosynthesis in plants",
    "the causes of the seasons on Earth",
    "how public-key cryptography works",
    "the life cycle of a star",
    "how to bake a loaf of bread",
    "what inflation is and why central banks care",
    "how an electric motor works",
    "the difference between weather and climate",
]
_STYLES = [
    "Explain {} in a few sentences.",
    "Write a short paragraph for a ten-year-old about {}.",
    "Give three bullet points about {}, then a one-line summary.",
    "You are a patient teacher. A student asks you about {}. Answer clearly and give one example.",
]


def prompt(i: int) -> str:
    """The i-th prompt of the fixed set (64 distinct prompts, then it repeats)."""
    return _STYLES[(i // len(_TOPICS)) % len(_STYLES)].format(_TOPICS[i % len(_TOPICS)])


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt(i)}]


@dataclass(frozen=True)
class Workload:
    """What every contender is asked to do at each concurrency level."""

    num_prompts: int = 128
    max_tokens: int = 128
    concurrencies: tuple[int, ...] = (1, 4, 16, 64)
    temperature: float = 0.0
    warmup_requests: int = 4
    overhead_calls: int = 200
    # Requests per level are at least this many times the concurrency, so that
    # every slot is refilled a few times (a level of 64 prompts at c=64 is one wave).
    min_waves: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def requests_at(self, concurrency: int) -> int:
        return max(self.num_prompts, self.min_waves * concurrency)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["concurrencies"] = list(self.concurrencies)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Workload:
        d = dict(d)
        d["concurrencies"] = tuple(d["concurrencies"])
        return cls(**d)
