"""The ``vllm-mcp`` command line: one module per command, errors reported in one place.

Each command parses its options, calls the library and raises on failure; the group's
``main`` catches what they raise and ``failures.report`` turns it into one message on
stderr and the exit status of the error's class (see ``failures`` and ``vllm_mcp.errors``).
Heavy imports (the engine, the MCP SDK) happen inside the commands, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from vllm_mcp import __version__
from vllm_mcp.cli import failures
from vllm_mcp.cli.failures import EXIT_CODES_HELP
from vllm_mcp.errors import ExitCode


class _Group(click.Group):
    """A click group whose ``main`` is the one place errors are reported.

    ``CliRunner.invoke`` calls this ``main`` too, so tests see exactly what users see.
    """

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> int:
        token = failures.DEBUG.set(False)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else ExitCode.OK
        except SystemExit:
            raise  # `serve` exits with the server's own status
        except BaseException as e:  # the one place every failure is reported
            code = failures.report(e)
        finally:
            failures.DEBUG.reset(token)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="vllm-mcp")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def cli(debug: bool) -> None:
    """A vLLM model behind the Model Context Protocol, and the tools to run it."""
    failures.DEBUG.set(debug)


def _register() -> None:
    from vllm_mcp.cli import chat, config, doctor, prefetch, serve, worker

    for command in (serve.serve, worker.worker, chat.chat, doctor.doctor, prefetch.prefetch, config.config):
        cli.add_command(command)


_register()


def main() -> None:
    """The ``vllm-mcp`` script and ``python -m vllm_mcp``."""
    cli.main()
