"""Capture the wire exchanges shown in docs/tools.md from a real `vllm-mcp serve`.

    PYTHONPATH=. python docs/capture_tools.py > /tmp/exchanges.md

Runs the tiny random model of the tests (its output is gibberish; what the constraints make
of it is the point) with two random LoRA adapters, and prints each JSON-RPC request and the
server's response lines as they went over stdio.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.support import RawServer, make_tiny_adapter, make_tiny_model, serve_env

WORK = Path("/tmp/vllm-mcp-docs")
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "admin": {"type": "boolean"},
        "role": {"enum": ["dev", "ops"]},
    },
    "required": ["name", "admin", "role"],
}


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    model = make_tiny_model(WORK / "tiny-llama")
    alpha = make_tiny_adapter(WORK / "lora-alpha", model, 1)
    beta = make_tiny_adapter(WORK / "lora-beta", model, 2)
    engine_args = {
        "enforce_eager": True,
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
    }
    env = serve_env(
        model,
        VLLM_MCP_LORA_MODULES=f"alpha={alpha} beta={beta}",
        VLLM_MCP_ENGINE_ARGS=json.dumps(engine_args),
        VLLM_MCP_PROGRESS_INTERVAL="0",
        VLLM_MCP_PROGRESS_MAX_RATE="0",
    )
    server = RawServer(env)
    server.initialize()
    rid = 0

    def call(tool: str, arguments: dict[str, Any], title: str, progress: bool = False) -> dict[str, Any]:
        nonlocal rid
        rid += 1
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if progress:
            params["_meta"] = {"progressToken": f"p{rid}"}
        request = {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}
        before = len(server.lines)
        server.send(request)
        response = server.response(rid, timeout=600)
        lines = [json.loads(line) for line in server.lines[before:]]
        mine = [
            m for m in lines if m.get("id") == rid or m.get("params", {}).get("progressToken") == f"p{rid}"
        ]
        print(f"### {title}\n\n```json\n{json.dumps(request, indent=1)}\n```\n")
        for m in mine:
            print(f"```json\n{json.dumps(m, indent=1, ensure_ascii=False)}\n```\n")
        sys.stdout.flush()
        return response

    user = [{"role": "user", "content": "Who is on call?"}]
    call("model_info", {}, "model_info (waits for the model; adapters listed)")
    call(
        "chat_completion",
        {"messages": user, "json_schema": PERSON, "seed": 1, "max_tokens": 60},
        "json_schema",
    )
    call("chat_completion", {"messages": user, "choice": ["yes", "no"], "seed": 1}, "choice")
    call("complete", {"prompt": "Ticket:", "regex": "[A-Z]{3}-[0-9]{3}", "seed": 1}, "regex")
    fox = {"prompt": "The quick brown fox", "seed": 7, "temperature": 1.0, "max_tokens": 40}
    full = call("complete", fox, "no stop")["result"]["structuredContent"]["text"]
    words = full.split()
    stop = words[len(words) // 2][:4]  # part of a word it does generate with this seed
    call("complete", {**fox, "stop": ["never", stop]}, "stop")
    for adapter in ("alpha", "beta"):
        call(
            "chat_completion",
            {"messages": user, "adapter": adapter, "seed": 5, "max_tokens": 8},
            f"adapter {adapter}",
        )
    call("complete", {"prompt": "def add(a, b):", "logprobs": 2, "seed": 1, "max_tokens": 3}, "logprobs")
    call("complete", {"prompt": "def add(a, b):", "seed": 1, "max_tokens": 4}, "complete streaming", True)
    call("chat_completion", {"messages": user, "json_schema": {"type": "objekt"}}, "bad schema")
    call("complete", {"prompt": "x", "choice": ["a"], "regex": "a"}, "two constraints")
    call("chat_completion", {"messages": user, "adapter": "gamma"}, "unknown adapter")
    call("complete", {"prompt": "x", "regex": "(unclosed"}, "regex vLLM cannot compile")
    call(
        "chat_completion",
        {"messages": user, "json_schema": PERSON, "max_tokens": 3},
        "json cut by max_tokens",
    )
    server.close()


if __name__ == "__main__":
    main()
