"""How every command fails: one message on stderr prefixed ``vllm-mcp:``, one exit status.

Commands raise; the group's ``main`` (``vllm_mcp.cli``) catches once and calls ``report``,
so no command prints its own error and no user sees a traceback. ``report`` looks the error
up in one table, ``KNOWN`` (huggingface_hub's CLI error mapping is the model): what it says
on stderr, and its exit status, which for vllm-mcp's own errors and click's is the class's
``exit_code`` (the tree and its statuses: ``vllm_mcp.errors``)::

    CliError            exit 1  the command ran and failed: the message, then its details
    ConfigError         exit 2  an invalid setting, one line per problem
    VllmMcpError        its own (PrefetchError 1, TokenFileError 2, ...): the message
    click.UsageError    exit 2  a bad option or argument, and where to read the help
    KeyboardInterrupt   exit 130
    BrokenPipeError     exit 1  whoever read our output stopped (``| head``): nothing said
    anything else       exit 1  a bug: one line, and ``--debug`` shows the traceback
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from vllm_mcp.errors import EXIT_CODES, CliError, ConfigError, ExitCode, VllmMcpError

PREFIX = "vllm-mcp: "

EXIT_CODES_HELP = (
    "Exit status: "
    + "; ".join(f"{int(code)} {meaning}" for code, meaning in EXIT_CODES.items())
    + ". Each error is a line on stderr starting 'vllm-mcp:'; stdout carries only the command's output."
)

#: Set by ``--debug``: show the traceback of an unexpected error.
DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("vllm_mcp_cli_debug", default=False)


@dataclass(frozen=True)
class Known:
    """What an error of one kind says (complete stderr lines) and the status it exits with."""

    says: Callable[[Any], list[str]]
    #: None: the error's own ``exit_code`` (vllm-mcp's classes, click's exceptions).
    exit_code: int | None = None


def _said(*lines: str) -> list[str]:
    return [f"{PREFIX}{line}" for line in lines]


def _usage(error: click.UsageError) -> list[str]:
    lines = _said(error.format_message())
    if error.ctx is not None:
        lines += _said(f"see '{error.ctx.command_path} --help'")
    return lines


def _reader_gone(error: BrokenPipeError) -> list[str]:
    """Nobody to tell, and the interpreter's last flush of stdout must not complain either."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return []


#: Every error a command may end with, most specific first: the first ``isinstance`` match wins.
KNOWN: dict[type[BaseException], Known] = {
    CliError: Known(lambda e: [*_said(e.message), *e.details]),
    ConfigError: Known(lambda e: _said(*e.lines)),
    VllmMcpError: Known(lambda e: _said(str(e))),
    click.exceptions.NoArgsIsHelpError: Known(lambda e: [e.format_message()]),  # the help itself
    click.UsageError: Known(_usage),
    click.ClickException: Known(lambda e: _said(e.format_message())),
    click.Abort: Known(lambda e: _said("interrupted"), ExitCode.INTERRUPTED),
    KeyboardInterrupt: Known(lambda e: _said("interrupted"), ExitCode.INTERRUPTED),
    BrokenPipeError: Known(_reader_gone, ExitCode.FAILURE),
}


def report(error: BaseException) -> int:
    """Write ``error`` to stderr the one way; return the exit status it means."""
    for kind, known in KNOWN.items():
        if isinstance(error, kind):
            for line in known.says(error):
                click.echo(line, err=True)
            own = getattr(error, "exit_code", ExitCode.FAILURE)
            return int(own if known.exit_code is None else known.exit_code)
    return _unexpected(error)


def _unexpected(error: BaseException) -> int:
    """A bug: one line, and the traceback only with ``--debug``."""
    click.echo(f"{PREFIX}unexpected error: {type(error).__name__}: {error}", err=True)
    if DEBUG.get():
        traceback.print_exception(error, file=sys.stderr)
    else:
        hint = "this is a bug; run the command again with --debug (vllm-mcp --debug ...) for the traceback"
        click.echo(f"{PREFIX}{hint}", err=True)
    return ExitCode.FAILURE
