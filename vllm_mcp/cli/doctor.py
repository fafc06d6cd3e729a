"""``vllm-mcp doctor``: the report on stdout; a failed check exits 1 with a summary on stderr."""

from __future__ import annotations

from pathlib import Path

import click

from vllm_mcp.errors import CheckFailed


def engine_names() -> frozenset[str]:
    """vLLM's own variable names, so they are not flagged as typos (empty without vLLM)."""
    try:
        from vllm_mcp.engine.environment import engine_env_names

        return engine_env_names()
    except ImportError:
        return frozenset()


def engine_arg_names() -> frozenset[str]:
    """vLLM's engine arguments, for VLLM_MCP_ENGINE_ARGS (empty without vLLM: not checked)."""
    try:
        from vllm_mcp.engine.core import engine_arg_names as names

        return names()
    except ImportError:
        return frozenset()


def engine_platform() -> tuple[str, str]:
    """vLLM's platform and its Ray support, for the Ray check (no Ray support without vLLM)."""
    try:
        from vllm_mcp.engine.core import platform_facts

        return platform_facts()
    except ImportError:
        return "unknown", ""


@click.command()
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
    from vllm_mcp.cli.progress import StatusLine
    from vllm_mcp.doctor import Probes, run_checks

    probes = Probes(
        engine_names=engine_names, engine_arg_names=engine_arg_names, platform=engine_platform, root=root
    )
    report = run_checks(probes, smoke=smoke, smoke_status=StatusLine)
    click.echo(report.to_json() if as_json else report.to_text())
    failed = [c.name for c in report.checks if c.status == "fail"]
    if failed:
        raise CheckFailed(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
