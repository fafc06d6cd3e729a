"""How every command fails: one message on stderr prefixed ``vllm-mcp:``, one exit status.

Commands raise; ``vllm_mcp.cli.main`` (via the group's ``main``) catches once and calls
``report``, so no command prints its own error and no user sees a traceback::

    CliError            exit 1  the command ran and failed (the chat, say)
    └── CheckFailed     exit 1  a report on stdout says what failed; this is its summary
    ConfigError         exit 2  (the library's) an invalid setting, one line per problem
    click.UsageError    exit 2  (click's) a bad option or argument
    PrefetchError       exit 1  (the library's) a download that failed
    KeyboardInterrupt   exit 130
    anything else       exit 1  a bug: one line, and ``--debug`` shows the traceback

Exit 2 always means nothing was done: fix the command line or the configuration.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import io
import os
import sys
import traceback
from collections.abc import Sequence

import click

from vllm_mcp.config.settings import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PREFIX = "vllm-mcp: "

EXIT_CODES_HELP = (
    "Exit status: 0 success; 1 failure (a check failed, a download or the server failed); "
    "2 usage or configuration error (nothing was done); 130 interrupted. Each error is a "
    "line on stderr starting 'vllm-mcp:'; stdout carries only the command's output."
)

#: Set by ``--debug``: show the traceback of an unexpected error.
DEBUG: contextvars.ContextVar[bool] = contextvars.ContextVar("vllm_mcp_cli_debug", default=False)


class CliError(Exception):
    """A failure the user should read: ``message``, then ``details`` lines as they are."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)


class CheckFailed(CliError):
    """A check's report (on stdout) found a failure; the message summarises it."""


def _say(line: str) -> None:
    click.echo(f"{PREFIX}{line}", err=True)


def report(error: BaseException) -> int:
    """Write ``error`` to stderr the one way; return the exit status it means."""
    from vllm_mcp.engine.prefetch import PrefetchError

    if isinstance(error, CliError):
        _say(error.message)
        for line in error.details:
            click.echo(line, err=True)
        return error.exit_code
    if isinstance(error, ConfigError):
        for line in error.lines:
            _say(line)
        return EXIT_USAGE
    if isinstance(error, PrefetchError):
        _say(str(error))
        return EXIT_FAILURE
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        click.echo(error.format_message(), err=True)  # the help itself
        return EXIT_USAGE
    if isinstance(error, click.UsageError):
        _say(error.format_message())
        if error.ctx is not None:
            _say(f"see '{error.ctx.command_path} --help'")
        return EXIT_USAGE
    if isinstance(error, click.ClickException):
        _say(error.format_message())
        return error.exit_code
    if isinstance(error, (click.Abort, KeyboardInterrupt)):
        _say("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(error, OSError) and error.errno == errno.EPIPE:
        # Whoever read our output stopped reading (``| head``): nobody to tell, and the
        # interpreter's last flush must not complain either.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE
    _say(f"unexpected error: {type(error).__name__}: {error}")
    if DEBUG.get():
        traceback.print_exception(error, file=sys.stderr)
    else:
        _say("this is a bug; run the command again with --debug (vllm-mcp --debug ...) for the traceback")
    return EXIT_FAILURE
