"""``vllm-mcp chat``: one question to a server started on the spot, or to a running HTTP
server (``--url``), the answer streamed."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from vllm_mcp.cli.progress import StatusLine
from vllm_mcp.config.settings import Settings, child_environment, is_loopback
from vllm_mcp.errors import CliError


@click.command()
@click.argument("question")
@click.option("--system", help="A system prompt for this question.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="Most tokens to generate.")
@click.option("--temperature", type=click.FloatRange(0, 2), help="Sampling temperature.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed for a reproducible answer.")
@click.option("--model", help="Model to serve (VLLM_MODEL_NAME); default: embedded.")
@click.option("--url", help="Ask a running `serve --transport http` at this URL (e.g. http://HOST:8000/mcp).")
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --url: a file holding the bearer token (its first 'token' or 'name:token' line).",
)
@click.option(
    "--task",
    is_flag=True,
    help="Let the server run the question as an MCP task (2026-07-28): its status is shown while "
    "it is polled; Ctrl-C cancels it.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="FILE|URL",
    callback=lambda _ctx, _param, values: [image_part(v) for v in values],
    help="An image for the question: a PNG, JPEG, WebP or GIF file, or an http(s) URL the server "
    "fetches (VLLM_MCP_ALLOWED_MEDIA_DOMAINS). Repeat for several; the model must take images.",
)
def chat(
    question: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    model: str | None,
    url: str | None,
    token_file: Path | None,
    task: bool,
    images: list[dict[str, Any]],
) -> None:
    """Ask one QUESTION: starts `vllm-mcp serve` over stdio (or asks --url) and streams the answer."""
    from vllm_mcp.protocol import client

    sampling: dict[str, Any] = {
        "system": system,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        "images": images,
    }
    if task:
        sampling["on_task"] = _task_line()
    if url is not None:
        _footer(_chat_url(question, url, token_file, sampling))
        return
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
        f"vllm-mcp: starting the server and loading {settings.model_name} (the first start converts "
        "and compiles it: several minutes on a CPU; later starts are quicker)",
        err=True,
    )
    status = StatusLine()

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
                _shown_after(status),
                on_status=status,
                **sampling,
            )
        )
    except client.ChatFailed as e:
        status.done()
        raise CliError(str(e), server_log()) from None
    except Exception as e:
        status.done()
        raise CliError(f"chat failed: {type(e).__name__}: {e}", server_log()) from None
    status.done()
    log_file.unlink(missing_ok=True)
    _footer(result)


IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def image_part(image: str) -> dict[str, Any]:
    """``--image``'s value as an OpenAI image part: a URL as it is (the server fetches it, from
    allowed domains only), a file inline as a data URL. The server checks what the file holds."""
    if urlsplit(image).scheme in ("http", "https"):
        return {"type": "image_url", "image_url": {"url": image}}
    path = Path(image)
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if mime is None:
        raise click.BadParameter(
            f"{image}: not a .png, .jpg, .jpeg, .webp or .gif file, nor an http(s) URL", param_hint="--image"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise click.BadParameter(
            f"{image}: cannot read it ({e.strerror or e})", param_hint="--image"
        ) from None
    return {
        "type": "image_url",
        "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode()}"},
    }


def _task_line() -> Callable[[dict[str, Any]], None]:
    """``chat --task``: each state of the task on stderr (the reply goes to stdout)."""
    from vllm_mcp.cli.progress import TaskLine

    line = TaskLine()

    def show(task: dict[str, Any]) -> None:
        line(task)
        if task.get("status") in ("completed", "failed", "cancelled"):
            line.done()

    return show


def _show(text: str) -> None:
    click.echo(text, nl=False)
    sys.stdout.flush()


def _shown_after(status: StatusLine) -> Callable[[str], None]:
    """``_show``, once the status line is ended (the reply goes to stdout, the status to stderr)."""

    def show(text: str) -> None:
        status.done()
        _show(text)

    return show


def _chat_url(question: str, url: str, token_file: Path | None, sampling: dict[str, Any]) -> dict[str, Any]:
    """`chat --url`: one question to a running HTTP server; the token only ever read from a file."""
    from vllm_mcp.protocol import client
    from vllm_mcp.protocol.auth import read_client_token

    token = read_client_token(token_file) if token_file else None  # a TokenFileError exits 2
    warning = plain_http_warning(url) if token else None
    if warning:
        click.echo(f"vllm-mcp: warning: {warning}", err=True)
    status = StatusLine()
    try:
        result = asyncio.run(
            client.chat_url(question, url, token, _shown_after(status), on_status=status, **sampling)
        )
        status.done()
        return result
    except client.ChatFailed as e:
        message = str(e)
    except Exception as e:
        message = f"chat failed: {type(e).__name__}: {e}"
    status.done()
    raise CliError(message.replace(token, "<token>") if token else message) from None


def plain_http_warning(url: str) -> str | None:
    """A sentence when a token sent to ``url`` would cross the network in the clear."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname or is_loopback(parts.hostname):
        return None
    return (
        f"sending the bearer token over plain HTTP to {parts.hostname}: anyone on the way can read "
        "and reuse it; serve HTTPS in front of the server (docs/deploying-http.md) and use an "
        "https:// URL"
    )


def _footer(result: dict[str, Any]) -> None:
    click.echo()
    usage = result.get("usage", {})
    timings = result.get("timings", {})
    click.echo(
        f"[{result.get('model')}: {usage.get('completion_tokens')} tokens, "
        f"first token after {timings.get('time_to_first_token_s') or 0:.2f} s, "
        f"total {timings.get('total_s') or 0:.2f} s]",
        err=True,
    )
