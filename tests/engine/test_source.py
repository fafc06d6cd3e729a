"""model_source: the one answer to "where does this model come from", and Hub errors in words.

The Hub's own answers (gated, missing, refused...) are exercised against a loopback hub in
test_prefetch.py and test_doctor_model.py; here the classification without a hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import embedded
from vllm_mcp.engine import source as model_source
from vllm_mcp.engine.source import ModelNotFound, classify_hub_error, explain_hub_error, locate


def test_the_three_kinds(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert locate("embedded", cache) == model_source.ModelSource(
        "embedded", "embedded", embedded.checkpoint_dir(cache)
    )
    assert locate(str(tmp_path), cache) == model_source.ModelSource("local", str(tmp_path), tmp_path)
    assert locate("org/model", cache) == model_source.ModelSource("hub", "org/model", None)


@pytest.mark.parametrize("name", ["/no/such/dir", "./nope", "../nope", "~/no-such-model-here"])
def test_a_path_that_does_not_exist_is_not_taken_for_a_hub_id(name: str, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFound, match="does not exist"):
        locate(name, tmp_path)


def test_the_engine_gets_the_name_as_given_for_a_directory_or_hub_id(tmp_path: Path) -> None:
    for name in (str(tmp_path), "org/model"):
        settings = Settings.load(environ={"VLLM_MODEL_NAME": name})
        assert model_source.for_engine(settings) == (name, name)


def test_cached_config_follows_the_hub_cache_layout(tmp_path: Path) -> None:
    sha = "b" * 40
    snapshot = tmp_path / "models--org--cached" / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    (tmp_path / "models--org--cached" / "refs").mkdir()
    (tmp_path / "models--org--cached" / "refs" / "main").write_text(sha)
    assert model_source.cached_config("org/cached", tmp_path) == snapshot / "config.json"
    assert model_source.cached_config("org/absent", tmp_path) is None
    with pytest.raises(ModelNotFound, match="not a valid id!!"):
        model_source.cached_config("not a valid id!!", tmp_path)


def test_errors_without_an_answer_from_the_hub() -> None:
    assert classify_hub_error(ConnectionRefusedError()) == "unreachable"
    assert classify_hub_error(TimeoutError()) == "unreachable"
    assert classify_hub_error(PermissionError(13, "Permission denied")) == "disk"
    assert classify_hub_error(RuntimeError("?")) == "other"
    line = explain_hub_error(ConnectionRefusedError(), "org/m", None, has_token=True)
    assert line.startswith("cannot reach the Hugging Face hub to download org/m")
    disk = explain_hub_error(OSError(28, "No space left on device"), "org/m", None, has_token=False)
    assert disk == "cannot write the model to the cache: No space left on device"


def test_an_httpx_transport_error_is_unreachable_and_a_broken_read_is_a_cut() -> None:
    httpx = pytest.importorskip("httpx")
    assert classify_hub_error(httpx.ConnectError("refused")) == "unreachable"
    assert classify_hub_error(httpx.ReadError("reset")) == "cut"
    assert "run prefetch again" in explain_hub_error(httpx.ReadError("reset"), "org/m", None, False)


def test_embedded_gguf_is_none_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing() -> Path:
        raise embedded.EmbeddedModelError("not installed")

    monkeypatch.setattr(embedded, "gguf_path", missing)
    assert model_source.embedded_gguf() is None


def test_the_kind_is_guessed_as_vllms_runner_detection_would(tmp_path: Path) -> None:
    from vllm_mcp.engine.source import guess_kind

    def checkpoint(name: str, architectures: list[str], *extra: str) -> str:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({"architectures": architectures}))
        for f in extra:
            (directory / f).write_text("[]")
        return str(directory)

    assert guess_kind(checkpoint("causal", ["LlamaForCausalLM"]), tmp_path) == "generate"
    assert guess_kind(checkpoint("bert", ["BertModel"]), tmp_path) == "embed"
    assert guess_kind(checkpoint("st", ["Qwen3ForCausalLM"], "modules.json"), tmp_path) == "embed"
    assert guess_kind(checkpoint("odd", []), tmp_path) == "generate"
    assert guess_kind("embedded", tmp_path) == "generate"
    assert guess_kind(str(tmp_path / "absent"), tmp_path) == "generate"
