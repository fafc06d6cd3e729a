"""Several models behind one ``Tools`` (tools/models.py, tools/embed.py), over ``FakeEngine`` doubles.

The routing by ``model``, admission per model, a model failing alone, ``model_info``'s list and
``embed``'s bounds; what the real engine does with them is tests/e2e/test_several_models.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.engine.model_set import ModelSet
from vllm_mcp.protocol.server import offered
from vllm_mcp.tools import handlers as tools


def several(*engines: FakeEngine, **env: str) -> Any:
    """``Tools`` over the doubles as one server's models, in this order."""
    made = tools_over(engines[0], **env)
    for engine in engines[1:]:
        engine.settings = made.settings
    return tools.Tools(made.settings, ModelSet(list(engines)), made.sessions, made.metrics)


def ask(model: str | None = None, **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **extra}
    if model is not None:
        arguments["model"] = model
    return arguments


def three() -> tuple[FakeEngine, FakeEngine, FakeEngine]:
    return (
        FakeEngine(model_name="alpha", reply="from alpha", loaded=True),
        FakeEngine(model_name="beta", reply="from beta", loaded=True),
        FakeEngine(model_name="vectors", kind="embed", embedding_size=6, loaded=True),
    )


def test_a_call_goes_to_the_model_it_names_and_to_the_first_generative_one_without() -> None:
    alpha, beta, vectors = three()
    t = several(vectors, alpha, beta)  # the embedding model first: never a chat call's default

    async def scenario() -> list[Any]:
        return [
            await t.chat_completion(ask()),
            await t.chat_completion(ask("beta")),
            await t.complete({"prompt": "x", "model": "alpha"}),
        ]

    default, named, completed = asyncio.run(scenario())
    assert (default.model, default.text) == ("alpha", "from alpha")
    assert (named.model, named.text) == ("beta", "from beta")
    assert completed.model == "alpha"
    assert len(alpha.started) == 2 and len(beta.started) == 1 and not vectors.embedded


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (("chat_completion", ask("gamma")), "unknown model 'gamma'; this server serves 'alpha' (generate), "),
        (("complete", {"prompt": "x", "model": "vectors"}), "'vectors' is an embedding model"),
        (
            ("embed", {"input": "x", "model": "beta"}),
            "'beta' is a generative model; embed needs an embedding",
        ),
        (("chat_completion", ask("")), "model: String should have at least 1 character"),
    ],
)
def test_a_model_that_is_unknown_or_of_the_wrong_kind_is_a_clear_error(
    call: tuple[str, dict[str, Any]], expected: str
) -> None:
    t = several(*three())
    name, arguments = call
    with pytest.raises(tools.InvalidArguments, match=None) as caught:
        asyncio.run(getattr(t, name)(arguments))
    assert expected in str(caught.value), str(caught.value)


def test_embed_is_offered_only_where_an_embedding_model_is_served() -> None:
    alpha, beta, vectors = three()
    assert "embed" in [tool.name for tool in offered(several(alpha, vectors))]
    assert "embed" not in [tool.name for tool in offered(several(FakeEngine(loaded=True)))]
    with pytest.raises(tools.InvalidArguments, match="no embedding model is served here"):
        asyncio.run(several(beta).embed({"input": "x"}))


def test_embed_returns_one_vector_per_input_in_order_with_the_usage() -> None:
    alpha, _, vectors = three()
    t = several(alpha, vectors)
    result = asyncio.run(t.embed({"input": ["ab", "abc"]}))
    assert result.model == "vectors" and result.dimensions == 6 and len(result.embeddings) == 2
    assert vectors.embedded == [[97, 98], [97, 98, 99]]  # the fake tokenizer: one token a character
    assert result.usage.prompt_tokens == 5
    assert all(abs(sum(x * x for x in v) - 1) < 1e-9 for v in result.embeddings)
    raw = asyncio.run(t.embed({"input": "ab", "normalize": False}))
    assert raw.embeddings[0][0] > 1


