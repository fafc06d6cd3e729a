"""``vllm-mcp serve``: the MCP server itself, one option per setting."""

from __future__ import annotations

from typing import Any

import click

from vllm_mcp.config.settings import Settings

# Settings that get no command-line option: a secret must never be on a command line.
_NO_OPTION = {"hf_token"}


def settings_options(command: Any) -> Any:
    """One ``--option`` per setting, generated from ``Settings`` so the two never drift."""
    env = Settings.env_names()
    for name, field in reversed(list(Settings.model_fields.items())):
        if name in _NO_OPTION:
            continue
        default = field.get_default(call_default_factory=True)
        help_text = f"{field.description} [env {env[name]}; default: {default}]"
        command = click.option(f"--{name.replace('_', '-')}", name, default=None, help=help_text)(command)
    return command


@click.command()
@settings_options
def serve(**options: Any) -> None:
    """Serve MCP over stdin/stdout (one JSON-RPC message per line), or over HTTP with
    --transport http (MCP Streamable HTTP at http://HOST:PORT/mcp; docs/http.md).

    Every option can also be set by its environment variable; options win. Exits 0 after
    a clean shutdown, 1 when the engine died or the server failed, 2 on a bad setting.
    """
    settings = Settings.load(options=options)  # a ConfigError exits 2, one line per problem
    # Only now the server's imports (the MCP SDK, starlette, uvicorn: about a second): a bad
    # setting is reported without them, and a gateway retrying a broken config pays little.
    from vllm_mcp.config import multinode
    from vllm_mcp.engine.core import platform_facts
    from vllm_mcp.server import app

    multinode.refuse(settings, "head", platform_facts)  # a worker node's rank, Ray on CPU: exit 2
    if settings.http_workers > 1:
        from vllm_mcp.server import frontends as workers

        app.exit_now(workers.run(settings))
    app.exit_now(app.run(settings))
