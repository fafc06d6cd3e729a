"""``doctor --smoke``: start the real engine (through ``vllm_mcp.engine``) and generate."""

from __future__ import annotations

import asyncio

from vllm_mcp.config import Settings
from vllm_mcp.doctor.report import Check

SMOKE_PROMPT = "Say hello."


def smoke_test(settings: Settings, max_tokens: int = 8) -> Check:
    """Start the real engine and generate a few tokens; the one check that proves it works."""
    from vllm_mcp import engine as engine_module
    from vllm_mcp import prompts

    engine_module.prepare_process_environment(settings)

    async def generate() -> tuple[str, int, float | None]:
        engine = engine_module.Engine(settings)
        await engine.start()
        try:
            engine.check_serving()
            # The same prompt rendering as serve (chat template, or plain text for base models).
            ids = prompts.render(engine.tokenizer, [{"role": "user", "content": SMOKE_PROMPT}])
            sampling = engine_module.Sampling(
                max_tokens=max_tokens, temperature=0.0, top_p=1.0, top_k=-1, seed=0
            )
            text, tokens = "", 0
            async for delta in engine.generate(ids, sampling, "doctor-smoke"):
                text += delta.text
                tokens += delta.new_tokens
            return text, tokens, engine.load_seconds
        finally:
            await engine.aclose()

    try:
        text, tokens, load_s = asyncio.run(generate())
    except Exception as e:
        reason = str(e) or type(e).__name__
        return Check(
            "smoke",
            "fail",
            f"engine did not generate: {reason}",
            "fix the failures above; the message names the cause",
        )
    if tokens == 0:
        return Check(
            "smoke",
            "fail",
            "engine started but generated no tokens",
            "check VLLM_MAX_MODEL_LEN and the model's chat template",
        )
    loaded = f"loaded in {load_s:.0f} s, " if load_s else ""
    return Check(
        "smoke",
        "ok",
        f"{loaded}generated {tokens} tokens: {text.strip()[:60]!r}",
        details={"tokens": tokens, "text": text},
    )
