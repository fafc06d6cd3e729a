"""The command line fails one way: a ``vllm-mcp:`` line on stderr, exit 0, 1 or 2, no traceback.

Every command's error path, through click's ``CliRunner`` (which calls the same ``main`` the
script does) and a few real subprocesses for ``main()`` itself. No engine is started: ``serve``
gets a stand-in ``app.run`` and ``chat`` the ``FakeChat`` double. The caller's ``VLLM_*``/``HF_*``
variables are removed first, so the results do not depend on who runs the tests.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT
from tests.support.cli import PREFIX, assert_error, invoke
from tests.support.doubles import FakeChat
from vllm_mcp import doctor
from vllm_mcp.cli import config as cli_config
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ConfigError, ExitCode, PrefetchError
from vllm_mcp.protocol import client
from vllm_mcp.server import app


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the caller's environment; a private cache; the hub offline."""
    for name in list(os.environ):
        if name.startswith(("VLLM_", "HF_", "HUGGING_FACE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VLLM_MCP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: say it where it is looked up.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


# --- the contract, as documented -------------------------------------------------------------


def test_help_documents_the_exit_statuses() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and result.stderr == ""
    text = " ".join(result.stdout.split())
    assert "Exit status: 0 success; 1 failure" in text and "2 usage or configuration error" in text
    docs = (ROOT / "docs" / "cli.md").read_text()
    for code in ExitCode:  # every status the classes use, documented
        assert f"| {int(code)} |" in docs


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["serve", "--bogus"],
        ["chat"],
        ["chat", "hi", "--temperature", "3"],
        ["doctor", "--bogus"],
        ["doctor", "--root", "/no/such/dir"],
        ["prefetch", "a", "b"],
        ["config", "validate", "a", "b"],
        ["config", "validate", "/no/such/file.env"],
        ["config", "show", "--bogus"],
    ],
)
def test_usage_errors_exit_2_with_one_prefixed_line_and_a_pointer_to_help(args: list[str]) -> None:
    lines = assert_error(invoke(*args), 2)
    assert len(lines) == 2 and lines[1].endswith("--help'"), lines


def test_no_command_shows_the_help_on_stderr_and_exits_2() -> None:
    result = invoke()
    assert result.exit_code == 2 and result.stdout == ""
    assert "Commands:" in result.stderr and "Exit status:" in result.stderr


# --- serve -------------------------------------------------------------------------------


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """``app.run`` replaced: records the settings it would serve, exits 1 like a failed server."""
    served: list[Settings] = []

    def run(settings: Settings) -> int:
        served.append(settings)
        return 1

    monkeypatch.setattr(app, "run", run)
    monkeypatch.setattr(app, "exit_now", sys.exit)  # the real one may os._exit the test process
    return served


def test_serve_bad_settings_exit_2_one_line_each_before_starting(fake_app: list[Settings]) -> None:
    result = invoke("serve", "--max-sessions", "many", VLLM_DTYPE="half")
    lines = assert_error(result, 2, "invalid VLLM_MAX_SESSIONS='many'", "invalid VLLM_DTYPE='half'")
    assert len(lines) == 2 and ConfigError.exit_code == 2  # the status is the class's
    assert fake_app == []


def test_serve_passes_options_and_exits_with_the_servers_status(fake_app: list[Settings]) -> None:
    result = invoke("serve", "--max-sessions", "7", VLLM_MCP_MAX_QUEUE="3")
    assert result.exit_code == 1 and result.stdout == ""
    assert [(s.max_sessions, s.max_queue) for s in fake_app] == [(7, 3)]


# --- chat --------------------------------------------------------------------------------


@pytest.fixture
def use_chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def install(double: FakeChat) -> FakeChat:
        monkeypatch.setattr(client, "chat_once", double)
        return double

    yield install
    # A failed chat keeps its server's log for the user; the tests leave none behind.
    (Path(tempfile.gettempdir()) / f"vllm-mcp-chat-{os.getpid()}.log").unlink(missing_ok=True)


