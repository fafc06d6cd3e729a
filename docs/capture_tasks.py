"""Capture the 2026-07-28 tasks exchange shown in docs/tools.md from a real `vllm-mcp serve`.

    PYTHONPATH=. python docs/capture_tasks.py > /tmp/tasks.md

The tiny random model of the tests over stdio; every request is a stateless 2026-07-28 one
whose ``_meta`` declares the ``io.modelcontextprotocol/tasks`` extension. A long generation
becomes a task; ``tasks/get`` while it works and once it has completed (the text cut here).
"""

from __future__ import annotations

import json
import time
from typing import Any

from tests.support import ROOT
from tests.support.models import make_tiny_model, serve_env
from tests.support.servers import RawServer

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "docs", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
}


def main() -> None:
    model = make_tiny_model(ROOT / ".cache" / "test-models" / "tiny-llama")
    server = RawServer(serve_env(model))
    rid = 0

    def ask(method: str, params: dict[str, Any], cut: bool = False) -> dict[str, Any]:
        nonlocal rid
        rid += 1
        request = {"jsonrpc": "2.0", "id": rid, "method": method, "params": {**params, "_meta": META}}
        server.send(request)
        response = server.response(rid, timeout=600)
        shown = json.loads(json.dumps(response))
        result = shown.get("result", {}).get("result")
        if cut and result:  # the gibberish of the random model, cut
            result["content"][0]["text"] = result["content"][0]["text"][:20] + "..."
            result["structuredContent"]["text"] = result["structuredContent"]["text"][:20] + "..."
        print(f"> {json.dumps(request)}\n< {json.dumps(shown)}\n")
        return response

    messages = [{"role": "user", "content": "Write a story."}]
    ask("tools/call", {"name": "model_info", "arguments": {}})  # waits for the model
    arguments = {"messages": messages, "max_tokens": 800, "min_tokens": 800, "seed": 1}
    created = ask("tools/call", {"name": "chat_completion", "arguments": arguments})
    task_id = created["result"]["taskId"]
    ask("tasks/get", {"taskId": task_id})
    while True:
        time.sleep(1)
        got = server_get(server, task_id)
        if got["status"] != "working":
            break
    ask("tasks/get", {"taskId": task_id}, cut=True)
    server.close()


def server_get(server: RawServer, task_id: str) -> dict[str, Any]:
    """A tasks/get not printed (the polls between the two shown)."""
    rid = f"poll-{time.monotonic_ns()}"
    server.send(
        {"jsonrpc": "2.0", "id": rid, "method": "tasks/get", "params": {"taskId": task_id, "_meta": META}}
    )
    return server.response(rid, timeout=60)["result"]  # type: ignore[no-any-return]


if __name__ == "__main__":
    main()
