"""config validate / config show, and the validation they share with serve.

Also the token test: a recognisable fake token set in the environment must appear
in no output of doctor, config show, config validate or a failing prefetch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.fakehub import FakeHub, FakeRepo
from vllm_mcp.cli import cli
from vllm_mcp.config.check import validate
from vllm_mcp.config.files import read_config_file, read_fluidmcp_config
from vllm_mcp.config.settings import (
    ConfigError,
    Settings,
    check_top_k,
    unknown_engine_args,
)

FAKE_TOKEN = "hf_FAKEfakeFAKE1234567890"
VLLM_OWN = frozenset({"VLLM_LOGGING_STREAM", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_USE_V1"})


# --- validate(): the shared code ------------------------------------------------------------


def test_valid_environment_lists_no_problem() -> None:
    result = validate(
        {"VLLM_MODEL_NAME": "org/m", "VLLM_MAX_MODEL_LEN": "4096", "VLLM_LOGGING_STREAM": "ext://sys.stderr"},
        engine_names=VLLM_OWN,
    )
    assert result.ok and result.settings is not None
    assert result.sources["model_name"] == "environment"
    assert result.sources["dtype"] == "default"


def test_types_ranges_and_typos_are_all_reported_at_once() -> None:
    result = validate(
        {
            "VLLM_DTYPE": "half",
            "VLLM_GPU_MEMORY_UTILIZATION": "1.5",
            "VLLM_MAX_MODEL_LENGTH": "4096",
            "VLLM_MCP_MAX_CONCURENCY": "8",
            "VLLM_CPU_OMP_THREADS_BIND": "all",
        },
        engine_names=VLLM_OWN,
    )
    assert not result.ok and result.settings is None
    text = "\n".join(result.problems)
    assert "VLLM_DTYPE='half'" in text
    assert "VLLM_GPU_MEMORY_UTILIZATION='1.5'" in text
    assert "unknown setting VLLM_MAX_MODEL_LENGTH; did you mean VLLM_MAX_MODEL_LEN?" in text
    assert "did you mean VLLM_MCP_MAX_CONCURRENCY?" in text
    assert "VLLM_CPU_OMP_THREADS_BIND" not in text  # vLLM's own variable: not a typo


def test_contradictions() -> None:
    tp = validate({"VLLM_TENSOR_PARALLEL_SIZE": "4"}, gpu_count=2)
    assert any("needs 4 GPUs but 2 are visible" in p for p in tp.problems)
    assert validate({"VLLM_TENSOR_PARALLEL_SIZE": "4"}, gpu_count=None).ok  # no GPU info
    ray = validate(
        {"VLLM_TENSOR_PARALLEL_SIZE": "4", "VLLM_DISTRIBUTED_EXECUTOR_BACKEND": "ray"}, gpu_count=2
    )
    assert ray.ok


@pytest.mark.parametrize("default", ["512", "600"])
def test_a_default_reply_as_long_as_the_context_is_a_warning_not_a_refusal(default: str) -> None:
    # Each call's reply is capped to the room its prompt leaves (prompts.fit), so this serves:
    # refusing it made a supervisor restart the server in a loop (issue 12).
    env = {"VLLM_MAX_MODEL_LEN": "512", "VLLM_DEFAULT_MAX_TOKENS": default}
    settings = Settings.load(environ=env)
    [warning] = settings.warnings()
    assert f"VLLM_DEFAULT_MAX_TOKENS ({default}) is not below VLLM_MAX_MODEL_LEN (512)" in warning
    assert "set VLLM_DEFAULT_MAX_TOKENS below 512" in warning
    result = validate(env)
    assert result.ok and result.warnings == [warning]
    # VLLM_MAX_MODEL_LEN=512 alone (default reply 512) used to refuse to start.
    assert Settings.load(environ={"VLLM_MAX_MODEL_LEN": "512"}).warnings()


def test_no_warning_when_the_reply_fits_or_the_context_is_unknown() -> None:
    assert Settings.load(environ={"VLLM_MAX_MODEL_LEN": "513"}).warnings() == []
    assert Settings.load(environ={}).warnings() == []
    # The model's own context, when doctor knows it, counts where VLLM_MAX_MODEL_LEN is unset.
    [warning] = Settings.load(environ={}).warnings(model_context=256)
    assert "the model's context (256)" in warning
    assert Settings.load(environ={"VLLM_MAX_MODEL_LEN": "1024"}).warnings(model_context=256) == []


def test_top_k_is_one_rule_for_the_default_and_each_call() -> None:
    assert check_top_k(-1) == -1 and check_top_k(40) == 40
    for bad in (0, -2):
        with pytest.raises(ValueError, match=r"-1 \(disabled\) or >= 1"):
            check_top_k(bad)
    result = validate({"VLLM_DEFAULT_TOP_K": "0"})
    assert result.problems == ["invalid VLLM_DEFAULT_TOP_K='0': must be -1 (disabled) or >= 1"]


def test_engine_arguments_are_checked_against_the_names_given() -> None:
    known = frozenset({"enforce_eager", "max_num_seqs"})
    env = {"VLLM_MCP_ENGINE_ARGS": '{"enforce_eagr": true, "max_num_seqs": 4}'}
    result = validate(env, engine_arg_names=known)
    assert result.problems == [
        "VLLM_MCP_ENGINE_ARGS: unknown engine argument 'enforce_eagr'; did you mean 'enforce_eager'?"
    ]
    assert validate(env).ok  # without vLLM's names, not checked
    assert unknown_engine_args({"zzz": 1}, known) == ["VLLM_MCP_ENGINE_ARGS: unknown engine argument 'zzz'"]


# --- config files --------------------------------------------------------------------------


def fluid_config(path: Path, servers: dict[str, object]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def test_fluidmcp_config_yields_the_env_of_our_entries_only(tmp_path: Path) -> None:
    path = fluid_config(
        tmp_path / "gateway.json",
        {
            "vllm": {
                "command": "vllm-mcp",
                "args": ["serve"],
                "env": {"VLLM_MODEL_NAME": "org/m", "VLLM_MAX_SESSIONS": "10"},
            },
            "legacy": {"command": "python", "args": ["-m", "vllm_mcp", "serve"]},
            "files": {
                "command": "npx",
                "args": ["@modelcontextprotocol/server-filesystem", "/"],
                "env": {"DEBUG": "1"},
            },
        },
    )
    assert read_fluidmcp_config(path) == {
        "vllm": {"VLLM_MODEL_NAME": "org/m", "VLLM_MAX_SESSIONS": "10"},
        "legacy": {},
    }


def test_fluidmcp_config_errors(tmp_path: Path) -> None:
    numbers = fluid_config(
        tmp_path / "n.json", {"vllm": {"command": "vllm-mcp", "env": {"VLLM_MAX_SESSIONS": 10}}}
    )
    with pytest.raises(ConfigError, match="VLLM_MAX_SESSIONS must be a JSON string"):
        read_fluidmcp_config(numbers)
    other = fluid_config(tmp_path / "o.json", {"files": {"command": "npx"}})
    with pytest.raises(ConfigError, match="no vllm-mcp server entry"):
        read_fluidmcp_config(other)
    broken = tmp_path / "b.json"
    broken.write_text('{"mcpServers": {"vllm": {"env": {,}}}}')
    with pytest.raises(ConfigError, match=r"b\.json:1:\d+: not valid JSON"):
        read_fluidmcp_config(broken)
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ConfigError, match='no "mcpServers" object'):
        read_fluidmcp_config(tmp_path / "x.json")


def test_env_file_and_json_are_told_apart(tmp_path: Path) -> None:
    env = tmp_path / "vllm-mcp.env"
    env.write_text("# service settings\nVLLM_MODEL_NAME=org/m\nexport VLLM_DTYPE='bfloat16'\n")
    assert read_config_file(env) == {str(env): {"VLLM_MODEL_NAME": "org/m", "VLLM_DTYPE": "bfloat16"}}
    meta = fluid_config(
        tmp_path / "metadata.json",
        {"vllm": {"command": "vllm-mcp", "args": ["serve"], "env": {"VLLM_DTYPE": "auto"}}},
    )
    assert list(read_config_file(meta).values()) == [{"VLLM_DTYPE": "auto"}]


# --- the commands -------------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def clean_env(**extra: str) -> dict[str, str | None]:
    """CliRunner env: unset every setting of the calling process, then set ``extra``."""
    unset: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))
    }
    return {**unset, **extra}


def test_validate_file_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.env"
    good.write_text("VLLM_MODEL_NAME=org/m\nVLLM_DEFAULT_TEMPERATURE=0.2\n")
    result = runner.invoke(cli, ["config", "validate", str(good)], env=clean_env())
    assert result.exit_code == 0 and result.output == f"{good}: valid\n"
    bad = tmp_path / "bad.env"
    bad.write_text("VLLM_DEFAULT_TEMPERATURE=3\nVLLM_MAX_SESION_MESSAGES=4\n")
    result = runner.invoke(cli, ["config", "validate", str(bad)], env=clean_env())
    assert result.exit_code == 1 and result.stderr == f"vllm-mcp: invalid configuration: {bad}\n"
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(f"{bad}: ") for line in lines)
    assert "VLLM_DEFAULT_TEMPERATURE='3'" in lines[0]
    assert "did you mean VLLM_MAX_SESSION_MESSAGES?" in lines[1]


def test_validate_fluidmcp_config_names_the_server(runner: CliRunner, tmp_path: Path) -> None:
    path = fluid_config(
        tmp_path / "gateway.json",
        {
            "vllm-a": {"command": "vllm-mcp", "env": {"VLLM_MODEL_NAME": "org/a"}},
            "vllm-b": {"command": "vllm-mcp", "env": {"VLLM_MAX_SESSIONS": "0"}},
        },
    )
    result = runner.invoke(cli, ["config", "validate", str(path)], env=clean_env())
    assert result.exit_code == 1
    assert f"{path} server 'vllm-a': valid" in result.output
    assert f"{path} server 'vllm-b': invalid VLLM_MAX_SESSIONS='0'" in result.output


def test_validate_environment_and_usage_errors(runner: CliRunner, tmp_path: Path) -> None:
    ok = runner.invoke(cli, ["config", "validate"], env=clean_env(VLLM_LOG_LEVEL="debug"))
    assert ok.exit_code == 0 and ok.output == "environment: valid\n"
    bad = runner.invoke(cli, ["config", "validate"], env=clean_env(VLLM_MCP_MAX_QUEUE="-1"))
    assert bad.exit_code == 1 and "VLLM_MCP_MAX_QUEUE='-1'" in bad.output
    # A combination that only limits calls is shown, and does not fail.
    limited = runner.invoke(cli, ["config", "validate"], env=clean_env(VLLM_MAX_MODEL_LEN="512"))
    assert limited.exit_code == 0, limited.output
    assert limited.output.startswith(
        "environment: valid\nenvironment: warning: VLLM_DEFAULT_MAX_TOKENS (512)"
    )
    # VLLM_MCP_ENGINE_ARGS keys are checked against vLLM's engine arguments, as serve does.
    typo = runner.invoke(
        cli, ["config", "validate"], env=clean_env(VLLM_MCP_ENGINE_ARGS='{"enforce_eagr": 1}')
    )
    assert typo.exit_code == 1 and "did you mean 'enforce_eager'?" in typo.output
    missing = runner.invoke(cli, ["config", "validate", str(tmp_path / "nope.env")])
    assert missing.exit_code == 2
    assert runner.invoke(cli, ["config", "validate", "a", "b"]).exit_code == 2


def test_show_gives_value_and_source(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "show"], env=clean_env(VLLM_MAX_SESSIONS="7", HF_TOKEN=FAKE_TOKEN))
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert rows["VLLM_MAX_SESSIONS"].split()[1:] == ["7", "[environment]"]
    assert rows["VLLM_DTYPE"].split()[1:] == ["float16", "[default]"]
    assert "<set, 25 characters>" in rows["HUGGING_FACE_HUB_TOKEN"]
    as_json = runner.invoke(cli, ["config", "show", "--json"], env=clean_env(VLLM_MAX_SESSIONS="7"))
    doc = json.loads(as_json.output)
    assert doc["VLLM_MAX_SESSIONS"] == {"value": 7, "source": "environment"}
    assert doc["VLLM_MAX_MODEL_LEN"] == {"value": None, "source": "default"}


def test_show_with_invalid_config_is_a_configuration_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "show"], env=clean_env(VLLM_DTYPE="half"))
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("vllm-mcp: invalid VLLM_DTYPE='half'")


# --- the token never shows --------------------------------------------------------------------


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    h = FakeHub({"org/gated": FakeRepo({"config.json": b"{}"}, gated=True)}).start()
    yield h
    h.stop()


def test_token_appears_in_no_output(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # In this process, so vLLM and torch are imported once; tests/e2e/test_secrets.py runs the
    # same commands as real processes. huggingface_hub read HF_ENDPOINT and HF_HOME at import:
    # its constants are pointed at the loopback hub and a fresh cache instead.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    caplog.set_level(logging.DEBUG)
    env = {
        "HUGGING_FACE_HUB_TOKEN": FAKE_TOKEN,
        "VLLM_MCP_CACHE_DIR": str(tmp_path / "cache"),
        "VLLM_LOG_LEVEL": "DEBUG",
        "VLLM_MODEL_NAME": "org/gated",
    }
    bad = tmp_path / "bad.env"
    bad.write_text(f"HUGGING_FACE_HUB_TOKEN={FAKE_TOKEN}\nVLLM_DTYPE=half\n")
    commands = [
        ["doctor"],
        ["doctor", "--json"],
        ["config", "show"],
        ["config", "show", "--json"],
        ["config", "validate"],
        ["config", "validate", str(bad)],
        ["prefetch", "org/gated"],
        ["prefetch", "org/absent"],
    ]
    seen_rejected = False
    for args in commands:
        result = CliRunner().invoke(cli, args, env=env)
        shown = result.stdout + result.stderr + caplog.text + repr([r.__dict__ for r in caplog.records])
        assert FAKE_TOKEN not in shown, args
        assert "FAKEfakeFAKE" not in shown, args
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        seen_rejected |= "rejected" in result.stdout  # doctor did send it to whoami
    assert seen_rejected


# --- the HTTP transport's settings -------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_http_needs_no_token_file(host: str) -> None:
    s = Settings.load(environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_HOST": host})
    assert s.transport == "http" and s.http_token_file is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "mcp.example.org"])
def test_http_off_loopback_without_a_token_file_is_refused(host: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.load(environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_HOST": host})
    assert "VLLM_MCP_HTTP_TOKEN_FILE" in str(e.value) and host in str(e.value)
    ok = Settings.load(
        environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_HOST": host, "VLLM_MCP_HTTP_TOKEN_FILE": "/t"}
    )
    assert str(ok.http_token_file) == "/t"
    # The rule is about HTTP: a stdio server never listens.
    assert Settings.load(environ={"VLLM_MCP_HTTP_HOST": host}).transport == "stdio"


def test_http_workers_need_http_and_a_session_store() -> None:
    http = {"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_WORKERS": "2"}
    with pytest.raises(ConfigError) as e:
        Settings.load(environ=http)
    assert "VLLM_MCP_HTTP_WORKERS=2 needs VLLM_MCP_SESSION_STORE" in str(e.value)
    assert "SQLite file" in str(e.value)
    with pytest.raises(ConfigError) as e:
        Settings.load(environ={"VLLM_MCP_HTTP_WORKERS": "2", "VLLM_MCP_SESSION_STORE": "/s.db"})
    assert "needs VLLM_MCP_TRANSPORT=http" in str(e.value)
    assert Settings.load(environ={**http, "VLLM_MCP_SESSION_STORE": "/s.db"}).http_workers == 2
    assert Settings.load(environ={}).http_workers == 1  # one process, memory sessions allowed


def test_config_validate_reports_an_unauthenticated_public_bind() -> None:
    from vllm_mcp.config.check import validate

    result = validate({"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_HOST": "0.0.0.0"})
    assert not result.ok
    assert any("refusing to serve without authentication" in p for p in result.problems)


def test_any_host_is_refused_on_an_unauthenticated_http_server(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"VLLM_MCP_HTTP_ALLOWED_HOSTS=\* turns DNS-rebinding protection off"
    ):
        Settings.load(
            environ={"VLLM_MCP_TRANSPORT": "http", "VLLM_MCP_HTTP_ALLOWED_HOSTS": "mcp.example.org,*"}
        )
    tokens = tmp_path / "tokens"
    tokens.write_text("a" * 32 + "\n")
    env = {"VLLM_MCP_HTTP_ALLOWED_HOSTS": "*", "VLLM_MCP_TRANSPORT": "http"}
    assert Settings.load(environ={**env, "VLLM_MCP_HTTP_TOKEN_FILE": str(tokens)}).allowed_hosts == ["*"]
    assert Settings.load(environ={**env, "VLLM_MCP_TRANSPORT": "stdio"}).allowed_hosts == ["*"]


def test_allowed_hosts_are_a_checked_list() -> None:
    s = Settings.load(environ={"VLLM_MCP_HTTP_ALLOWED_HOSTS": " mcp.example.org, 10.0.0.5:8000 ,,[::1]"})
    assert s.allowed_hosts == ["mcp.example.org", "10.0.0.5:8000", "[::1]"]
    assert Settings.load(environ={"VLLM_MCP_HTTP_ALLOWED_HOSTS": ""}).allowed_hosts == []
    with pytest.raises(ConfigError, match=r"VLLM_MCP_HTTP_ALLOWED_HOSTS.*'http://x' is not a host name"):
        Settings.load(environ={"VLLM_MCP_HTTP_ALLOWED_HOSTS": "http://x"})
    with pytest.raises(ConfigError, match="VLLM_MCP_TRANSPORT"):
        Settings.load(environ={"VLLM_MCP_TRANSPORT": "websocket"})


def test_allowed_media_domains_are_a_checked_list_and_off_by_default() -> None:
    assert Settings.load(environ={}).media_domains == []
    s = Settings.load(
        environ={"VLLM_MCP_ALLOWED_MEDIA_DOMAINS": " Images.Example.org., *.cdn.example.net ,,"}
    )
    assert s.media_domains == ["images.example.org", "*.cdn.example.net"]
    for bad in ("https://images.example.org", "images.example.org:443", "*.org", "*", "a/b"):
        with pytest.raises(
            ConfigError, match=r"VLLM_MCP_ALLOWED_MEDIA_DOMAINS.*is not a host name, or '\*\.'"
        ):
            Settings.load(environ={"VLLM_MCP_ALLOWED_MEDIA_DOMAINS": bad})
