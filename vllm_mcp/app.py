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
from typing import Any

from vllm_mcp import __version__
from vllm_mcp import logging as vlogging
from vllm_mcp.config import Settings
from vllm_mcp.engine import Engine, EngineState, prepare_process_environment
from vllm_mcp.metrics import Metrics
from vllm_mcp.protocol import build_server, make_transport
from vllm_mcp.protocol.transport import TransportSetupError
from vllm_mcp.sessions import SessionStoreError, open_store
from vllm_mcp.tools import Tools

log = logging.getLogger(__name__)

EXIT_OK, EXIT_ENGINE_DIED, EXIT_CONFIG = 0, 1, 2

"""Set when shutdown cut a model load short: the exit then skips interpreter teardown."""


@dataclass
class _Shutdown:
    reason: str = ""
    exit_code: int = EXIT_OK
    started: bool = False


async def _serve(settings: Settings, pump: vlogging.LogPump) -> int:
    transport = make_transport(settings)
    engine = Engine(settings, recent_log_lines=pump.tail)
    metrics = Metrics(engine.model_name, settings.metrics_textfile, settings.metrics_interval)
    # Before the model loads: a store that cannot be reached refuses the start at once.
    sessions = await open_store(settings, on_evict=metrics.session_evicted)
    metrics.set_sessions(await sessions.count())
    tools = Tools(settings, engine, sessions, metrics)
    server = build_server(tools)
    shutdown = _Shutdown()
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task[Any]] = set()

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        background.add(task)
        task.add_done_callback(background.discard)

    async def drain(grace: float) -> None:
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
        await sessions.aclose()
    log.info("stopped", extra={"reason": shutdown.reason or "input closed"})
    return shutdown.exit_code


def run(settings: Settings) -> int:
    """Serve MCP until end of input or a signal; the exit status."""
    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    try:
        code = asyncio.run(_serve(settings, pump))
    except TransportSetupError as e:  # before the engine starts: a configuration problem
        log.critical(str(e))
        code = EXIT_CONFIG
    except SessionStoreError as e:  # before the engine starts: unreachable, or an unknown schema
        log.critical(str(e))
        code = 1  # not a configuration error: a supervisor may retry once the database is up
    except Exception as e:  # last line of defence: one clear log line, no traceback on stdout
        log.critical("server failed", extra={"error": f"{type(e).__name__}: {e}"})
        code = 1  # every failure exits 1 (docs/cli.md)
    finally:
        logging.shutdown()
        pump.close()
    return code


def exit_now(code: int) -> None:
    """Exit now, without interpreter teardown: ``run`` has closed all the server owns.

    What teardown would still do can block for good or for long: flushing stderr into a
    pipe that a gateway never reads (FluidMCP), vLLM's and torch's finalizers after a
    cancelled load (~10 s here), joining threads stuck on a peer that stopped reading our
    output. The protocol stream is written unbuffered, sessions, metrics and logs are closed.
    """
    os._exit(code)
