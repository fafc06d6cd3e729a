"""``vllm-mcp prefetch``: download a model ahead of the first start."""

from __future__ import annotations

import click

from vllm_mcp.config.settings import Settings


@click.command()
@click.argument("model", required=False)
@click.option("--revision", help="Branch, tag or commit to pin (default: main).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def prefetch(model: str | None, revision: str | None, quiet: bool) -> None:
    """Download MODEL (default: VLLM_MODEL_NAME, and then the VLLM_MCP_LORA_MODULES adapters;
    with VLLM_MCP_MODELS every model in the file and its adapters) into the cache; 'embedded'
    converts the embedded model. A failed download exits 1, a bad setting 2."""
    settings = Settings.load()
    if model is not None or settings.models_file is None:
        _fetch(settings, model, revision, quiet)
        return
    for spec in settings.models:  # every model of the file, in its order
        click.echo(f"--- {spec.name}")
        _fetch(settings.for_model(spec), None, revision, quiet)


def _fetch(settings: Settings, model: str | None, revision: str | None, quiet: bool) -> None:
    """One model (the settings' own when ``model`` is None, its adapters then too)."""
    from vllm_mcp.engine.prefetch import prefetch_adapters, prefetch_for_settings

    result = prefetch_for_settings(settings, model, revision, progress=not quiet)  # PrefetchError: exit 1
    click.echo(f"model:  {result.model}")
    click.echo(f"commit: {result.commit or '-'}")
    click.echo(f"path:   {result.path}")
    click.echo(f"files:  {len(result.files)}")
    if model is None:  # the configured model: its LoRA adapters too
        for name, fetched in prefetch_adapters(settings, progress=not quiet):  # PrefetchError: exit 1
            click.echo(f"adapter {name}: {fetched.path} ({fetched.commit or 'local'})")
