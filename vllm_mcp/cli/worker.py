"""``vllm-mcp worker``: a worker node of a model that spans several machines (docs/multinode.md)."""

from __future__ import annotations

from typing import Any

import click

from vllm_mcp.cli.serve import settings_options
from vllm_mcp.config.settings import Settings


@click.command()
@settings_options
def worker(**options: Any) -> None:
    """Run this node's share of the model's workers, headless: the head node (VLLM_NODE_RANK=0)
    runs `vllm-mcp serve`, every other node this, with the same settings and its own
    VLLM_NODE_RANK.

    Takes the options and variables `serve` takes. Exits 0 after SIGTERM/SIGINT, 1 when the
    workers exited or failed (the head stopped, say), 2 on a bad setting.
    """
    from vllm_mcp.config import multinode
    from vllm_mcp.engine.core import platform_facts
    from vllm_mcp.server import worker_node as node

    settings = Settings.load(options=options)  # a ConfigError exits 2, one line per problem
    multinode.refuse(settings, "worker", platform_facts)
    raise SystemExit(node.run(settings))
