"""Every contender by name, for ``python -m bench --contenders``."""

from __future__ import annotations

from bench.contenders import (
    Contender,
    EngineContender,
    McpContender,
    McpPipeContender,
    SequentialContender,
    VllmServeContender,
)
from bench.mcp_http import FluidMcpContender, McpHttp2026Contender, McpHttpContender
from bench.peer import VllmMcpServerContender
from bench.replicas import ReplicasContender

CONTENDERS: dict[str, type[Contender]] = {
    c.name: c
    for c in (
        EngineContender,
        McpContender,
        McpPipeContender,
        VllmServeContender,
        SequentialContender,
        McpHttpContender,
        McpHttp2026Contender,
        FluidMcpContender,
        VllmMcpServerContender,
        ReplicasContender,
    )
}
