"""The ``embed`` tool: vectors for texts from an embedding model (vLLM's pooling runner).

Offered when a served model is an embedding model (``kind = "embed"`` in ``VLLM_MCP_MODELS``).
Every input is tokenized and checked against the model's length before the call is admitted;
then all of them go to the engine at once, so vLLM batches them. No vLLM or MCP here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vllm_mcp.engine.core import Engine
from vllm_mcp.errors import InvalidArguments, PromptRejected

MAX_INPUTS = 256
"""Most inputs in one call: each is one engine request."""


class EmbedArguments(BaseModel):
    """Arguments of ``embed``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: str | list[str] = Field(
        description=f"The text to embed, or a list of up to {MAX_INPUTS} texts (one vector each, in order)."
    )
    model: str | None = Field(
        None,
        min_length=1,
        description="Which embedding model (model_info lists them); the first one if unset.",
    )
    dimensions: int | None = Field(
        None,
        ge=1,
        description="Shorten each vector to this size; only models trained for it (Matryoshka) accept it.",
    )
    normalize: bool = Field(True, description="Scale each vector to length 1 (L2), for cosine similarity.")
    truncate: bool = Field(
        False,
        description="Cut inputs longer than the model's context to fit, instead of refusing the call.",
    )

    @field_validator("input")
    @classmethod
    def _inputs(cls, v: str | list[str]) -> str | list[str]:
        texts = [v] if isinstance(v, str) else v
        if not texts:
            raise ValueError("give at least one text")
        if len(texts) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} texts in one call, got {len(texts)}")
        for i, text in enumerate(texts):
            if not text:
                raise ValueError("a text cannot be empty" if isinstance(v, str) else f"input[{i}] is empty")
        return v

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbedUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens of all inputs together (after truncation).")


class EmbedResult(BaseModel):
    embeddings: list[list[float]] = Field(description="One vector per input, in the inputs' order.")
    model: str = Field(description="The model that made them.")
    dimensions: int = Field(description="The length of each vector.")
    usage: EmbedUsage

    def shown_text(self) -> str:
        """The text content: a summary (the vectors are in structuredContent)."""
        n = len(self.embeddings)
        return f"{n} embedding{'s' if n != 1 else ''} of {self.dimensions} dimensions from {self.model}"


def tokenize(engine: Engine, args: EmbedArguments, max_chars: int) -> list[list[int]]:
    """Each input's token ids; too long an input is an error naming it, unless ``truncate``."""
    limit = engine.max_model_len
    assert limit is not None and engine.tokenizer is not None
    many = not isinstance(args.input, str)
    out: list[list[int]] = []
    for i, text in enumerate(args.texts()):
        where = f"input[{i}]" if many else "input"
        if len(text) > max_chars:
            raise InvalidArguments(
                f"invalid arguments: {where}: longer than {max_chars} characters (VLLM_MCP_MAX_CONTENT_CHARS)"
            )
        ids = list(engine.tokenizer.encode(text))
        if len(ids) > limit:
            if not args.truncate:
                raise InvalidArguments(
                    f"invalid arguments: {where}: {len(ids)} tokens, more than model "
                    f"{engine.name!r} takes ({limit}, its max_model_len); shorten it, or pass "
                    "truncate: true to cut it to fit"
                )
            ids = ids[:limit]
        out.append(ids)
    return out


def check_dimensions(engine: Engine, dimensions: int | None) -> None:
    """``dimensions`` only where the model was trained for it, and never above its size."""
    if dimensions is None:
        return
    if not engine.matryoshka:
        raise InvalidArguments(
            f"invalid arguments: dimensions: model {engine.name!r} makes vectors of "
            f"{engine.embedding_size} dimensions and cannot shorten them (it is no Matryoshka "
            "model); leave dimensions unset"
        )
    if engine.embedding_size is not None and dimensions > engine.embedding_size:
        raise InvalidArguments(
            f"invalid arguments: dimensions: {dimensions} is more than model {engine.name!r} makes "
            f"({engine.embedding_size})"
        )


async def run(
    engine: Engine, args: EmbedArguments, token_ids: list[list[int]], request_id: str, shown_name: str
) -> EmbedResult:
    """Every input through the engine at once (vLLM batches them); the result in input order."""
    try:
        vectors = await asyncio.gather(
            *(
                engine.embed(ids, args.normalize, args.dimensions, f"{request_id}-{i}")
                for i, ids in enumerate(token_ids)
            )
        )
    except PromptRejected as e:
        raise InvalidArguments(f"vLLM rejected the request: {str(e).strip()}") from None
    return EmbedResult(
        embeddings=vectors,
        model=shown_name,
        dimensions=len(vectors[0]) if vectors else 0,
        usage=EmbedUsage(prompt_tokens=sum(len(ids) for ids in token_ids)),
    )


def tool_fields() -> dict[str, Any]:
    """What ``tools/list`` says of ``embed`` beside its schemas (protocol/server.py)."""
    return {
        "name": "embed",
        "title": "Embeddings",
        "description": (
            "Turn texts into vectors with an embedding model served here (model_info lists "
            "them, kind 'embed'): for search, retrieval, clustering and deduplication. One "
            "vector per input, normalized to length 1 unless normalize is false."
        ),
    }
