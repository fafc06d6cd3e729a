"""prefetch: which files vLLM needs, real downloads and real hub errors via a loopback hub.

The hub cannot be reached from tests, so ``tests.support.fakehub`` answers the HTTP API the
way the hub does; huggingface_hub's real client downloads from it and raises its
real exceptions, which prefetch must turn into one line and a non-zero exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.fakehub import FakeHub, FakeRepo
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.prefetch import PrefetchError, prefetch, prefetch_for_settings, select_files

FAKE_TOKEN = "hf_FAKEfakeFAKE1234567890"

# A listing shaped like meta-llama/Llama-3.1-8B-Instruct's (names as on the hub).
LLAMA_FILES = [
    ".gitattributes",
    "LICENSE",
    "README.md",
    "USE_POLICY.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00004.safetensors",
    "model-00002-of-00004.safetensors",
    "model-00003-of-00004.safetensors",
    "model-00004-of-00004.safetensors",
    "model.safetensors.index.json",
    "original/consolidated.00.pth",
    "original/params.json",
    "original/tokenizer.model",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_selects_config_tokenizer_and_safetensors_only() -> None:
    assert select_files(LLAMA_FILES) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors",
        "model-00003-of-00004.safetensors",
        "model-00004-of-00004.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_bin_files_are_skipped_when_safetensors_exist() -> None:
    files = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
        "tokenizer.model",
        "merges.txt",
        "vocab.json",
    ]
    assert select_files(files) == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "tokenizer.model",
        "vocab.json",
    ]


def test_bin_files_are_used_when_there_is_nothing_else() -> None:
    files = [
        "config.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",
        "training_args.bin",
        "tokenizer_config.json",
    ]
    assert select_files(files) == [
        "config.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
        "pytorch_model.bin.index.json",
        "tokenizer_config.json",
    ]


def test_index_drops_duplicate_consolidated_weights() -> None:
    files = [
        "config.json",
        "consolidated.safetensors",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "params.json",
        "tekken.json",
    ]
    index = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    chosen = select_files(files, index)
    assert "consolidated.safetensors" not in chosen
    assert {"model-00001-of-00002.safetensors", "tekken.json"} <= set(chosen)


def test_repository_without_loadable_weights() -> None:
    with pytest.raises(ValueError, match=r"no \.safetensors or \.bin"):
        select_files(["config.json", "model-q4_k_m.gguf", "README.md"])


# --- against the loopback hub ---------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    h = FakeHub(
        {
            "org/tiny": FakeRepo(
                {
                    "config.json": b'{"max_position_embeddings": 64}',
                    "model.safetensors": b"s" * 2048,
                    "pytorch_model.bin": b"b" * 2048,
                    "tokenizer.json": b"{}",
                    "README.md": b"# tiny",
                    "onnx/model.onnx": b"o",
                }
            ),
            "org/sharded": FakeRepo(
                {
                    "config.json": b"{}",
                    "consolidated.safetensors": b"c" * 4096,
                    "model-00001-of-00002.safetensors": b"1" * 1024,
                    "model-00002-of-00002.safetensors": b"2" * 1024,
                    "model.safetensors.index.json": json.dumps(index).encode(),
                },
                sha="b" * 40,
            ),
            "org/gated": FakeRepo({"config.json": b"{}", "model.safetensors": b"g"}, gated=True),
        }
    ).start()
    yield h
    h.stop()


def test_downloads_only_what_vllm_needs_pinned_to_the_commit(hub: FakeHub, tmp_path: Path) -> None:
    result = prefetch("org/tiny", cache_dir=tmp_path, endpoint=hub.url, progress=False)
    assert result.commit == hub.repos["org/tiny"].sha
    assert result.path == tmp_path / "models--org--tiny" / "snapshots" / result.commit
    on_disk = sorted(p.name for p in result.path.rglob("*") if p.is_file())
    assert on_disk == ["config.json", "model.safetensors", "tokenizer.json"]
    assert (result.path / "model.safetensors").read_bytes() == b"s" * 2048
    # A second run finds everything in the cache and downloads no file again.
    before = sum(r.startswith("GET /org/tiny/resolve") for r in hub.requests)
    prefetch("org/tiny", cache_dir=tmp_path, endpoint=hub.url, progress=False)
    assert sum(r.startswith("GET /org/tiny/resolve") for r in hub.requests) == before


def test_sharded_repo_follows_its_index(hub: FakeHub, tmp_path: Path) -> None:
    result = prefetch("org/sharded", revision="b" * 40, cache_dir=tmp_path, endpoint=hub.url, progress=False)
    names = sorted(p.name for p in result.path.iterdir())
    assert names == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]


@pytest.mark.parametrize(
    ("model", "revision", "token", "expected"),
    [
        ("org/absent", None, None, "not found on the Hugging Face hub; if it is private"),
        ("org/absent", None, "hf_goodtoken", "model org/absent not found"),
        ("org/tiny", "v9.9", None, "revision 'v9.9' not found in org/tiny"),
        ("org/gated", None, None, "is gated: accept its terms"),
        ("org/gated", None, FAKE_TOKEN, "token's account has no access"),
        ("not a repo!", None, None, "not a valid Hugging Face model id"),
    ],
)
def test_hub_errors_become_one_line(
    hub: FakeHub, tmp_path: Path, model: str, revision: str | None, token: str | None, expected: str
) -> None:
    with pytest.raises(PrefetchError) as info:
        prefetch(model, revision=revision, token=token, cache_dir=tmp_path, endpoint=hub.url, progress=False)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert FAKE_TOKEN not in message


CHUNK = 10 * 2**20  # huggingface_hub writes downloads to disk in pieces of this size


def big_hub() -> tuple[FakeHub, bytes]:
    weights = bytes(range(256)) * ((CHUNK + 2**20) // 256)  # one piece and a bit
    hub = FakeHub(
        {"org/big": FakeRepo({"config.json": b"{}", "tokenizer.json": b"{}", "model.safetensors": weights})}
    )
    return hub.start(), weights


@pytest.fixture
def no_resume_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub waits 1 s before each of its 5 resumes: the same resumes, without the wait."""
    import time
    import types

    from huggingface_hub import file_download

    fast = types.SimpleNamespace(**{**vars(time), "sleep": lambda seconds: None})
    monkeypatch.setattr(file_download, "time", fast)


