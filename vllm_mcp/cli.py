"""The ``vllm-mcp`` command line: thin commands that parse options and call the library."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click

from vllm_mcp import __version__
from vllm_mcp.config import ConfigError, Settings, child_environment

# Settings that get no command-line option: a secret must never be on a command line.
_NO_OPTION = {"hf_token"}


def _settings_options(command: Any) -> Any:
    """One ``--option`` per setting, generated from ``Settings`` so the two never drift."""
    env = Settings.env_names()
    for name, field in reversed(list(Settings.model_fields.items())):
        if name in _NO_OPTION:
            continue
        default = field.get_default(call_default_factory=True)
        help_text = f"{field.description} [env {env[name]}; default: {default}]"
        command = click.option(f"--{name.replace('_', '-')}", name, default=None, help=help_text)(command)
    return command


def load_settings(options: dict[str, Any]) -> Settings:
    """Settings from the environment and options; a bad value exits 2 with one line each."""
    try:
        return Settings.load(options=options)
    except ConfigError as e:
        for line in e.lines:
            click.echo(f"vllm-mcp: {line}", err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vllm-mcp")
def cli() -> None:
    """A vLLM model behind the Model Context Protocol, and the tools to run it."""


@cli.command()
@_settings_options
def serve(**options: Any) -> None:
    """Serve MCP over stdin/stdout (one JSON-RPC message per line).

    Every option can also be set by its environment variable; options win.
    """
    from vllm_mcp import server

    settings = load_settings(options)
    server.exit_now(server.run(settings))


@cli.command()
@click.argument("question")
@click.option("--system", help="A system prompt for this question.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens to generate.")
@click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed for a reproducible answer.")
@click.option("--model", help="Model to serve (VLLM_MODEL_NAME); default: embedded.")
def chat(
    question: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    model: str | None,
) -> None:
    """Ask one QUESTION: starts `vllm-mcp serve` over stdio and streams the answer."""
    from vllm_mcp import server

    settings = load_settings({"model_name": model})  # fail fast, before the child starts
    # A person reads this terminal, not a log: the server's log (vLLM's warnings and
    # progress bars included) goes to a file, shown only when something fails.
    log_file = Path(tempfile.gettempdir()) / f"vllm-mcp-chat-{os.getpid()}.log"
    env = child_environment(
        {"VLLM_MODEL_NAME": model} if model else None,
        defaults={"VLLM_MCP_LOG_FORMAT": "text", "VLLM_MCP_LOG_FILE": str(log_file)},
    )
    command = [sys.executable, "-m", "vllm_mcp", "serve"]
    click.echo(
        f"vllm-mcp: starting the server and loading {settings.model_name} (about a minute on a CPU)...",
        err=True,
    )

    def show(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    def fail(message: str) -> NoReturn:
        click.echo(f"vllm-mcp: {message}", err=True)
        if env["VLLM_MCP_LOG_FILE"] == str(log_file) and log_file.exists():
            click.echo(f"vllm-mcp: the server's log is {log_file}; its last lines:", err=True)
            for line in log_file.read_text(errors="replace").splitlines()[-15:]:
                click.echo(f"  {line}", err=True)
        sys.exit(1)

    try:
        result = asyncio.run(
            server.chat_once(
                question,
                command,
                env,
                show,
                system=system,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
            )
        )
    except server.ChatFailed as e:
        fail(str(e))
    except Exception as e:
        fail(f"chat failed: {type(e).__name__}: {e}")
    log_file.unlink(missing_ok=True)
    click.echo()
    usage = result.get("usage", {})
    timings = result.get("timings", {})
    click.echo(
        f"[{result.get('model')}: {usage.get('completion_tokens')} tokens, "
        f"first token after {timings.get('time_to_first_token_s') or 0:.2f} s, "
        f"total {timings.get('total_s') or 0:.2f} s]",
        err=True,
    )


@cli.group()
def config() -> None:
    """Check and show the configuration that `serve` would use."""


def main() -> None:
    cli()
