"""The raw-engine contender: vLLM's ``AsyncLLM`` driven directly, no protocol in between.

Started by ``EngineContender`` with the same environment as ``vllm-mcp serve``; the
engine arguments come from ``vllm_mcp.engine.core.build_engine_args`` on the same
``Settings``, so only the MCP layer differs. Writes its result JSON to the path in
the config file and prints one progress line per level on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.contenders import _line
from bench.load import run_level
from bench.stats import RequestRecord
from bench.workload import Workload, messages


async def main(config: dict[str, Any]) -> dict[str, Any]:
    from vllm_mcp.config.settings import Settings
    from vllm_mcp.engine.core import build_engine_args
    from vllm_mcp.engine.environment import prepare_process_environment
    from vllm_mcp.engine.source import for_engine
    from vllm_mcp.tools import prompts

    settings = Settings.load()
    prepare_process_environment(settings)  # the server's own vLLM environment

    from vllm import SamplingParams, TokensPrompt
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    workload = Workload.from_dict(config["workload"])
    t0 = time.perf_counter()
    model, _ = for_engine(settings)
    llm = await asyncio.to_thread(AsyncLLM.from_engine_args, build_engine_args(settings, model))
    tokenizer = llm.get_tokenizer()
    if asyncio.iscoroutine(tokenizer):
        tokenizer = await tokenizer
    startup = time.perf_counter() - t0
    # Tokenized before the clock starts, exactly as the server would render them.
    token_ids = [prompts.render(tokenizer, messages(i)) for i in range(64)]
    ids = iter(range(1 << 62))

    async def send(i: int) -> RequestRecord:
        params = SamplingParams(
            max_tokens=workload.max_tokens,
            min_tokens=workload.max_tokens,
            temperature=workload.temperature,
            output_kind=RequestOutputKind.DELTA,
        )
        prompt = token_ids[i % len(token_ids)]
        rec = RequestRecord(start=time.perf_counter(), prompt_tokens=len(prompt))
        async for out in llm.generate(TokensPrompt(prompt_token_ids=prompt), params, f"bench-{next(ids)}"):
            n = len(out.outputs[0].token_ids)
            if n:
                rec.chunks.append(time.perf_counter())
                rec.output_tokens += n
        rec.end = time.perf_counter()
        return rec

    levels: list[dict[str, Any]] = []
    try:
        await run_level(send, workload.warmup_requests, min(4, workload.warmup_requests))
        for c in workload.concurrencies:
            summary = await run_level(send, workload.requests_at(c), c)
            levels.append(summary)
            print(_line("engine", "stream", summary), flush=True)
    finally:
        llm.shutdown()
    return {"startup_s": startup, "overhead_ms": {}, "levels": {"stream": levels}}


if __name__ == "__main__":
    cfg = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(main(cfg))
    Path(cfg["out"]).write_text(json.dumps(result))
