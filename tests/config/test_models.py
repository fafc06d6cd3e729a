"""The models file (``VLLM_MCP_MODELS``, config/models.py): its models, and one line per problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vllm_mcp.config.check import validate
from vllm_mcp.config.settings import ModelSpec, Settings
from vllm_mcp.errors import ConfigError

TWO_MODELS = """
[[models]]
name = "chat"
model = "Qwen/Qwen3-8B"
max_model_len = 8192
devices = [0, 1]
tensor_parallel_size = 2
engine_args = { max_num_seqs = 32 }

[[models]]
name = "vectors"
model = "/models/bge"
kind = "embed"
gpu_memory_utilization = 0.2
lora_modules = { sql = "/adapters/sql" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, **env: str) -> list[str]:
    """The lines ``serve`` would refuse to start with."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"VLLM_MCP_MODELS": str(write(tmp_path, text)), **env})
    return caught.value.lines


def test_without_the_file_the_single_model_settings_are_the_one_model() -> None:
    settings = Settings.load(
        environ={"VLLM_MODEL_NAME": "org/m", "VLLM_DTYPE": "bfloat16", "VLLM_MCP_LORA_MODULES": "a=/x"}
    )
    (only,) = settings.models
    assert (only.name, only.model, only.kind, only.dtype) == ("org/m", "org/m", None, "bfloat16")
    assert only.lora_modules == {"a": "/x"} and only.devices is None
    assert settings.for_model(only) == settings


def test_the_file_gives_each_model_its_settings_and_the_rest_from_the_variables(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={
            "VLLM_MCP_MODELS": str(write(tmp_path, TWO_MODELS)),
            "VLLM_DTYPE": "float32",
            "VLLM_MCP_ENGINE_ARGS": json.dumps({"enforce_eager": True, "max_num_seqs": 8}),
            "VLLM_MCP_LORA_MODULES": "base=/adapters/base",
        }
    )
    chat, vectors = settings.models
    assert (chat.name, chat.kind, chat.devices, chat.tensor_parallel_size) == ("chat", None, (0, 1), 2)
    assert chat.dtype == vectors.dtype == "float32"  # VLLM_DTYPE where the table says nothing
    assert chat.engine_args == {"enforce_eager": True, "max_num_seqs": 32}  # merged, the file wins
    assert chat.lora_modules == {}  # adapters belong to one model: never inherited
    assert (vectors.kind, vectors.gpu_memory_utilization) == ("embed", 0.2)
    assert vectors.lora_modules == {"sql": "/adapters/sql"}
    engine = settings.for_model(vectors)
    assert (engine.model_name, engine.gpu_memory_utilization, engine.max_model_len) == (
        "/models/bge",
        0.2,
        None,
    )
    assert engine.lora_modules == {"sql": "/adapters/sql"}
    assert [m["name"] for m in settings.public_dict()["models"]] == ["chat", "vectors"]


def test_secret_engine_arguments_are_masked_where_the_models_are_shown(tmp_path: Path) -> None:
    text = '[[models]]\nname = "a"\nmodel = "m"\nengine_args = { hf_token = "hf_secret123" }\n'
    settings = Settings.load(environ={"VLLM_MCP_MODELS": str(write(tmp_path, text))})
    assert "hf_secret123" not in json.dumps(settings.public_dict())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[models]]\nname = "a"\nmodel = "m"\nmax_len = 5\n',
            "unknown key 'max_len'; did you mean 'max_model_len'?",
        ),
        (
            '[[models]]\nname = "a"\nmodel = "m"\ndevice = [0]\n',
            "unknown key 'device'; did you mean 'devices'?",
        ),
        ('[[model]]\nname = "a"\nmodel = "m"\n', "unknown top-level key 'model'; did you mean 'models'?"),
        ('[[models]]\nmodel = "m"\n', "missing 'name'"),
        ('[[models]]\nname = "a"\n', "missing 'model'"),
        (
            '[[models]]\nname = "a"\nmodel = "m"\nkind = "chat"\n',
            "kind = 'chat': input should be 'generate' or 'embed'",
        ),
        ('[[models]]\nname = "a"\nmodel = "m"\ndtype = "fp8"\n', "dtype = 'fp8'"),
        ('[[models]]\nname = "a"\nmodel = "m"\nmax_model_len = "long"\n', "max_model_len = 'long'"),
        ('[[models]]\nname = "a"\nmodel = "m"\ngpu_memory_utilization = 1.5\n', "less than or equal to 1"),
        ('[[models]]\nname = "a"\nmodel = "m"\ndevices = [0, 0]\n', "names a GPU twice"),
        ('[[models]]\nname = "a"\nmodel = "m"\ndevices = [-1]\n', "GPU indices"),
        ('[[models]]\nname = "a"\nmodel = "m"\ndevices = []\n', "at least one GPU"),
        ('[[models]]\nname = "a b"\nmodel = "m"\n', "name = 'a b': use letters"),
        ('[[models]]\nname = "a"\nmodel = "m"\nlora_modules = "sql"\n', "not a name=path pair"),
        ('[[models]]\nname = "a"\nmodel = "m"\nengine_args = 3\n', "engine_args"),
        ("models = 3\n", "needs one [[models]] table per model"),
        ("", "needs one [[models]] table per model"),
        ("[[models]\nname=", "not valid TOML"),
        (
            '[[models]]\nname = "a"\nmodel = "m"\n[[models]]\nname = "a"\nmodel = "n"\n',
            "name 'a' is already used by [[models]] #1",
        ),
        (
            '[[models]]\nname = "a"\nmodel = "m"\nkind = "embed"\n',
            "every model is kind = 'embed', but chat_completion and complete need a generative model",
        ),
    ],
)
def test_each_bad_input_is_one_line_naming_the_file_the_table_and_the_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    lines = problems(tmp_path, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"VLLM_MCP_MODELS ({tmp_path / 'models.toml'})"), lines[0]
    assert expected in lines[0], lines[0]
    assert "\n" not in lines[0]


def test_every_problem_of_every_table_is_its_own_line(tmp_path: Path) -> None:
    text = '[[models]]\nname = "a"\nmodel = "m"\nmax_len = 1\ndevice = [0]\n[[models]]\nname = "b"\n'
    lines = problems(tmp_path, text)
    assert len(lines) == 3, lines
    assert "#1 ('a'): unknown key 'max_len'" in lines[0] and "#1 ('a'): unknown key 'device'" in lines[1]
    assert "#2 ('b'): missing 'model'" in lines[2]


def test_a_missing_file_says_so() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(environ={"VLLM_MCP_MODELS": "/nonexistent/models.toml"})
    assert caught.value.lines == [
        "VLLM_MCP_MODELS (/nonexistent/models.toml): no such file; point VLLM_MCP_MODELS at a TOML "
        "file of [[models]] tables"
    ]


def test_several_models_refuse_what_shares_one_engine(tmp_path: Path) -> None:
    (line,) = problems(
        tmp_path,
        TWO_MODELS,
        VLLM_MCP_TRANSPORT="http",
        VLLM_MCP_HTTP_WORKERS="2",
        VLLM_MCP_SESSION_STORE=str(tmp_path / "s.db"),
    )
    assert "VLLM_MCP_HTTP_WORKERS=2" in line and "set VLLM_MCP_HTTP_WORKERS=1" in line


def test_config_validate_reports_the_files_problems_with_the_others(tmp_path: Path) -> None:
    path = write(tmp_path, '[[models]]\nname = "a"\nmodel = "m"\nmax_len = 5\n')
    result = validate({"VLLM_MCP_MODELS": str(path), "VLLM_MCP_NO_SUCH": "1"})
    assert not result.ok
    assert any("unknown key 'max_len'; did you mean 'max_model_len'?" in p for p in result.problems)
    assert any("VLLM_MCP_NO_SUCH" in p for p in result.problems)


def test_a_spec_counts_the_gpus_one_engine_takes() -> None:
    spec = ModelSpec(name="a", model="m", tensor_parallel_size=2, engine_args={"data_parallel_size": 2})
    assert spec.gpus_needed == 4


def test_config_validate_names_a_models_unknown_engine_argument(tmp_path: Path) -> None:
    path = write(tmp_path, '[[models]]\nname = "a"\nmodel = "m"\nengine_args = { max_num_seq = 4 }\n')
    known = frozenset({"max_num_seqs", "enforce_eager"})
    result = validate({"VLLM_MCP_MODELS": str(path)}, engine_arg_names=known)
    assert result.problems == [
        "VLLM_MCP_MODELS: model 'a': unknown engine argument 'max_num_seq'; did you mean 'max_num_seqs'?"
    ]
