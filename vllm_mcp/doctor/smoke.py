"""``doctor --smoke``: start the real engine (through ``vllm_mcp.engine.core``) and generate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TextIO

from vllm_mcp.config.settings import Settings
from vllm_mcp.doctor.report import Check

SMOKE_PROMPT = "Say hello."

StatusFactory = Callable[[TextIO], Any]
"""Given the real stderr, a callable that shows a load status dict (cli/progress.StatusLine)."""


def smoke_test(settings: Settings, max_tokens: int = 8, status: StatusFactory | None = None) -> Check:
    """Start the real engine and generate a few tokens; the one check that proves it works.

    As in ``serve``, the log pump owns fd 2 meanwhile: vLLM's INFO lines tell the load phase
    (shown through ``status``, on the real stderr) and stay off the terminal.
    """
    from vllm_mcp import logging as vlogging
    from vllm_mcp.engine import core as engine_module
    from vllm_mcp.engine.environment import prepare_process_environment
    from vllm_mcp.engine.load_phase import vllm_info_line
    from vllm_mcp.tools import prompts

    prepare_process_environment(settings)
    pump = vlogging.LogPump(drop=None if settings.log_level == "DEBUG" else vllm_info_line)
    show = status(pump.real_stderr()) if status is not None else None

    async def report(engine: Any) -> None:
        assert show is not None
        changes = engine.load.watch()
        status = engine.load.status()
        while True:
            show({"state": engine.state.value, **status})
            try:  # each phase as it began, and the seconds so far once a second meanwhile
                status = await asyncio.wait_for(changes.get(), 1.0)
            except TimeoutError:
                status = engine.load.status()

    async def generate() -> tuple[str, int, float | None]:
        engine = engine_module.Engine(settings, recent_log_lines=pump.tail)
        pump.observers.append(engine.load.observe_log_line)
        reporter = asyncio.create_task(report(engine)) if show is not None else None
        try:
            await engine.start()
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
            if show is not None:
                show({"state": engine.state.value, **engine.load.status()})
                show.done()
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
    finally:
        pump.close()
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
