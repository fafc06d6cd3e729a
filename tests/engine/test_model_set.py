"""``ModelSet`` (engine/model_set.py): several models' engines, loaded in order, over doubles."""

from __future__ import annotations

import asyncio

from tests.support.doubles import FakeEngine
from vllm_mcp.engine.load_phase import Phase
from vllm_mcp.engine.model_set import ModelSet


def test_models_load_one_after_another_and_the_log_goes_to_the_one_loading() -> None:
    first, second = FakeEngine(model_name="a"), FakeEngine(model_name="b")
    models = ModelSet([first, second])
    seen: list[tuple[str | None, str, str]] = []
    load = first.start

    async def watched_start() -> None:  # while "a" loads, vLLM's log line is "a"'s
        models.observe_log_line("(Worker pid=1) INFO 12-07 05:20:37 [x.py:68] Starting to load model /m...")
        seen.append((models.loading.name if models.loading else None, first.state.value, second.state.value))
        await load()

    first.start = watched_start  # type: ignore[method-assign]
    assert models.state() == "loading"
    asyncio.run(models.start())
    assert seen == [("a", "loading", "loading")]
    assert first.load.phase is Phase.READY and second.load.phase is Phase.READY
    assert models.loading is None and models.state() == "ready"


def test_the_server_state_is_loading_while_any_loads_then_ready_while_any_serves() -> None:
    ready, broken = FakeEngine(model_name="a", loaded=True), FakeEngine(model_name="b", fail_to_load="no")
    models = ModelSet([ready, broken])
    assert models.state() == "loading"
    asyncio.run(broken.start())
    assert models.state() == "ready" and models.failure() == "model 'b': no"
    assert models.load_status()["model"] == "a"  # nothing loads: the default model's status
    only = ModelSet([FakeEngine(model_name="c", fail_to_load="gone")])
    asyncio.run(only.start())
    assert (only.state(), only.failure()) == ("failed", "gone")
    assert "model" not in only.load_status()  # one model: /healthz as before


def test_the_default_model_is_the_first_generative_one() -> None:
    vectors = FakeEngine(model_name="v", kind="embed", loaded=True)
    chat = FakeEngine(model_name="c", loaded=True)
    models = ModelSet([vectors, chat])
    assert models.default is chat and models.first("embed") is vectors
    assert models.names() == ["v", "c"] and models.names("embed") == ["v"]


def test_a_dead_engine_is_found_among_the_models() -> None:
    a, b = FakeEngine(model_name="a", loaded=True), FakeEngine(model_name="b", loaded=True)
    models = ModelSet([a, b])
    assert models.died() is None
    b.errored = True
    assert models.died() is b and b.state.value == "failed"
