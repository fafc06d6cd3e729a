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
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllm_mcp import __version__
from vllm_mcp import logging as vlogging
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.core import Engine, EngineState
from vllm_mcp.engine.environment import prepare_process_environment
from vllm_mcp.engine.load_phase import vllm_info_line
from vllm_mcp.engine.model_set import ModelSet
from vllm_mcp.errors import EngineDead, ExitCode, SetupError, exit_code_of
from vllm_mcp.metrics import Metrics
from vllm_mcp.protocol import ServerHooks, build_server, make_transport
from vllm_mcp.sessions import SessionStore, TaskStore, open_store, open_task_store
from vllm_mcp.tools.handlers import Tools
from vllm_mcp.tools.tasks import TaskRunner

log = logging.getLogger(__name__)

# The exit statuses are the error classes' (vllm_mcp.errors); these names are what _serve uses.
EXIT_OK, EXIT_ENGINE_DIED = ExitCode.OK, EngineDead.exit_code

"""Set when shutdown cut a model load short: the exit then skips interpreter teardown."""


@dataclass(frozen=True)
class FrontEnd:
    """What makes a ``Server`` one of ``VLLM_MCP_HTTP_WORKERS`` front ends (frontends.py).

    Its index, the listening socket its parent bound, and its client of the parent's vLLM
    engine core.
    """

    index: int
    listening: socket.socket
    client: dict[str, Any]