def test_a_cut_connection_resumes_where_it_stopped(tmp_path: Path, no_resume_wait: None) -> None:
    h, weights = big_hub()
    h.cut["model.safetensors"] = [CHUNK + 4096]  # the first download breaks after 10 MiB
    try:
        result = prefetch("org/big", cache_dir=tmp_path, endpoint=h.url, progress=False)
    finally:
        h.stop()
    assert (result.path / "model.safetensors").read_bytes() == weights
    # The retry asked only for what was missing, not for the whole file again.
    assert h.ranges == [("model.safetensors", CHUNK)]
    assert not list(tmp_path.rglob("*.incomplete"))


def test_an_interrupted_prefetch_is_one_line_and_a_rerun_keeps_finished_files(
    tmp_path: Path, no_resume_wait: None
) -> None:
    h, weights = big_hub()
    h.cut["model.safetensors"] = [CHUNK + 4096] + [0] * 20  # the network stays down
    try:
        with pytest.raises(PrefetchError) as info:
            prefetch("org/big", cache_dir=tmp_path, endpoint=h.url, progress=False)
        message = str(info.value)
        assert "interrupted" in message and "run prefetch again" in message
        assert "\n" not in message
        assert not list(tmp_path.rglob("*.incomplete"))  # no half file left in the cache
        h.cut.clear()
        config_gets = sum(r.endswith("/config.json") and r.startswith("GET") for r in h.requests)
        result = prefetch("org/big", cache_dir=tmp_path, endpoint=h.url, progress=False)
        assert (
            sum(r.endswith("/config.json") and r.startswith("GET") for r in h.requests) == config_gets
        )  # finished files are not fetched again
    finally:
        h.stop()
    assert (result.path / "model.safetensors").read_bytes() == weights


def test_no_network(tmp_path: Path) -> None:
    with pytest.raises(PrefetchError, match="cannot reach the Hugging Face hub"):
        prefetch("org/tiny", cache_dir=tmp_path, endpoint="http://127.0.0.1:9", progress=False)


def test_local_directory_needs_no_download(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    result = prefetch_for_settings(Settings.load(environ={}), str(tmp_path))
    assert result.path == tmp_path and result.commit is None


def test_embedded_has_no_revision() -> None:
    with pytest.raises(PrefetchError, match="no revisions"):
        prefetch_for_settings(Settings.load(environ={}), "embedded", revision="main")


# --- the command, as a subprocess ----------------------------------------------------------


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**base, **env},
        cwd=ROOT,
    )


