"""A worker node: this machine's share of a model that spans several (``vllm-mcp worker``).

The head node (``VLLM_NODE_RANK=0``) runs ``vllm-mcp serve``, which holds the engine core and
answers MCP; every other node runs only vLLM workers, which the head drives over
torch.distributed at ``VLLM_MASTER_ADDR:VLLM_MASTER_PORT`` (docs/multinode.md). This process
logs like the server, and stops its worker processes on SIGTERM/SIGINT. When they exit on their
own (the head stopped), it exits 1, so its supervisor starts it again to wait for the head.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from vllm_mcp import __version__, multinode
from vllm_mcp import logging as vlogging
from vllm_mcp.config import Settings

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE = 0, 1


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: vLLM's wait for its workers ends there."""


def _stop(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop: the second signal must not cut it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise _Stop(signal.Signals(signum).name)


def run(settings: Settings) -> int:
    """Serve this node's workers until a signal or until they exit; the exit status."""
    from vllm_mcp import engine

    pump = vlogging.LogPump(settings.log_file)
    vlogging.configure(settings)
    engine.prepare_process_environment(settings)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node = multinode.describe(settings)
    log.info(
        "worker node starting", extra={"version": __version__, **node, "settings": settings.public_dict()}
    )
    try:
        engine.run_worker(settings)
    except _Stop as stop:
        log.info("worker node stopped", extra={"reason": f"signal {stop}"})
        code = EXIT_OK
    except Exception as e:  # one clear line, no traceback
        log.critical("worker node failed", extra={"error": f"{type(e).__name__}: {e}", **node})
        code = EXIT_FAILURE
    else:
        log.error("worker processes exited (the head node stopped?); exiting to be restarted", extra=node)
        code = EXIT_FAILURE
    finally:
        logging.shutdown()
        pump.close()
    return code
