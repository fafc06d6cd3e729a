"""The ``vllm-mcp`` command line: thin commands that parse options and call the library."""

from __future__ import annotations

import click

from vllm_mcp import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vllm-mcp")
def cli() -> None:
    """A vLLM model behind the Model Context Protocol, and the tools to run it."""


@cli.group()
def config() -> None:
    """Check and show the configuration that `serve` would use."""


def main() -> None:
    cli()