def test_chat_streams_the_answer_on_stdout(use_chat: Any) -> None:
    chat = use_chat(FakeChat(["Hello", ", world"]))
    result = invoke("chat", "hi", "--max-tokens", "5", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    assert "[fake-model: 2 tokens" in result.stderr
    (call,) = chat.calls
    assert call["question"] == "hi" and call["max_tokens"] == 5 and call["seed"] == 1
    assert call["command"][1:] == ["-m", "vllm_mcp", "serve"]
    assert not Path(call["env"]["VLLM_MCP_LOG_FILE"]).exists()  # removed after a good answer


def test_chat_shows_the_load_phases_as_plain_lines_when_not_on_a_terminal(use_chat: Any) -> None:
    statuses = [
        {"state": "loading", "phase": "importing", "phase_s": 1.0, "load_s": 1.0},
        {"state": "loading", "phase": "importing", "phase_s": 2.0, "load_s": 2.0},
        {"state": "loading", "phase": "compiling", "phase_s": 40.2, "load_s": 95.0},
        {"state": "ready", "phase": "ready", "phase_s": 0.1, "load_s": 130.4},
    ]
    use_chat(FakeChat(["Paris"], statuses=statuses))
    result = invoke("chat", "hi")
    assert result.exit_code == 0 and result.stdout == "Paris\n"
    lines = result.stderr.splitlines()
    assert "several minutes on a CPU" in lines[0] and "about a minute" not in result.stderr
    assert lines[1:4] == [
        PREFIX + "importing vLLM, 1 s so far (load: 1 s)",  # once per phase, not per poll
        PREFIX + "compiling the model, 40 s so far (load: 95 s)",
        PREFIX + "model ready after 130 s",
    ]


def test_chat_task_shows_the_tasks_states_as_plain_lines_when_not_on_a_terminal(use_chat: Any) -> None:
    task = {"taskId": "1a2b3c4d5e6f", "status": "working"}
    tasks = [
        task,
        {**task, "statusMessage": "generating: 10 of at most 400 tokens"},
        {**task, "statusMessage": "generating: 80 of at most 400 tokens"},
        {**task, "status": "completed", "statusMessage": "finished: 400 tokens"},
    ]
    chat = use_chat(FakeChat(["Paris"], tasks=tasks))
    result = invoke("chat", "hi", "--task")
    assert result.exit_code == 0 and result.stdout == "Paris\n"
    assert [line for line in result.stderr.splitlines() if "task " in line] == [
        PREFIX + "task 1a2b3c4d working",  # once per status, not per poll
        PREFIX + "task 1a2b3c4d completed: finished: 400 tokens",
    ]
    assert callable(chat.calls[0]["on_task"])
    chat_without = use_chat(FakeChat(["Paris"]))
    assert invoke("chat", "hi").exit_code == 0 and "on_task" not in chat_without.calls[0]


def test_chat_sends_image_files_inline_and_urls_as_they_are(use_chat: Any, tmp_path: Path) -> None:
    picture = tmp_path / "cat.PNG"
    picture.write_bytes(b"\x89PNG not checked here: the server reads it")
    chat = use_chat(FakeChat(["A cat"]))
    result = invoke("chat", "what is it?", "--image", str(picture), "--image", "https://img.example/c.jpg")
    assert result.exit_code == 0, result.stderr
    inline = "data:image/png;base64," + base64.b64encode(picture.read_bytes()).decode()
    assert chat.calls[0]["images"] == [
        {"type": "image_url", "image_url": {"url": inline}},
        {"type": "image_url", "image_url": {"url": "https://img.example/c.jpg"}},
    ]
    assert invoke("chat", "hi").exit_code == 0 and chat.calls[1]["images"] == []


def test_chat_image_that_is_no_image_file_exits_2_naming_it(use_chat: Any, tmp_path: Path) -> None:
    chat = use_chat(FakeChat())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert_error(
        invoke("chat", "hi", "--image", str(notes)), 2, f"Invalid value for --image: {notes}: not a .png"
    )
    missing = tmp_path / "gone.jpg"
    assert_error(invoke("chat", "hi", "--image", str(missing)), 2, f"{missing}: cannot read it")
    assert chat.calls == []  # refused before any server starts


def test_chat_bad_settings_exit_2_before_starting_a_server(use_chat: Any) -> None:
    chat = use_chat(FakeChat())
    assert_error(invoke("chat", "hi", VLLM_MAX_SESSIONS="0"), 2, "invalid VLLM_MAX_SESSIONS='0'")
    assert_error(invoke("chat", "hi", "--model", ""), 2, "invalid VLLM_MODEL_NAME=''")
    assert chat.calls == []


def test_chat_tool_error_exits_1_with_the_servers_log(use_chat: Any) -> None:
    use_chat(FakeChat([], error=client.ChatFailed("model failed: out of memory"), server_log="a\nb\nlast\n"))
    result = invoke("chat", "hi")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert PREFIX + "model failed: out of memory" in lines
    assert lines[-4].startswith(PREFIX + "the server's log is ") and lines[-3:] == ["  a", "  b", "  last"]
    assert "Traceback" not in result.stderr


def test_chat_never_shows_a_stale_log_of_an_earlier_chat(use_chat: Any) -> None:
    stale = Path(tempfile.gettempdir()) / f"vllm-mcp-chat-{os.getpid()}.log"
    stale.write_text("an old run's line\n")  # a failed chat keeps its log; pids are reused
    use_chat(FakeChat([], error=client.ChatFailed("no"), server_log="this run's line\n"))
    result = invoke("chat", "hi")
    assert result.exit_code == 1
    assert "this run's line" in result.stderr and "an old run's line" not in result.stderr
    stale.unlink()


def test_chat_unexpected_client_failure_is_one_line_exit_1(use_chat: Any) -> None:
    use_chat(FakeChat([], error=ConnectionResetError("the server closed its output")))
    result = invoke("chat", "hi")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        PREFIX + "chat failed: ConnectionResetError: the server closed its output"
    )


