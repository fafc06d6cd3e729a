"""The line that tells a person what a model load is doing, for `chat` and `doctor --smoke`.

On a terminal it is one line, rewritten in place; elsewhere (a pipe, a CI log) a plain line
each time the phase changes. It says the phase and the seconds so far, never an estimate: the
same load takes seconds on one machine and minutes on another.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from vllm_mcp.engine.load_phase import DESCRIPTIONS, Phase

PREFIX = "vllm-mcp: "


def describe(status: dict[str, Any]) -> str:
    """'compiling the model, 40 s so far (load: 95 s)' from a server's load status."""
    phase, state = status.get("phase"), status.get("state", "loading")
    load_s, phase_s = float(status.get("load_s") or 0), float(status.get("phase_s") or 0)
    if state != "loading" or phase in ("ready", "failed", "stopped"):
        return f"model {state} after {load_s:.0f} s"
    try:
        text = DESCRIPTIONS[Phase(phase)]
    except ValueError:  # a phase this client does not know (a newer server): its name
        text = str(phase or "loading")
    return f"{text}, {phase_s:.0f} s so far (load: {load_s:.0f} s)"


class StatusLine:
    """Shows load statuses as they come; ``done()`` ends the line before other output."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown_phase: str | None = None
        self._open = False

    def __call__(self, status: dict[str, Any]) -> None:
        text = PREFIX + describe(status)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open = True
        elif status.get("phase") != self._shown_phase:
            self.stream.write(text + "\n")
        self._shown_phase = status.get("phase")
        self.stream.flush()

    def done(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def describe_task(task: dict[str, Any]) -> str:
    """'task 1a2b3c4d working: generating: 120 of at most 400 tokens' from a task's state."""
    text = f"task {str(task.get('taskId', ''))[:8]} {task.get('status', 'working')}"
    message = task.get("statusMessage")
    return f"{text}: {message}" if message else text


class TaskLine(StatusLine):
    """A task's states as ``chat --task`` polls them: rewritten in place on a terminal,
    elsewhere a line each time the status changes (not at every poll)."""

    def __call__(self, task: dict[str, Any]) -> None:
        text = PREFIX + describe_task(task)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open = True
        elif task.get("status") != self._shown_phase:
            self.stream.write(text + "\n")
        self._shown_phase = task.get("status")
        self.stream.flush()