def test_embed_names_the_input_over_the_models_length_unless_truncate() -> None:
    vectors = FakeEngine(model_name="vectors", kind="embed", max_model_len=8, loaded=True)
    t = several(FakeEngine(loaded=True), vectors)
    with pytest.raises(tools.InvalidArguments) as caught:
        asyncio.run(t.embed({"input": ["short", "far too long for it"]}))
    message = str(caught.value)
    assert "input[1]: 19 tokens, more than model 'vectors' takes (8, its max_model_len)" in message
    assert "truncate: true" in message and not vectors.embedded  # refused before any work
    asyncio.run(t.embed({"input": ["short", "far too long for it"], "truncate": True}))
    assert [len(ids) for ids in vectors.embedded] == [5, 8]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"input": []}, "input: give at least one text"),
        ({"input": ["a", ""]}, "input[1] is empty"),
        ({"input": "a", "dimensions": 2}, "cannot shorten them (it is no Matryoshka model)"),
        ({"input": "a", "normalize": "yes"}, "normalize: Input should be a valid boolean"),
        ({"input": "a", "dims": 2}, "dims: unknown argument"),
    ],
)
def test_embed_refuses_bad_arguments_by_name(arguments: dict[str, Any], expected: str) -> None:
    t = several(*three())
    with pytest.raises(tools.InvalidArguments) as caught:
        asyncio.run(t.embed(arguments))
    assert expected in str(caught.value), str(caught.value)


def test_a_model_that_failed_to_load_fails_its_own_calls_only() -> None:
    alpha = FakeEngine(model_name="alpha")
    broken = FakeEngine(model_name="broken", fail_to_load="no such checkpoint")
    t = several(alpha, broken)

    async def scenario() -> Any:
        await t.models.start()
        with pytest.raises(tools.EngineUnavailable, match="model failed: no such checkpoint"):
            await t.chat_completion(ask("broken"))
        assert (await t.chat_completion(ask("alpha"))).text
        return await t.model_info()

    info = asyncio.run(scenario())
    assert info.server_state == "ready"  # one model serves
    assert [(m.name, m.state, m.failure) for m in info.models] == [
        ("alpha", "ready", None),
        ("broken", "failed", "no such checkpoint"),
    ]
    assert info.failure == "model 'broken': no such checkpoint"


def test_a_busy_model_does_not_hold_back_calls_to_another() -> None:
    alpha, beta, _ = three()
    t = several(alpha, beta, VLLM_MCP_MAX_CONCURRENCY="1", VLLM_MCP_MAX_QUEUE="0")
    alpha.hold()

    async def scenario() -> Any:
        held = asyncio.create_task(t.chat_completion(ask("alpha")))
        while not alpha.started:
            await asyncio.sleep(0)
        with pytest.raises(tools.ServerBusy):  # alpha's one slot is taken, its queue is 0
            await t.chat_completion(ask("alpha"))
        other = await t.chat_completion(ask("beta"))
        info = await t.model_info()
        alpha.release()
        await held
        return other, info

    other, info = asyncio.run(scenario())
    assert other.text == "from beta"
    assert [(m.name, m.in_flight_requests) for m in info.models] == [("alpha", 1), ("beta", 0)]
    assert info.in_flight_requests == 1


def test_model_info_keeps_the_single_models_fields_and_lists_it() -> None:
    t = tools_over(FakeEngine(model_name="only", loaded=True))
    info = asyncio.run(t.model_info())
    assert (info.model_name, info.server_state) == ("only", "ready")
    (entry,) = info.models
    assert (entry.name, entry.kind, entry.state, entry.load_phase) == ("only", "generate", "ready", "ready")
    # The checkpoint's name, as results show it, names the one model too.
    assert asyncio.run(t.chat_completion(ask("only"))).model == "only"
