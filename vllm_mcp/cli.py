"""The ``vllm-mcp`` command line: thin commands that parse options and call the library."""

from __future__ import annotations

import asyncio
import json
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
    """Serve MCP over stdin/stdout (one JSON-RPC message per line), or over HTTP with
    --transport http (MCP Streamable HTTP at http://HOST:PORT/mcp; docs/http.md).

    Every option can also be set by its environment variable; options win.
    """
    from vllm_mcp import app

    settings = load_settings(options)
    app.exit_now(app.run(settings))


@cli.command()
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
def chat(
    question: str,
    system: str | None,
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    model: str | None,
    url: str | None,
    token_file: Path | None,
) -> None:
    """Ask one QUESTION: starts `vllm-mcp serve` over stdio (or asks --url) and streams the answer."""
    from vllm_mcp.protocol import client

    if url is not None:
        result = _chat_url(
            question,
            url,
            token_file,
            system=system,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        _chat_footer(result)
        return
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
        fail(str(e))
    except Exception as e:
        fail(f"chat failed: {type(e).__name__}: {e}")
    log_file.unlink(missing_ok=True)
    _chat_footer(result)


def _chat_url(question: str, url: str, token_file: Path | None, **sampling: Any) -> dict[str, Any]:
    """`chat --url`: one question to a running HTTP server; the token only ever read from a file."""
    from vllm_mcp.protocol import client
    from vllm_mcp.protocol.auth import TokenFileError, read_client_token

    try:
        token = read_client_token(token_file) if token_file else None
    except TokenFileError as e:
        click.echo(f"vllm-mcp: {e}", err=True)
        sys.exit(2)

    def show(text: str) -> None:
        click.echo(text, nl=False)
        sys.stdout.flush()

    try:
        return asyncio.run(client.chat_url(question, url, token, show, **sampling))
    except client.ChatFailed as e:
        message = str(e)
    except Exception as e:
        message = f"chat failed: {type(e).__name__}: {e}"
    if token:
        message = message.replace(token, "<token>")
    click.echo(f"vllm-mcp: {message}", err=True)
    sys.exit(1)


def _chat_footer(result: dict[str, Any]) -> None:
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


# --- operator tooling: doctor, prefetch, config validate / show ----------------------


def _engine_names() -> frozenset[str]:
    """vLLM's own variable names, so they are not flagged as typos (empty without vLLM)."""
    try:
        from vllm_mcp.engine import engine_env_names

        return engine_env_names()
    except ImportError:
        return frozenset()


def _engine_arg_names() -> frozenset[str]:
    """vLLM's engine arguments, for VLLM_MCP_ENGINE_ARGS (empty without vLLM: not checked)."""
    try:
        from vllm_mcp.engine import engine_arg_names

        return engine_arg_names()
    except ImportError:
        return frozenset()


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--smoke", is_flag=True, help="Also start the engine and generate a few tokens.")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default="/",
    show_default=True,
    help="The host's file tree, for the gateway unit check (e.g. an install staged with DESTDIR).",
)
def doctor(as_json: bool, smoke: bool, root: Path) -> None:
    """Check this machine, the configuration and the model; exit 1 if anything failed.

    Warnings do not fail, so the gateway unit can run this as its ExecStartPre.
    """
    from vllm_mcp.doctor import Probes, run_checks

    probes = Probes(engine_names=_engine_names, engine_arg_names=_engine_arg_names, root=root)
    report = run_checks(probes, smoke=smoke)
    click.echo(report.to_json() if as_json else report.to_text())
    sys.exit(1 if report.failed else 0)


@cli.command()
@click.argument("model", required=False)
@click.option("--revision", help="Branch, tag or commit to pin (default: main).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prefetch(model: str | None, revision: str | None, quiet: bool) -> None:
    """Download MODEL (default: VLLM_MODEL_NAME) into the cache; 'embedded' converts the
    embedded model."""
    from vllm_mcp.prefetch import PrefetchError, prefetch_for_settings

    settings = load_settings({})
    try:
        result = prefetch_for_settings(settings, model, revision, progress=not quiet)
    except PrefetchError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"model:  {result.model}")
    click.echo(f"commit: {result.commit or '-'}")
    click.echo(f"path:   {result.path}")
    click.echo(f"files:  {len(result.files)}")


@config.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False))
def config_validate(path: Path | None) -> None:
    """Validate the environment, or PATH: an env file or a FluidMCP config JSON."""
    from vllm_mcp.config import ConfigError, validate
    from vllm_mcp.config_files import read_config_file
    from vllm_mcp.doctor import probe_gpus

    gpu_count = len(probe_gpus().gpus) or None
    names, arg_names = _engine_names(), _engine_arg_names()
    if path is None:
        results = [validate(engine_names=names, engine_arg_names=arg_names, gpu_count=gpu_count)]
    else:
        try:
            sets = read_config_file(path)
        except ConfigError as e:
            for line in e.lines:
                click.echo(line)
            sys.exit(1)
        results = [
            validate(
                {}, values, engine_names=names, engine_arg_names=arg_names, gpu_count=gpu_count, label=label
            )
            for label, values in sets.items()
        ]
    for result in results:
        if result.ok:
            click.echo(f"{result.label}: valid")
        for problem in result.problems:
            click.echo(f"{result.label}: {problem}")
        for warning in result.warnings:
            click.echo(f"{result.label}: warning: {warning}")
    sys.exit(0 if all(r.ok for r in results) else 1)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration and where each value comes from (token masked)."""
    try:
        settings, sources = Settings.load_with_sources()
    except ConfigError as e:
        for line in e.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)
    public = settings.public_dict()
    names = Settings.env_names()
    rows = {names[f]: {"value": public[f], "source": sources[f]} for f in names}
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        value = row["value"]
        shown = "(unset)" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)
        click.echo(f"{name:<{width}}  {shown}  [{row['source']}]")


def main() -> None:
    cli()