class Server:
    """One MCP server process from start-up to exit; uvicorn's ``Server`` is the model.

    ``serve`` runs ``startup`` (the transport binds and reads its files, the session store
    opens, the model starts loading in the background), the transport until it is closed,
    then ``shutdown`` (the engine stops, metrics and sessions are closed). Every trigger
    ends through the same two flags:

    - ``should_exit`` (SIGTERM/SIGINT, end of input, the engine dying): stop taking calls,
      give in-flight ones ``VLLM_MCP_SHUTDOWN_GRACE`` seconds, abort the rest, close the
      transport;
    - ``force_exit`` (a second signal): stop waiting, abort the calls still in flight.
    """

    def __init__(self, settings: Settings, pump: vlogging.LogPump, front_end: FrontEnd | None = None) -> None:
        self.settings = settings
        self.pump = pump
        self.should_exit = False
        self.force_exit = False
        self.exit_code: int = EXIT_OK
        self.reason = ""
        self._forced = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._engine_task: asyncio.Task[None] | None = None
        hooks = ServerHooks(on_eof=self.on_end_of_input, health=self.health, load_status=self.load_status)
        if front_end is None:
            self.transport = make_transport(settings, hooks)
            # One engine per model (VLLM_MCP_MODELS); they load in file order, so all but the
            # first wait their turn.
            self.models = ModelSet(
                [
                    Engine(settings, recent_log_lines=pump.tail, spec=spec, queued=i > 0)
                    for i, spec in enumerate(settings.models)
                ]
            )
        else:  # the parent's socket and engine core
            self.transport = make_transport(settings, hooks, front_end.listening)
            self.models = ModelSet([Engine(settings, recent_log_lines=pump.tail, client=front_end.client)])
        self.engine = self.models.default
        several = settings.models_file is not None
        self.metrics = Metrics(
            self.engine.name if several else self.engine.model_name,
            settings.metrics_textfile,
            settings.metrics_interval,
            worker=front_end.index if front_end else None,
        )
        if several:  # a model label per served model (VLLM_MCP_MODELS)
            self.metrics.add_models(self.models.names())
        self.sessions: SessionStore  # these from startup: the stores open asynchronously
        self.task_store: TaskStore
        self.tasks: TaskRunner
        self.tools: Tools
        self.mcp: Any  # the SDK's Server over the tools, which every transport serves

    async def serve(self) -> int:
        """Start, serve until the transport closes, shut down; the exit status."""
        await self.startup()
        try:
            await self.transport.serve(self.mcp)
        finally:
            await self.shutdown()
        log.info("stopped", extra={"reason": self.reason or "input closed"})
        return self.exit_code

    async def startup(self) -> None:
        """What can refuse the start does so before the model loads: the transport, the store."""
        await self.transport.startup()  # TransportSetupError: a port in use, a bad token file
        self.pump.observers.append(self.models.observe_log_line)
        # A store that cannot be reached refuses the start at once (SessionStoreError).
        self.sessions = await open_store(self.settings, on_evict=self.metrics.session_evicted)
        self.metrics.set_sessions(await self.sessions.count())
        self.tools = Tools(self.settings, self.models, self.sessions, self.metrics)
        self.task_store = await open_task_store(self.settings)  # beside the sessions: the same place
        s = self.settings
        self.tasks = TaskRunner(
            self.task_store,
            s.task_ttl,
            s.max_task_seconds,
            s.max_tasks_per_caller,
            self.metrics.set_tasks,
            s.task_lease_seconds,
        )
        self.mcp = build_server(self.tools, self.tasks)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_signal, signal.Signals(sig))
        log.info("starting", extra={"version": __version__, "settings": self.settings.public_dict()})
        for warning in self.settings.warnings():
            log.warning("a setting limits what calls get", extra={"warning": warning})
        self.metrics.set_engine_state(EngineState.LOADING.value)
        self._engine_task = loop.create_task(self.models.start())
        self._spawn(self._watch_engine())
        self._spawn(self.metrics.run())

    async def shutdown(self) -> None:
        """Stop the engine (a load in progress too) and close what the server owns."""
        for task in list(self._background):
            task.cancel()
        if self._engine_task is not None and not self._engine_task.done():
            self._engine_task.cancel()  # a load in progress stops now, its processes with it
            with contextlib.suppress(asyncio.CancelledError):
                await self._engine_task
        await self.models.aclose()
        self._engine_states()
        self.metrics.write()
        await self.tasks.aclose()  # a task still running ends "failed", saying why
        await self.task_store.aclose()
        await self.sessions.aclose()

    # --- the triggers --------------------------------------------------------------

    def exit(self, reason: str, exit_code: int = EXIT_OK, grace: float | None = None) -> None:
        """Set ``should_exit``: no new calls from now on; in-flight ones get the grace."""
        if self.should_exit:
            return
        self.should_exit, self.reason, self.exit_code = True, reason, exit_code
        log.info("shutting down", extra={"reason": reason, "in_flight": self.transport.in_flight})
        self.transport.stop_intake()
        self.tools.stop_intake()
        self.tasks.stop_intake()
        self._spawn(self._drain(self.settings.shutdown_grace if grace is None else grace))

    def handle_signal(self, sig: signal.Signals) -> None:
        """SIGTERM/SIGINT: exit; a second one while exiting sets ``force_exit``."""
        if self.should_exit:
            self.force_exit = True
            self._forced.set()
            self.tools.abort_all()
            return
        self.exit(f"signal {sig.name}")

    def on_end_of_input(self) -> None:
        self.exit("end of input")

    def health(self) -> str:
        return "stopping" if self.should_exit else self.models.state()

    def load_status(self) -> dict[str, Any]:
        return self.models.load_status()

    # --- background work -----------------------------------------------------------

    async def _drain(self, grace: float) -> None:
        """Wait for in-flight calls up to ``grace`` (``force_exit`` ends the wait), abort the rest.

        Tasks running in the background get the same grace (``TaskRunner.drain``)."""
        tasks_drained = asyncio.ensure_future(self.tasks.drain(grace))
        waits = [
            asyncio.ensure_future(self.transport.wait_drained()),
            asyncio.ensure_future(self._forced.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.transport.in_flight:
            if not self.force_exit:
                log.warning(
                    "shutdown grace over; failing unfinished calls",
                    extra={"unfinished": self.transport.in_flight},
                )
            self.tools.abort_all()
            await self.transport.wait_drained(5)
        await tasks_drained
        self.transport.close()

    async def _watch_engine(self) -> None:
        """Metrics follow the engine; the engine core dying ends the server (exit 1)."""
        while True:
            await asyncio.sleep(0.5)
            self._engine_states()
            self.metrics.set_log_lines_dropped(self.pump.dropped_lines)
            if (dead := self.models.died()) is not None:
                log.error(
                    "the vLLM engine died; exiting so the supervisor restarts the server",
                    extra={"model": dead.name},
                )
                self.exit("engine died", EXIT_ENGINE_DIED, grace=2.0)
                return

    def _engine_states(self) -> None:
        """The state series: the server's (the default label), and each model's with several."""
        self.metrics.set_engine_state(self.models.state())
        if self.settings.models_file is not None:
            for engine in self.models:
                self.metrics.set_engine_state(engine.state.value, engine.name)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def run(settings: Settings, front_end: FrontEnd | None = None) -> int:
    """Serve MCP until end of input or a signal; the exit status.

    ``front_end``: this process is one of ``VLLM_MCP_HTTP_WORKERS`` front ends (frontends.py).
    """
    # vLLM logs at INFO so that its load phases can be read; its INFO lines are shown at DEBUG.
    pump = vlogging.LogPump(settings.log_file, drop=None if settings.log_level == "DEBUG" else vllm_info_line)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    try:
        code = asyncio.run(Server(settings, pump, front_end).serve())
    except SetupError as e:  # before the engine starts: a bad setting (exit 2), a store down (1)
        log.critical(str(e))
        code = e.exit_code
    except Exception as e:  # last line of defence: one clear log line, no traceback on stdout
        log.critical("server failed", extra={"error": describe_failure(e)})
        code = exit_code_of(e)  # every other failure exits 1 (docs/cli.md)
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
