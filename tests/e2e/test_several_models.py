"""End to end: one ``vllm-mcp serve`` with several models (``VLLM_MCP_MODELS``), through the SDK.

Two generative tiny models under two names, one that cannot load, and a tiny embedding model
(a causal LM through vLLM's pooling runner), all in one server for the whole module: three
engine start-ups, one after another in file order. Each model answers by its name, ``embed``
returns normalized, deterministic vectors of the embedding model's size, an unknown model is
a clear error, and the broken model fails alone while the others answer.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.models import EMBEDDING_SIZE, serve_env
from tests.support.servers import McpClient

pytestmark = pytest.mark.engine

ALPHA_LEN, BETA_LEN, EMBED_LEN = 512, 1024, 64


def models_file(directory: Path, alpha: Path, beta: Path, embedder: Path, broken: Path) -> Path:
    path = directory / "models.toml"
    path.write_text(
        f"""
[[models]]
name = "alpha"
model = "{alpha}"
max_model_len = {ALPHA_LEN}

[[models]]
name = "broken"
model = "{broken}"

[[models]]
name = "beta"
model = "{beta}"
max_model_len = {BETA_LEN}

[[models]]
name = "vectors"
model = "{embedder}"
kind = "embed"
max_model_len = {EMBED_LEN}
devices = [0]
""",
        encoding="utf-8",
    )
    return path


@dataclass
class Served:
    client: McpClient
    early: dict[str, Any]  # model_info as soon as the server answered, while the first model loads
    metrics: Path


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model: Path,
    tiny_thinking_model: Path,
    tiny_embedding_model: Path,
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("several")
    broken = directory / "broken-model"  # a checkpoint vLLM cannot read: its own failure
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    path = models_file(directory, tiny_model, tiny_thinking_model, tiny_embedding_model, broken)
    metrics = directory / "vllm_mcp.prom"
    env = serve_env(
        tiny_model,
        VLLM_MCP_MODELS=str(path),
        VLLM_MCP_METRICS_TEXTFILE=str(metrics),
        VLLM_MCP_METRICS_INTERVAL="0.5",
    )
    client = McpClient(env)
    try:
        early = client.info()
        client.wait_ready(timeout=900)
        yield Served(client, early, metrics)
    finally:
        client.close()


@pytest.fixture
def server(served: Served) -> McpClient:
    return served.client


def complete(server: McpClient, **arguments: Any) -> Any:
    return server.call("complete", {"prompt": "word1 number", "max_tokens": 8, "temperature": 0, **arguments})


def embed(server: McpClient, **arguments: Any) -> Any:
    return server.call("embed", arguments)


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_model_info_lists_every_model_and_the_broken_one_failed_alone(server: McpClient) -> None:
    info = server.info()
    models = {m["name"]: m for m in info["models"]}
    assert list(models) == ["alpha", "broken", "beta", "vectors"]  # file order
    assert {n: m["state"] for n, m in models.items()} == {
        "alpha": "ready",
        "broken": "failed",
        "beta": "ready",
        "vectors": "ready",
    }
    assert {n: m["kind"] for n, m in models.items()} == {
        "alpha": "generate",
        "broken": "generate",
        "beta": "generate",
        "vectors": "embed",
    }
    assert models["broken"]["failure"] and models["broken"]["load_phase"] == "failed"
    assert models["alpha"]["max_model_len"] == ALPHA_LEN
    assert models["beta"]["max_model_len"] == BETA_LEN
    assert models["vectors"]["dimensions"] == EMBEDDING_SIZE
    assert models["vectors"]["devices"] == [0]
    # The server serves: the top-level fields are the first generative model's.
    assert info["server_state"] == "ready"
    assert info["max_model_len"] == ALPHA_LEN
    assert "broken" in info["failure"]


def test_the_tools_list_offers_embed_with_its_annotations(server: McpClient) -> None:
    tools = {t.name: t for t in server.submit(server.session.list_tools()).result(60).tools}
    assert sorted(tools) == ["chat_completion", "complete", "embed", "end_session", "model_info"]
    hints = tools["embed"].annotations
    assert hints is not None and hints.read_only_hint and hints.idempotent_hint
    assert hints.destructive_hint is False and hints.open_world_hint is False
    assert "model" in tools["chat_completion"].input_schema["properties"]


def test_each_generative_model_answers_by_its_name(server: McpClient) -> None:
    alpha, beta = complete(server, model="alpha"), complete(server, model="beta")
    assert not alpha.is_error and not beta.is_error, (alpha.content, beta.content)
    assert alpha.structured_content["model"] == "alpha"
    assert beta.structured_content["model"] == "beta"
    # Two different checkpoints: greedy decoding of the same prompt differs; each is repeatable.
    assert alpha.structured_content["text"] != beta.structured_content["text"]
    assert complete(server, model="beta").structured_content["text"] == beta.structured_content["text"]
    default = complete(server)  # no model: the first generative one
    assert default.structured_content["model"] == "alpha"
    assert default.structured_content["text"] == alpha.structured_content["text"]


def test_embed_returns_normalized_deterministic_vectors_of_the_models_size(server: McpClient) -> None:
    first = embed(server, input=["the quick brown fox", "word7 number 7"])
    assert not first.is_error, first.content[0].text
    result = first.structured_content
    assert result["model"] == "vectors" and result["dimensions"] == EMBEDDING_SIZE
    one, two = result["embeddings"]
    assert len(one) == len(two) == EMBEDDING_SIZE
    assert abs(norm(one) - 1) < 1e-4 and abs(norm(two) - 1) < 1e-4
    assert one != two
    assert result["usage"]["prompt_tokens"] > 2
    again = embed(server, input="the quick brown fox", model="vectors").structured_content
    assert again["embeddings"] == [one]  # the same input, the same vector
    raw = embed(server, input="the quick brown fox", normalize=False).structured_content["embeddings"][0]
    assert abs(norm(raw) - 1) > 1e-3
    assert max(abs(a / norm(raw) - b) for a, b in zip(raw, one, strict=True)) < 1e-4


def test_embed_names_the_input_that_is_too_long_unless_truncate(server: McpClient) -> None:
    long = " ".join(f"word{i}" for i in range(200))
    refused = embed(server, input=["short", long])
    assert refused.is_error
    message = refused.content[0].text
    assert "input[1]" in message and str(EMBED_LEN) in message and "truncate" in message
    cut = embed(server, input=["short", long], truncate=True)
    assert not cut.is_error, cut.content[0].text
    assert len(cut.structured_content["embeddings"]) == 2
    shorter = embed(server, input="short", dimensions=8)
    assert shorter.is_error and "dimensions" in shorter.content[0].text


def test_a_model_of_the_wrong_kind_or_an_unknown_one_is_a_clear_error(server: McpClient) -> None:
    unknown = complete(server, model="gamma")
    assert unknown.is_error
    text = unknown.content[0].text
    assert "unknown model 'gamma'" in text and all(n in text for n in ("alpha", "beta", "vectors"))
    wrong = server.call(
        "chat_completion", {"messages": [{"role": "user", "content": "hi"}], "model": "vectors"}
    )
    assert wrong.is_error and "embedding model" in wrong.content[0].text
    wrong = embed(server, input="hi", model="alpha")
    assert wrong.is_error and "'vectors'" in wrong.content[0].text


def test_the_broken_model_fails_its_calls_alone(server: McpClient) -> None:
    broken = complete(server, model="broken")
    assert broken.is_error and "model failed" in broken.content[0].text
    assert not complete(server, model="beta").is_error  # the others answer after it


def test_a_session_keeps_its_history_when_turns_name_different_models(server: McpClient) -> None:
    first = server.chat("word1 number 1", session_id="mixed", model="alpha", max_tokens=4)
    second = server.chat("word2 number 2", session_id="mixed", model="beta", max_tokens=4)
    alone = server.chat("word2 number 2", model="beta", max_tokens=4)
    assert (first["model"], second["model"]) == ("alpha", "beta")
    assert second["usage"]["prompt_tokens"] > alone["usage"]["prompt_tokens"]  # alpha's turn is in it


def test_models_wait_their_turn_to_load_in_file_order(served: Served) -> None:
    phases = {m["name"]: m["load_phase"] for m in served.early["models"]}
    # The first loads while the others wait (the tiny model takes ~20 s; the call came at once).
    assert phases["alpha"] not in ("queued", "ready", "failed"), phases
    assert phases["beta"] == phases["vectors"] == "queued"
    assert served.early["server_state"] == "loading"


def test_the_metrics_carry_each_models_name(served: Served) -> None:
    assert not embed(served.client, input="count me").is_error
    assert not complete(served.client, model="beta").is_error
    wanted = (
        'vllm_mcp_requests_total{caller="",model="vectors",outcome="ok",tool="embed"}',
        'vllm_mcp_requests_total{caller="",model="beta",outcome="ok",tool="complete"}',
        'vllm_mcp_engine_state{model="broken",vllm_mcp_engine_state="failed"} 1.0',
        'vllm_mcp_prompt_tokens_total{model="vectors"}',
    )
    deadline = time.monotonic() + 30  # the file is rewritten every 0.5 s
    text = ""
    while time.monotonic() < deadline:
        text = served.metrics.read_text() if served.metrics.exists() else ""
        if all(w in text for w in wanted):
            break
        time.sleep(0.2)
    assert all(w in text for w in wanted), [w for w in wanted if w not in text]
