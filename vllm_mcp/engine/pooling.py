"""Embeddings: one input through vLLM's pooling runner (``AsyncLLM.encode``).

An embedding model's engine is started with ``runner="pooling"`` (core.py); a causal LM becomes
one through vLLM's ``convert`` (last-token pooling), an embedding checkpoint is one already.
vLLM is imported lazily, inside the function, like everywhere in this package.
"""

from __future__ import annotations

import contextlib
from typing import Any

from vllm_mcp.errors import EngineDead, PromptRejected


async def encode(
    llm: Any, prompt_token_ids: list[int], normalize: bool, dimensions: int | None, request_id: str
) -> list[float]:
    """The embedding of one tokenized input; ``normalize`` is vLLM's ``use_activation`` (L2 norm)."""
    from vllm import PoolingParams, TokensPrompt
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.engine.exceptions import EngineDeadError

    params = PoolingParams(task="embed", use_activation=normalize, dimensions=dimensions)
    out: Any = None
    finished = False
    try:
        async for out in llm.encode(TokensPrompt(prompt_token_ids=prompt_token_ids), params, request_id):
            finished = bool(getattr(out, "finished", True))
    except EngineDeadError as e:
        raise EngineDead("the vLLM engine process died during an embedding") from e
    except VLLMValidationError as e:
        raise PromptRejected(str(e)) from e
    finally:
        if not finished:
            with contextlib.suppress(Exception):
                await llm.abort(request_id)
    if out is None:
        raise PromptRejected("the engine returned no embedding")
    return [float(x) for x in out.outputs.data.tolist()]
