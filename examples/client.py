"""Ask `vllm-mcp serve` one question through the official MCP Python SDK (stdio).

    python examples/client.py "What is the capital of France?"

The server is started as a child process with this process's environment, so the usual
settings apply (VLLM_MODEL_NAME=... ; default: the embedded SmolLM2-135M-Instruct).
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


async def ask(question: str, max_tokens: int = 64) -> str:
    server = StdioServerParameters(command="vllm-mcp", args=["serve"], env=dict(os.environ))
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"\r{int(done)} tokens", end="", file=sys.stderr, flush=True)

        result = await session.call_tool(
            "chat_completion",
            {"messages": [{"role": "user", "content": question}], "max_tokens": max_tokens},
            read_timeout_seconds=600,
            progress_callback=progress,
        )
        print(file=sys.stderr)
        if result.is_error:
            raise RuntimeError(result.content[0].text)
        return str(result.structured_content["text"])


if __name__ == "__main__":
    print(asyncio.run(ask(sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?")))
