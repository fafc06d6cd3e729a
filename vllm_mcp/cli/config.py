"""``vllm-mcp config validate|show``: the configuration `serve` would use, checked or shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from vllm_mcp.cli.doctor import engine_arg_names, engine_names, engine_platform
from vllm_mcp.config.check import validate
from vllm_mcp.config.files import read_config_file
from vllm_mcp.config.settings import Settings
from vllm_mcp.errors import CheckFailed, ConfigError


@click.group()
def config() -> None:
    """Check and show the configuration that `serve` would use."""


@config.command("validate")
@click.argument("path", required=False, type=click.Path(path_type=Path, exists=True, dir_okay=False))
def config_validate(path: Path | None) -> None:
    """Validate the environment, or PATH: an env file or a FluidMCP config JSON.

    The findings go to stdout, one line each; exit 1 if any configuration is invalid.
    """
    from vllm_mcp.doctor import probe_gpus

    sets: dict[str, dict[str, str]] = {}
    if path is not None:
        try:
            sets = read_config_file(path)
        except ConfigError as e:  # the file itself is the invalid configuration: a finding
            for line in e.lines:
                click.echo(line)
            raise CheckFailed(f"{path}: cannot be read as a configuration") from None
    gpu_count = len(probe_gpus().gpus) or None
    names, arg_names = engine_names(), engine_arg_names()  # imports vLLM: seconds
    known: dict[str, Any] = {
        "engine_names": names,
        "engine_arg_names": arg_names,
        "gpu_count": gpu_count,
        "platform": engine_platform,
    }
    if path is None:
        results = [validate(**known)]
    else:
        results = [validate({}, values, label=label, **known) for label, values in sets.items()]
    for result in results:
        if result.ok:
            click.echo(f"{result.label}: valid")
        for problem in result.problems:
            click.echo(f"{result.label}: {problem}")
        for warning in result.warnings:
            click.echo(f"{result.label}: warning: {warning}")
    invalid = [r.label for r in results if not r.ok]
    if invalid:
        raise CheckFailed(f"invalid configuration: {', '.join(invalid)}")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def config_show(as_json: bool) -> None:
    """Print the effective configuration and where each value comes from (token masked).

    An invalid setting exits 2, one line each on stderr.
    """
    settings, sources = Settings.load_with_sources()
    public = settings.public_dict()
    names = Settings.env_names()
    rows = {names[f]: {"value": public[f], "source": sources[f]} for f in names}
    if settings.models_file is not None:  # what the file says, each model on its own
        rows[names["models_file"]]["models"] = public["models"]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    width = max(len(n) for n in rows)
    for name, row in rows.items():
        value = row["value"]
        shown = "(unset)" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)
        click.echo(f"{name:<{width}}  {shown}  [{row['source']}]")
        for model in row.get("models", []):
            given = {k: v for k, v in model.items() if k not in ("name", "model") and v not in (None, {})}
            click.echo(f"  {model['name']}: {model['model']}  {json.dumps(given)}")
