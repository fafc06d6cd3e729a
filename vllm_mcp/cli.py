"""The ``vllm-mcp`` command line: thin commands that parse options and call the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vllm_mcp import __version__

if TYPE_CHECKING:
    from vllm_mcp.config import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vllm-mcp")
def cli() -> None:
    """A vLLM model behind the Model Context Protocol, and the tools to run it."""


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


def _settings_or_exit() -> Settings:
    from vllm_mcp.config import ConfigError, Settings

    try:
        return Settings.load()
    except ConfigError as e:
        for line in e.lines:
            click.echo(f"error: {line}", err=True)
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--smoke", is_flag=True, help="Also start the engine and generate a few tokens.")
def doctor(as_json: bool, smoke: bool) -> None:
    """Check this machine, the configuration and the model; exit 1 if anything failed."""
    from vllm_mcp.doctor import Probes, run_checks

    report = run_checks(Probes(engine_names=_engine_names), smoke=smoke)
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

    settings = _settings_or_exit()
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
@click.argument("path", required=False, type=click.Path(path_type=Path, dir_okay=False))
def config_validate(path: Path | None) -> None:
    """Validate the environment, or PATH: an env file or a FluidMCP config JSON."""
    from vllm_mcp.config import ConfigError, read_config_file, validate
    from vllm_mcp.doctor import probe_gpus

    gpu_count = len(probe_gpus().gpus) or None
    names = _engine_names()
    if path is None:
        results = [validate(engine_names=names, gpu_count=gpu_count)]
    else:
        try:
            sets = read_config_file(path)
        except ConfigError as e:
            for line in e.lines:
                click.echo(line)
            sys.exit(1)
        results = [validate({}, values, engine_names=names, gpu_count=gpu_count, label=label)
                   for label, values in sets.items()]
    for result in results:
        if result.ok:
            click.echo(f"{result.label}: valid")
        for problem in result.problems:
            click.echo(f"{result.label}: {problem}")
    sys.exit(0 if all(r.ok for r in results) else 1)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration and where each value comes from (token masked)."""
    from vllm_mcp.config import ConfigError, Settings

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
        shown = "(unset)" if value is None else json.dumps(value) if isinstance(value, dict) \
            else str(value)
        click.echo(f"{name:<{width}}  {shown}  [{row['source']}]")


def main() -> None:
    cli()
