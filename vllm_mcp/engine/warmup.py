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

REQUESTS = 2
TOKENS = 3
"""What the warm-up adds to vLLM's own counters (``vllm_request_success_total``,
``vllm_generation_tokens_total``): exactly, whatever the model, so they can be reconciled."""


async def warm_up(llm: Any, tokenizer: Any) -> float:
    """Two requests: 2 tokens sampled with logprobs, then 1 under a choice constraint.

    The seconds it took; 0.0 for a model that does not generate (a pooling model serves
    embeddings). ``min_tokens`` and a choice's first token (no choice is empty) make the counts
    exact. A failure propagates: a model that cannot generate is a model that failed to load.
    """
    from vllm import SamplingParams, TokensPrompt
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    if getattr(llm.model_config, "runner_type", "generate") != "generate":
        return 0.0
    started = time.monotonic()
    prompt = TokensPrompt(
        prompt_token_ids=list(tokenizer.encode("warm up", add_special_tokens=False))[:8] or [0]
    )
    delta = RequestOutputKind.DELTA
    sampled = SamplingParams(
        max_tokens=2, min_tokens=2, temperature=1.0, top_p=0.9, top_k=8, seed=0, logprobs=1, output_kind=delta
    )
    choice = StructuredOutputsParams(choice=["yes", "no"])
    constrained = SamplingParams(max_tokens=1, temperature=0.0, structured_outputs=choice, output_kind=delta)
    for n, params in enumerate((sampled, constrained)):
        async for _ in llm.generate(prompt, params, f"vllm-mcp-warm-up-{n}"):
            pass
    seconds = time.monotonic() - started
    log.info("warmed up the sampling path", extra={"seconds": round(seconds, 2)})
    return seconds
