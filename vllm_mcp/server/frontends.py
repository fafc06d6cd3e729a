"""``VLLM_MCP_HTTP_WORKERS=N``: N HTTP front-end processes on one vLLM engine core.

One front end is one Python thread: on a GPU host it, not the engine, can be what caps the
messages per second (docs/performance.md, "Front-end workers"). As ``vllm serve
--api-server-count N`` does, and with vLLM's own machinery (``engine.shared_engine_core``),
this parent process binds the listening socket (a port in use is one clear error before the
engine starts), starts the engine core and N workers, each serving the usual HTTP transport on
that shared socket with an ``AsyncLLM`` client of its own, and then only supervises:

- SIGTERM/SIGINT: every worker drains (in-flight calls finish, new ones get 503, as with one
  process), then the engine core stops; exit 0.
- a worker or the engine core that exits on its own takes the whole service down (the other
  workers drain), exit 1: systemd restarts it rather than leaving a half-working server.

Sessions are shared through ``VLLM_MCP_SESSION_STORE`` (config.py refuses N > 1 without it).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing.connection
import os
import signal
import socket
from types import FrameType
from typing import Any

from vllm_mcp import logging as vlogging
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ExitCode, SetupError, Stop, exit_code_of
from vllm_mcp.server import app

log = logging.getLogger(__name__)


def serve_worker(
    listen_address: str, listening: socket.socket, settings: Settings, client: dict[str, Any]
) -> None:
    """A worker process (vLLM's ``APIServerProcessManager`` target): ``app.run`` as front end K."""
    index = int(client["client_index"])
    tag_logs(index)
    app.exit_now(app.run(settings, app.FrontEnd(index, listening, client)))


def tag_logs(index: int) -> None:
    """Every log record of this process carries ``worker``: which front end said it."""
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.worker = index
        return record

    logging.setLogRecordFactory(factory)


def run(settings: Settings) -> int:
    """Start the engine core and ``settings.http_workers`` front ends, supervise them; the exit status."""
    from vllm_mcp.engine.core import root_cause, shared_engine_core
    from vllm_mcp.engine.environment import prepare_process_environment
    from vllm_mcp.protocol.http import bind_socket

    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    try:
        listening = _listen(settings, bind_socket)
    except SetupError as e:  # the port, the token file: exit 2
        log.critical(str(e))
        pump.close()
        return e.exit_code
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    state = {"starting": True, "signal": ""}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if state["signal"]:
            return
        state["signal"] = signal.Signals(signum).name
        with contextlib.suppress(OSError):
            os.write(wake_write, b"x")
        if state["starting"]:
            raise Stop  # out of vLLM's blocking start-up barrier

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info(
        "starting HTTP workers", extra={"workers": settings.http_workers, "port": listening.getsockname()[1]}
    )
    code: int = ExitCode.OK
    try:
        with shared_engine_core(settings, settings.http_workers, listening, serve_worker) as processes:
            state["starting"] = False
            log.info("engine core ready", extra={"pids": {p.name: p.pid for p in processes}})
            code = _supervise(processes, wake_read, state)
            log.info("shutting down", extra={"reason": state["signal"] or "a process exited"})
    except Stop:
        log.info("shutting down while loading", extra={"reason": f"signal {state['signal']}"})
    except Exception as e:  # the engine failed to start, or a worker died during the start
        if state["signal"]:
            log.info("stopped during start-up", extra={"reason": f"signal {state['signal']}"})
        else:
            cause = root_cause(pump.tail())
            log.critical(
                "the HTTP workers failed to start" if state["starting"] else "the HTTP workers failed",
                extra={"error": f"{type(e).__name__}: {e}", **({"root_cause": cause} if cause else {})},
            )
            code = exit_code_of(e)
    finally:
        listening.close()
        log.info("stopped", extra={"exit_code": code})
        logging.shutdown()
        pump.close()
    return code


def _listen(settings: Settings, bind: Any) -> socket.socket:
    """The shared listening socket, after the token file proved readable (``TokenFileError``,
    ``HttpSetupError``: both exit 2)."""
    if settings.http_token_file is not None:
        from vllm_mcp.protocol.auth import TokenFileVerifier

        TokenFileVerifier(settings.http_token_file)
    listening = bind(settings.http_host, settings.http_port)
    listening.set_inheritable(True)
    return listening


def _supervise(processes: list[Any], wake: int, state: dict[str, Any]) -> int:
    """Wait for a signal (exit 0) or for any process to exit on its own (exit 1)."""
    by_sentinel = {p.sentinel: p for p in processes}
    ready = multiprocessing.connection.wait([*by_sentinel, wake])
    if state["signal"]:
        return ExitCode.OK
    gone = [by_sentinel[s] for s in ready if s in by_sentinel]
    for p in gone:
        log.error(
            "a server process exited; stopping the service so its supervisor restarts it",
            extra={"process_name": p.name, "pid": p.pid, "exit_code": p.exitcode},
        )
    return ExitCode.FAILURE
