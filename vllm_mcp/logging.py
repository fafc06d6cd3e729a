"""Logs: JSON lines (python-json-logger) on stderr or a file, never able to stall the server.

Gateways such as FluidMCP pipe our stderr and never read it. Once that pipe's 64 KiB
fill, every further write would block: the Python logger, and also vLLM's engine
processes, which write to the same inherited descriptor. So ``LogPump`` points fd 2
at a pipe of our own and one thread moves its lines to the real stderr (or the log
file), writing only what the destination can take at once and dropping, and
counting, the rest. It also keeps the last lines, because vLLM reports start-up
failures only as "see root cause above", shows every line to its observers (the load
phase is read from vLLM's INFO lines) and leaves out the lines ``drop`` says to.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from vllm_mcp.config.settings import Settings
from vllm_mcp.private_files import open_private_append

_PIPE_BUF = select.PIPE_BUF if hasattr(select, "PIPE_BUF") else 512
_TAIL_LINES = 200
# Written by close() behind everything else: the pump stops there instead of waiting for the
# pipe's end, which never comes while a process we started (multiprocessing's resource
# tracker lives until we exit) still holds the inherited write end.
_END = b"\x00vllm-mcp: end of the log pump\x00"


class LogPump:
    """Owns fd 2 while the server runs; see the module docstring for why."""

    def __init__(self, log_file: Path | None = None, drop: Callable[[str], bool] | None = None) -> None:
        self.dropped_lines = 0
        self.observers: list[Callable[[str], None]] = []
        self._drop = drop
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        # 0600 (in 0700 directories it creates): log lines name callers and sessions.
        self._file = os.fdopen(open_private_append(log_file), "ab", buffering=0) if log_file else None
        sys.stderr.flush()
        self._target = os.dup(2)  # the real stderr, kept private
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read_fd = read_fd
        self._write_fd = os.dup(2)  # our own end of the pipe, for the end marker
        self._thread = threading.Thread(target=self._run, name="log-pump", daemon=True)
        self._thread.start()

    def tail(self) -> list[str]:
        return list(self._tail)

    def real_stderr(self) -> TextIO:
        """The stderr we took over, for a status line rewritten in place (lines through fd 2
        come out only once whole)."""
        return open(os.dup(self._target), "w", encoding="utf-8", errors="replace", closefd=True)

    def _run(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._read_fd, 65536)
            except OSError:
                return
            data = pending + chunk
            end = data.find(_END) if chunk else -1
            if end >= 0:
                data = data[:end]
            if not chunk or end >= 0:
                *lines, rest = data.split(b"\n")
                for line in lines:
                    self._emit(line + b"\n")
                if rest:
                    self._emit(rest + b"\n")
                return
            lines = data.split(b"\n")
            pending = lines.pop()
            if len(pending) > 65536:  # a line without end: emit what we have
                lines.append(pending)
                pending = b""
            for line in lines:
                self._emit(line + b"\n")

    def _emit(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\n")
        for observe in self.observers:
            with contextlib.suppress(Exception):  # an observer's bug must not stop the log
                observe(text)
        if self._drop is not None and self._drop(text):
            return
        self._tail.append(text)
        if self._file is not None:
            try:
                self._file.write(line)
            except OSError:
                self.dropped_lines += 1
            return
        if not _write_without_blocking(self._target, line):
            self.dropped_lines += 1

    def close(self) -> None:
        """Give fd 2 back to the real stderr and let the pump finish what it has."""
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            os.dup2(self._target, 2)
        with contextlib.suppress(OSError):
            # Behind all that was written (a pipe keeps order); a full pipe that nobody reads
            # any more cannot block us: the pump is still reading it.
            os.write(self._write_fd, _END)
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():  # a late writer now gets EPIPE instead of a full pipe
            with contextlib.suppress(OSError):
                os.close(self._read_fd)
        if self._file is not None:
            self._file.close()


def _write_without_blocking(fd: int, data: bytes) -> bool:
    """Write all of ``data`` only while ``fd`` has room; False when some was dropped.

    A pipe that select() reports writable takes at least PIPE_BUF bytes without
    blocking, so we write in pieces of that size and stop at the first refusal.
    Not using O_NONBLOCK: it would change the shared file description of a
    terminal that other programs use.
    """
    view = memoryview(data)
    while view:
        try:
            _, writable, _ = select.select([], [fd], [], 0)
        except (OSError, ValueError):
            return False
        if not writable:
            return False
        try:
            written = os.write(fd, view[:_PIPE_BUF])
        except OSError:
            return False
        view = view[written:]
    return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")
        }
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return base


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def configure(settings: Settings, stream: TextIO | None = None) -> None:
    """Configure the root logger: JSON (default) or text, at the configured level."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Libraries that are chatty at INFO; our own logger keeps the configured level.
    for name in ("httpx", "mcp", "filelock", "urllib3"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
