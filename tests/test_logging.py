"""The log pump and formats, in child processes that own their fd 2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, logging, os, sys
    from vllm_mcp.config.settings import Settings
    from vllm_mcp import logging as vlogging
    settings = Settings.load(environ=json.loads(sys.argv[1]))
    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    log = logging.getLogger("vllm_mcp.test")
    for i in range(int(sys.argv[2])):
        log.warning("line %d", i, extra={"n": i})
    os.write(2, b"raw write from a child process\\n")  # as vLLM's engine processes do
    pump.close()
    print(json.dumps({"dropped": pump.dropped_lines, "tail": pump.tail()[-2:]}))
    """
)


def test_a_parent_that_never_reads_stderr_cannot_stall_logging() -> None:
    # stderr is a pipe nobody reads: 64 KiB fill it, after that lines are dropped and counted.
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "{}", "20000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    result = json.loads(proc.stdout.read())  # type: ignore[union-attr]
    assert proc.wait(timeout=120) == 0
    assert result["dropped"] > 0
    assert result["tail"][-1] == "raw write from a child process"
    proc.stderr.close()  # type: ignore[union-attr]
    proc.stdout.close()  # type: ignore[union-attr]


def test_json_lines_when_stderr_is_read() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "{}", "3"], capture_output=True, text=True, timeout=120
    )
    assert json.loads(proc.stdout)["dropped"] == 0
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert [(r["level"], r["message"], r["n"]) for r in records] == [
        ("WARNING", f"line {i}", i) for i in range(3)
    ]
    assert {"time", "logger"} <= records[0].keys()


def test_text_format_for_people() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({"VLLM_MCP_LOG_FORMAT": "text"}), "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    first = proc.stderr.splitlines()[0]
    assert "WARNING vllm_mcp.test: line 0 n=0" in first and not first.startswith("{")


def test_log_file_gets_every_line_and_stderr_none(tmp_path: Path) -> None:
    log_file = tmp_path / "server.log"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({"VLLM_MCP_LOG_FILE": str(log_file)}), "500"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stderr == ""
    lines = log_file.read_text().splitlines()
    assert len(lines) == 501 and json.loads(lines[499])["message"] == "line 499"


OBSERVED = textwrap.dedent(
    """
    import json, os
    from vllm_mcp import logging as vlogging
    from vllm_mcp.engine.load_phase import LoadProgress, vllm_info_line
    progress = LoadProgress()
    pump = vlogging.LogPump(None, drop=vllm_info_line)
    pump.observers.append(progress.observe_log_line)
    for line in (
        b"(Worker pid=7) INFO 12-01 22:37:21 [cpu_model_runner.py:68] Starting to load model /m...",
        b"(Worker pid=7) WARNING 12-01 22:37:21 [utils.py:333] kept: a warning",
        b"(EngineCore pid=6) INFO 12-01 22:38:25 [shm_broadcast.py:871] dropped: no broadcast block",
        b"a line of our own",
    ):
        os.write(2, line + b"\\n")
    pump.close()
    print(json.dumps({"phase": progress.phase.value, "tail": pump.tail()}))
    """
)


def test_the_pump_shows_every_line_to_observers_and_keeps_vllms_info_lines_off_stderr() -> None:
    proc = subprocess.run([sys.executable, "-c", OBSERVED], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)
    assert result["phase"] == "loading_weights"  # read from an INFO line that stderr never shows
    assert proc.stderr.splitlines() == [
        "(Worker pid=7) WARNING 12-01 22:37:21 [utils.py:333] kept: a warning",
        "a line of our own",
    ]
    assert result["tail"] == proc.stderr.splitlines()


HELD_PIPE = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from vllm_mcp import logging as vlogging
    pump = vlogging.LogPump(None)
    # A process we started keeps the inherited write end of the pump's pipe open, as
    # multiprocessing's resource tracker does until we exit.
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    os.write(2, b"first line\\n")
    os.write(2, b"last words without a newline")
    pump.close()
    finished = not pump._thread.is_alive()
    holder.kill()
    print(json.dumps({"finished": finished, "tail": pump.tail()}))
    """
)


def test_close_ends_the_pump_while_a_child_still_holds_stderr() -> None:
    """close() stops at its own end marker, not at the pipe's end (which a child holds off)."""
    proc = subprocess.run([sys.executable, "-c", HELD_PIPE], capture_output=True, text=True, timeout=120)
    result = json.loads(proc.stdout)
    assert result["finished"], "the pump was still waiting for the pipe's end"
    assert result["tail"] == ["first line", "last words without a newline"]
    assert "end of the log pump" not in proc.stderr
    assert proc.stderr.splitlines() == ["first line", "last words without a newline"]


def test_a_log_file_it_creates_is_0600_in_0700_directories_whatever_the_umask(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "vllm-mcp" / "server.log"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({"VLLM_MCP_LOG_FILE": str(log_file)}), "3"],
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(log_file.read_text().splitlines()) == 4
    assert log_file.stat().st_mode & 0o777 == 0o600
    assert [(log_file.parents[n].stat().st_mode & 0o777) for n in (0, 1)] == [0o700, 0o700]
