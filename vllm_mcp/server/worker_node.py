"""A worker node: this machine's share of a model that spans several (``vllm-mcp worker``).

The head node (``VLLM_NODE_RANK=0``) runs ``vllm-mcp serve``, which holds the engine core and
answers MCP; every other node runs only vLLM workers, which the head drives over
torch.distributed at ``VLLM_MASTER_ADDR:VLLM_MASTER_PORT`` (docs/multinode.md). This process
logs like the server, and stops its worker processes on SIGTERM/SIGINT. When they exit on their
own, or when the head's rendezvous port stops answering (vLLM's workers do not notice that
the head is gone; they would wait for it for good), it exits 1, so its supervisor starts it again
to wait for the next head.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

from vllm_mcp import __version__
from vllm_mcp import logging as vlogging
from vllm_mcp.config import multinode
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import ExitCode, Stop, exit_code_of

log = logging.getLogger(__name__)

HEAD_CHECK_S = 5.0  # how often the head's rendezvous port is tried
HEAD_MISSES = 3  # refused or silent this many times in a row: the head is gone


def _stop(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop: the second signal must not cut it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)  # vLLM's wait for its workers ends there


def head_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether the head's rendezvous port (torch.distributed's store, kept open while the head's
    workers live) accepts a connection; a bare connect and close, which the store ignores."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _stop_main_thread() -> None:
    """SIGTERM to the main thread: a real signal ends its wait for the workers (EINTR)."""
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)


class HeadWatch:
    """A daemon thread that stops the worker node once the head's rendezvous port is gone."""

    def __init__(
        self,
        host: str,
        port: int,
        interval: float = HEAD_CHECK_S,
        misses: int = HEAD_MISSES,
        on_gone: Callable[[], None] = _stop_main_thread,
    ) -> None:
        self.host, self.port, self.interval, self.misses = host, port, interval, misses
        self.on_gone = on_gone
        self.gone = False
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="head-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        missed = 0
        while not self._stopped.wait(self.interval):
            missed = 0 if head_answers(self.host, self.port) else missed + 1
            if missed >= self.misses:
                self.gone = True
                log.error(
                    "the head node's rendezvous port stopped answering; stopping this worker node",
                    extra={"master": f"{self.host}:{self.port}", "tries": missed},
                )
                self.on_gone()
                return


def run(settings: Settings) -> int:
    """Serve this node's workers until a signal or until they exit; the exit status."""
    from vllm_mcp.engine import core as engine
    from vllm_mcp.engine.environment import prepare_process_environment

    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    prepare_process_environment(settings)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node = multinode.describe(settings)
    log.info(
        "worker node starting", extra={"version": __version__, **node, "settings": settings.public_dict()}
    )
    watch = HeadWatch(str(settings.master_addr), settings.master_port)
    try:
        engine.run_worker(settings, on_ready=watch.start)
    except Stop as stop:
        reason = "the head node is gone" if watch.gone else f"signal {stop}"
        log.info("worker node stopped", extra={"reason": reason})
        code: int = ExitCode.FAILURE if watch.gone else ExitCode.OK
    except Exception as e:  # one clear line, no traceback
        log.critical("worker node failed", extra={"error": f"{type(e).__name__}: {e}", **node})
        code = exit_code_of(e)
    else:
        log.error("worker processes exited (the head node stopped?); exiting to be restarted", extra=node)
        code = ExitCode.FAILURE
    finally:
        watch.stop()
        logging.shutdown()
        pump.close()
    return code