# --- doctor ------------------------------------------------------------------------------


@pytest.fixture
def doctor_finds(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run_checks`` replaced by one that reports the given statuses (no machine probed)."""

    def install(*statuses: str) -> None:
        checks = [doctor.Check(f"check{i}", s, f"{s} here") for i, s in enumerate(statuses)]  # type: ignore[arg-type]
        monkeypatch.setattr(
            doctor, "run_checks", lambda probes, smoke=False, smoke_status=None: doctor.Report(checks)
        )

    return install


def test_doctor_failed_check_report_on_stdout_summary_on_stderr(doctor_finds: Any) -> None:
    doctor_finds("ok", "fail", "warn", "fail")
    result = invoke("doctor")
    assert result.exit_code == 1
    assert "FAIL  check1" in result.stdout and result.stdout.endswith("2 failed\n")
    assert result.stderr == PREFIX + "doctor: 2 check(s) failed: check1, check3\n"
    as_json = invoke("doctor", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ok"] is False
    assert as_json.stderr.startswith(PREFIX + "doctor: 2 check(s) failed")


def test_doctor_warnings_do_not_fail(doctor_finds: Any) -> None:
    doctor_finds("ok", "warn")
    result = invoke("doctor")
    assert result.exit_code == 0 and result.stderr == ""


# --- prefetch ------------------------------------------------------------------------------


def test_prefetch_failure_exits_1_one_line() -> None:
    lines = assert_error(invoke("prefetch", "org/absent", "--quiet"), 1, "HF_HUB_OFFLINE is set")
    assert len(lines) == 1 and PrefetchError.exit_code == 1  # the status is the class's
    assert_error(invoke("prefetch", "embedded", "--revision", "v1"), 1, "drop --revision")


def test_prefetch_bad_settings_exit_2() -> None:
    assert_error(invoke("prefetch", "org/absent", VLLM_DTYPE="half"), 2, "invalid VLLM_DTYPE='half'")


# --- config ---------------------------------------------------------------------------------


@pytest.fixture
def no_vllm_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip importing vLLM for its names and platform (seconds of a test worker): none are used here."""
    monkeypatch.setattr(cli_config, "engine_names", frozenset)
    monkeypatch.setattr(cli_config, "engine_arg_names", frozenset)
    monkeypatch.setattr(cli_config, "engine_platform", lambda: ("unknown", ""))


def test_config_validate_findings_on_stdout_summary_on_stderr(no_vllm_names: None) -> None:
    result = invoke("config", "validate", VLLM_MCP_MAX_QUEUE="-1")
    assert result.exit_code == 1
    assert result.stdout.startswith("environment: invalid VLLM_MCP_MAX_QUEUE='-1'")
    assert result.stderr == PREFIX + "invalid configuration: environment\n"


def test_config_validate_unreadable_file_is_a_finding(tmp_path: Path) -> None:
    broken = tmp_path / "broken.env"
    broken.write_text("this is not an env file\n")
    result = invoke("config", "validate", str(broken))
    assert result.exit_code == 1
    assert result.stdout == f"{broken}:1: expected KEY=value\n"
    assert result.stderr == f"{PREFIX}{broken}: cannot be read as a configuration\n"


def test_config_show_bad_settings_exit_2() -> None:
    assert_error(invoke("config", "show", "--json", VLLM_DTYPE="half"), 2, "invalid VLLM_DTYPE='half'")


def test_config_show_never_shows_a_session_store_password(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-hunter2\n")
    url = "postgresql://mcp@db.example:5432/sessions"
    shown = invoke(
        "config",
        "show",
        "--json",
        VLLM_MCP_SESSION_STORE=url,
        VLLM_MCP_SESSION_STORE_PASSWORD_FILE=str(secret),
    )
    assert shown.exit_code == 0 and url in shown.stdout and "hunter2" not in shown.stdout
    refused = invoke("config", "show", VLLM_MCP_SESSION_STORE="postgresql://mcp:hunter2-hunter2@db/sessions")
    lines = assert_error(refused, 2, "VLLM_MCP_SESSION_STORE_PASSWORD_FILE")
    assert "hunter2" not in "".join(lines)
    assert_error(
        invoke("config", "show", VLLM_MCP_SESSION_STORE="redis://cache/0"), 2, "unknown session store scheme"
    )


def test_config_show_never_shows_a_url_password_however_spelt() -> None:
    for url in (
        "postgresql://mcp@db/sessions?pass%77ord=hunter2-hunter2",
        "postgresql://mcp@db/sessions?PASSWORD=hunter2-hunter2",
    ):
        for fmt in ((), ("--json",)):
            lines = assert_error(invoke("config", "show", *fmt, VLLM_MCP_SESSION_STORE=url), 2, "password")
            assert "hunter2" not in "".join(lines)


def test_config_show_masks_secret_engine_arguments() -> None:
    args = json.dumps(
        {
            "hf_token": "hf_abcdefSekrit1",
            "max_num_batched_tokens": 512,
            "hf_overrides": {"api_key": "Sekrit2"},
        }
    )
    for fmt in ((), ("--json",)):
        shown = invoke("config", "show", *fmt, VLLM_MCP_ENGINE_ARGS=args)
        assert shown.exit_code == 0, shown.stderr
        assert "Sekrit" not in shown.stdout and "<hidden>" in shown.stdout
        assert "512" in shown.stdout  # a token count is no secret
    # Not JSON: the error cannot tell its secrets apart, so it shows none of it.
    broken = '{"hf_token": "hf_abcdefSekrit1",'
    lines = assert_error(invoke("config", "show", VLLM_MCP_ENGINE_ARGS=broken), 2, "VLLM_MCP_ENGINE_ARGS")
    assert "Sekrit" not in "".join(lines)


def test_the_start_log_masks_secret_engine_arguments() -> None:
    settings = Settings.load(
        environ={"VLLM_MCP_ENGINE_ARGS": '{"hf_token": "hf_SECRET", "revision": "main"}'}
    )
    assert settings.public_dict()["engine_args"] == {"hf_token": "<hidden>", "revision": "main"}
    assert settings.engine_args["hf_token"] == "hf_SECRET"  # the engine still gets it


# --- what nobody expected --------------------------------------------------------------------


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Settings, "load_with_sources", broken)
    lines = assert_error(invoke("config", "show"), 1, "unexpected error: RuntimeError: boom")
    assert "--debug" in lines[-1]
    debug = invoke("--debug", "config", "show")
    assert debug.exit_code == 1 and debug.stdout == ""
    assert "Traceback" in debug.stderr and 'raise RuntimeError("boom")' in debug.stderr
    assert "Traceback" not in invoke("config", "show").stderr  # --debug does not stick


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(Settings, "load_with_sources", interrupted)
    result = invoke("config", "show")
    assert result.exit_code == 130 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [PREFIX + "interrupted"]


# --- main() in a real process --------------------------------------------------------------------


def clean_os_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}


