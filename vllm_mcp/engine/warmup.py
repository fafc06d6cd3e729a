"""One short generation before a model is called ready, so that no caller pays vLLM's first use.

vLLM builds some of its sampling path on first use: the logprob ranks are a ``torch.compile``d
kernel (``vllm/v1/sample/ops/logprobs.py``), compiled the first time a request asks for
logprobs, and the structured-output backend is set up on the engine core's loop the first time a
request carries a constraint. Every call in flight waits meanwhile: 1.5 s on an idle 2-core
machine, 10-16 s on a loaded one (tests/e2e/test_hostile_http.py saw an honest caller's turn
run out of its time budget behind another caller's first ``logprobs``). Paying it during the
load, in the warming-up phase, keeps it off the callers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

REQUEST_ID = "vllm-mcp-warm-up"


async def warm_up(llm: Any, tokenizer: Any) -> float:
    """Generate two tokens with logprobs, sampling and a choice constraint; the seconds it took.

    Skipped (0.0) for a model that does not generate (a pooling model serves embeddings).
    A failure propagates: a model that cannot generate two tokens is a model that failed to load.
    """
    from vllm import SamplingParams, TokensPrompt
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    if getattr(llm.model_config, "runner_type", "generate") != "generate":
        return 0.0
    started = time.monotonic()
    ids = list(tokenizer.encode("warm up", add_special_tokens=False))[:8] or [0]
    params = SamplingParams(
        max_tokens=2,
        temperature=1.0,
        top_p=0.9,
        top_k=8,
        seed=0,
        logprobs=1,
        structured_outputs=StructuredOutputsParams(choice=["yes", "no"]),
        output_kind=RequestOutputKind.DELTA,
    )
    async for _ in llm.generate(TokensPrompt(prompt_token_ids=ids), params, REQUEST_ID):
        pass
    seconds = time.monotonic() - started
    log.info("warmed up the sampling path", extra={"seconds": round(seconds, 2)})
    return seconds