def test_cli_prints_path_and_commit(hub: FakeHub, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path)}
    proc = run_cli("prefetch", "org/tiny", "--revision", "main", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    fields = dict(line.split(":", 1) for line in proc.stdout.splitlines())
    assert fields["commit"].strip() == hub.repos["org/tiny"].sha
    assert Path(fields["path"].strip()).is_dir()
    assert fields["path"].strip().startswith(str(tmp_path))


@pytest.mark.parametrize(
    ("args", "env_extra", "expected"),
    [
        (("org/gated",), {"HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN}, "is gated"),
        (("org/absent",), {}, "not found"),
        (("org/tiny",), {"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ],
)
def test_cli_errors_are_one_line_without_traceback_or_token(
    hub: FakeHub,
    tmp_path: Path,
    args: tuple[str, ...],
    env_extra: dict[str, str],
    expected: str,
) -> None:
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), **env_extra}
    proc = run_cli("prefetch", *args, "--quiet", env=env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.startswith("vllm-mcp: ") and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and FAKE_TOKEN not in proc.stderr


# --- LoRA adapters (VLLM_MCP_LORA_MODULES) ---------------------------------------------------

ADAPTER_FILES = {
    "adapter_config.json": b'{"r": 8, "peft_type": "LORA"}',
    "adapter_model.safetensors": b"a" * 512,
    "README.md": b"# an adapter",
}


def local_adapter(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text('{"r": 8}')
    return directory


def test_adapters_are_fetched_like_models_and_local_ones_checked(tmp_path: Path) -> None:
    from vllm_mcp.engine.prefetch import prefetch_adapters

    hub = FakeHub({"org/sql-lora": FakeRepo(ADAPTER_FILES)}).start()
    try:
        env = {"VLLM_MCP_LORA_MODULES": f"sql=org/sql-lora mine={local_adapter(tmp_path / 'mine')}"}
        settings = Settings.load(environ=env)
        fetched = dict(prefetch_adapters(settings, False, hub.url, cache_dir=tmp_path / "hub"))
    finally:
        hub.stop()
    assert fetched["sql"].commit == FakeRepo(ADAPTER_FILES).sha
    assert fetched["sql"].path.is_relative_to(tmp_path / "hub")
    assert sorted(p.name for p in fetched["sql"].path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert (fetched["mine"].commit, fetched["mine"].path) == (None, tmp_path / "mine")
    bad = Settings.load(environ={"VLLM_MCP_LORA_MODULES": f"x={tmp_path}"})
    with pytest.raises(PrefetchError, match=r"adapter x: .* is not a LoRA adapter directory"):
        prefetch_adapters(bad, progress=False)


def test_cli_prefetch_without_a_model_fetches_the_adapters_too(tmp_path: Path) -> None:
    hub = FakeHub({"org/sql-lora": FakeRepo(ADAPTER_FILES)}).start()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    env = {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path),
        "VLLM_MODEL_NAME": str(model),
        "VLLM_MCP_LORA_MODULES": "sql=org/sql-lora",
    }
    try:
        proc = run_cli("prefetch", "--quiet", env=env)
        absent = run_cli("prefetch", "--quiet", env={**env, "VLLM_MCP_LORA_MODULES": "x=org/absent"})
    finally:
        hub.stop()
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[-1]
    assert line.startswith("adapter sql: " + str(tmp_path)) and line.endswith(
        f"({FakeRepo(ADAPTER_FILES).sha})"
    )
    assert absent.returncode == 1
    assert absent.stderr.startswith("vllm-mcp: adapter x: ") and "not found" in absent.stderr
    assert "Traceback" not in absent.stderr


def test_cli_prefetch_fetches_every_model_of_the_models_file(tmp_path: Path) -> None:
    hub = FakeHub({"org/sql-lora": FakeRepo(ADAPTER_FILES)}).start()
    local = tmp_path / "vectors"
    local.mkdir()
    (local / "config.json").write_text("{}")
    models = tmp_path / "models.toml"
    models.write_text(
        '[[models]]\nname = "chat"\nmodel = "org/sql-lora"\n'
        f'[[models]]\nname = "vectors"\nmodel = "{local}"\nkind = "embed"\n'
        'lora_modules = { sql = "org/sql-lora" }\n'
    )
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path), "VLLM_MCP_MODELS": str(models)}
    try:
        proc = run_cli("prefetch", "--quiet", env=env)
    finally:
        hub.stop()
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "--- chat" and lines[1] == "model:  org/sql-lora"
    assert lines[2] == f"commit: {FakeRepo(ADAPTER_FILES).sha}"
    assert lines[5] == "--- vectors" and lines[6] == f"model:  {local}"
    assert lines[-1].startswith("adapter sql: " + str(tmp_path))  # the embedding model's own adapter