def run_main(
    *args: str, env: dict[str, str] | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    base = clean_os_environ()
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "vllm_mcp", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=ROOT,
    )


def test_main_exit_statuses_in_a_real_process(tmp_path: Path) -> None:
    bad = run_main("config", "show", env={"VLLM_DTYPE": "half", "VLLM_MAX_SESSIONS": "0"})
    assert bad.returncode == 2 and bad.stdout == ""
    assert [line[: len(PREFIX)] for line in bad.stderr.splitlines()] == [PREFIX, PREFIX]
    ok = run_main("config", "show", "--json", env={"VLLM_MCP_CACHE_DIR": str(tmp_path)})
    assert ok.returncode == 0 and ok.stderr == "" and json.loads(ok.stdout)


def test_main_unexpected_error_has_no_traceback_in_a_real_process() -> None:
    code = (
        "import sys, vllm_mcp.cli, vllm_mcp.config.settings as c\n"
        "sys.argv = ['vllm-mcp', 'config', 'show']\n"
        "def boom(*a, **k): raise ValueError('no such thing')\n"
        "c.Settings.load_with_sources = boom\n"
        "vllm_mcp.cli.main()\n"
    )
    proc = run_main(code=code, env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == PREFIX + "unexpected error: ValueError: no such thing"


def test_a_reader_that_went_away_is_not_an_error_worth_a_traceback() -> None:
    """``vllm-mcp config show | head -1``: the pipe closes early; exit 1, nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "vllm_mcp", "config", "show"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**clean_os_environ(), "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 1 and proc.stderr == ""
