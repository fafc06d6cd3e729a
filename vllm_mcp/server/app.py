"""The server process: engine, tools, sessions and metrics behind one transport.

It loads the model in the background (the transport answers meanwhile), and shuts down
in one way whatever the trigger (SIGTERM/SIGINT, end of input, the engine dying): stop
taking calls, give in-flight calls ``VLLM_MCP_SHUTDOWN_GRACE`` seconds, abort the rest,
stop the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllm_mcp import __version__
from vllm_mcp import logging as vlogging
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.core import Engine, EngineState, prepare_process_environment
from vllm_mcp.engine.load_phase import vllm_info_line
from vllm_mcp.metrics import Metrics
from vllm_mcp.protocol import build_server, make_transport
from vllm_mcp.protocol.transport import TransportSetupError
from vllm_mcp.sessions import SessionStoreError, open_store, open_task_store
from vllm_mcp.tools.handlers import Tools
from vllm_mcp.tools.tasks import TaskRunner

if TYPE_CHECKING:
    from vllm_mcp.server.frontends import Worker

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ENGINE_DIED, EXIT_CONFIG = 0, 1, 2

"""Set when shutdown cut a model load short: the exit then skips interpreter teardown."""


@dataclass
class _Shutdown:
    reason: str = ""
    exit_code: int = EXIT_OK
    started: bool = False


async def _serve(settings: Settings, pump: vlogging.LogPump, worker: Worker | None = None) -> int:
    if worker is None:
        transport = make_transport(settings)
        engine = Engine(settings, recent_log_lines=pump.tail)
    else:  # one of VLLM_MCP_HTTP_WORKERS front ends: the parent's socket and engine core
        transport = make_transport(settings, worker.listening)
        engine = Engine(settings, recent_log_lines=pump.tail, client=worker.client)
    pump.observers.append(engine.load.observe_log_line)
    metrics = Metrics(
        engine.model_name,
        settings.metrics_textfile,
        settings.metrics_interval,
        worker=worker.index if worker else None,
    )
    # Before the model loads: a store that cannot be reached refuses the start at once.
    sessions = await open_store(settings, on_evict=metrics.session_evicted)
    metrics.set_sessions(await sessions.count())
    tools = Tools(settings, engine, sessions, metrics)
    task_store = await open_task_store(settings)  # beside the sessions: the same place
    tasks = TaskRunner(
        task_store,
        settings.task_ttl,
        settings.max_task_seconds,
        settings.max_tasks_per_caller,
        metrics.set_tasks,
        settings.task_lease_seconds,
    )
    server = build_server(tools, tasks)
    shutdown = _Shutdown()
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def drain(grace: float) -> None:
        tasks_drained = loop.create_task(tasks.drain(grace))  # tasks get the same grace
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(transport.wait_drained(), grace)
        if transport.in_flight:
            log.warning(
                "shutdown grace over; failing unfinished calls",
                extra={"unfinished": transport.in_flight},
            )
            tools.abort_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transport.wait_drained(), 5)
        await tasks_drained
        transport.close()

    def begin_shutdown(reason: str, exit_code: int = EXIT_OK, grace: float | None = None) -> None:
        if shutdown.started:
            if reason.startswith("signal"):  # a second signal: stop waiting
                tools.abort_all()
            return
        shutdown.started, shutdown.reason, shutdown.exit_code = True, reason, exit_code
        log.info("shutting down", extra={"reason": reason, "in_flight": transport.in_flight})
        transport.stop_intake()
        tools.stop_intake()
        tasks.stop_intake()
        spawn(drain(settings.shutdown_grace if grace is None else grace))

    async def watch_engine() -> None:
        while True:
            await asyncio.sleep(0.5)
            metrics.set_engine_state(engine.state.value)
            metrics.set_log_lines_dropped(pump.dropped_lines)
            if engine.state is EngineState.READY and engine.errored:
                log.error("the vLLM engine died; exiting so the supervisor restarts the server")
                engine.state, engine.failure = EngineState.FAILED, "the vLLM engine process died"
                begin_shutdown("engine died", EXIT_ENGINE_DIED, grace=2.0)
                return

    transport.on_eof = lambda: begin_shutdown("end of input")
    transport.health = lambda: "stopping" if shutdown.started else engine.state.value
    transport.load_status = engine.load.status
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, begin_shutdown, f"signal {signal.Signals(sig).name}")

    log.info("starting", extra={"version": __version__, "settings": settings.public_dict()})
    for warning in settings.warnings():
        log.warning("a setting limits what calls get", extra={"warning": warning})
    metrics.set_engine_state(EngineState.LOADING.value)
    engine_task = loop.create_task(engine.start())
    spawn(watch_engine())
    spawn(metrics.run())
    try:
        await transport.serve(server)
    finally:
        for task in list(background):
            task.cancel()
        if not engine_task.done():
            engine_task.cancel()  # a load in progress stops now, its processes with it
            with contextlib.suppress(asyncio.CancelledError):
                await engine_task
        await engine.aclose()
        metrics.set_engine_state(engine.state.value)
        metrics.write()
        await tasks.aclose()  # a task still running ends "failed", saying why
        await task_store.aclose()
        await sessions.aclose()
    log.info("stopped", extra={"reason": shutdown.reason or "input closed"})
    return shutdown.exit_code


def run(settings: Settings, worker: Worker | None = None) -> int:
    """Serve MCP until end of input or a signal; the exit status.

    ``worker``: this process is one of ``VLLM_MCP_HTTP_WORKERS`` front ends (vllm_mcp.server.frontends).
    """
    # vLLM logs at INFO so that its load phases can be read; its INFO lines are shown at DEBUG.
    pump = vlogging.LogPump(settings.log_file, drop=None if settings.log_level == "DEBUG" else vllm_info_line)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    try:
        code = asyncio.run(_serve(settings, pump, worker))
    except TransportSetupError as e:  # before the engine starts: a configuration problem
        log.critical(str(e))
        code = EXIT_CONFIG
    except SessionStoreError as e:  # before the engine starts: unreachable, or an unknown schema
        log.critical(str(e))
        code = 1  # not a configuration error: a supervisor may retry once the database is up
    except Exception as e:  # last line of defence: one clear log line, no traceback on stdout
        log.critical("server failed", extra={"error": describe_failure(e)})
        code = 1  # every failure exits 1 (docs/cli.md)
    finally:
        logging.shutdown()
        pump.close()
    return code


def describe_failure(error: BaseException) -> str:
    """What failed and where, for the one log line: a task group's own message names neither."""
    inner = getattr(error, "exceptions", None)  # an exception group (a backport's on 3.10)
    if isinstance(inner, (list, tuple)) and inner:
        return "; ".join(describe_failure(e) for e in inner)
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" (at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})" if tb else ""
    return f"{type(error).__name__}: {error}{where}"


def exit_now(code: int) -> None:
    """Exit now, without interpreter teardown: ``run`` has closed all the server owns.

    What teardown would still do can block for good or for long: flushing stderr into a
    pipe that a gateway never reads (FluidMCP), vLLM's and torch's finalizers after a
    cancelled load (~10 s here), joining threads stuck on a peer that stopped reading our
    output. The protocol stream is written unbuffered, sessions, metrics and logs are closed.
    """
    os._exit(code)
