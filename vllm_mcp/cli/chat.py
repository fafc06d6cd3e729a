"""``vllm-mcp chat``: one question to a server started on the spot, the answer streamed."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import click

from vllm_mcp.cli.errors import CliError
from vllm_mcp.config import Settings, child_environment


@click.command()
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
    from vllm_mcp.protocol import client

    settings = Settings.load(options={"model_name": model})  # fail fast, before the child starts
    # A person reads this terminal, not a log: the server's log (vLLM's warnings and
    # progress bars included) goes to a file, shown only when something fails.
    log_file = Path(tempfile.gettempdir()) / f"vllm-mcp-chat-{os.getpid()}.log"
    log_file.unlink(missing_ok=True)  # the server appends: a reused pid must not show an old log
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

    def server_log() -> list[str]:
        if env["VLLM_MCP_LOG_FILE"] != str(log_file) or not log_file.exists():
            return []
        tail = log_file.read_text(errors="replace").splitlines()[-15:]
        return [f"vllm-mcp: the server's log is {log_file}; its last lines:", *(f"  {t}" for t in tail)]

    try:
        result = asyncio.run(
            client.chat_once(
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
    except client.ChatFailed as e:
        raise CliError(str(e), server_log()) from None
    except Exception as e:
        raise CliError(f"chat failed: {type(e).__name__}: {e}", server_log()) from None
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
