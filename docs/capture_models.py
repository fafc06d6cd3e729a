"""Capture the reasoning and tool-call exchanges shown in docs/tools.md from a real `vllm-mcp serve`.

    PYTHONPATH=. python docs/capture_models.py > /tmp/models.md

Runs the tests' tiny thinking model (a Qwen3-like chat template, ``<think>`` and ``<tool_call>``
tokens; its output is gibberish) with vLLM's ``qwen3`` reasoning parser and ``hermes`` tool-call
parser, and prints each JSON-RPC request and the server's response lines as they went over stdio.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.support.models import make_tiny_model, serve_env
from tests.support.servers import RawServer

WORK = Path("/tmp/vllm-mcp-docs-models")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 6}},
            "required": ["city"],
        },
    },
}
TOOL_CALL_REGEX = r'<tool_call>\{"name": "get_weather", "arguments": \{"city": "[a-z]{2,6}"\}\}</tool_call>'


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    model = make_tiny_model(WORK / "tiny-llama-thinking", thinking=True)
    env = serve_env(
        model,
        VLLM_MCP_REASONING_PARSER="qwen3",
        VLLM_MCP_TOOL_CALL_PARSER="hermes",
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

    hi = [{"role": "user", "content": "hi"}]
    call("chat_completion", {"messages": hi, "max_tokens": 6, "seed": 1}, "thinking (streamed)", True)
    call("model_info", {}, "model_info")
    call(
        "chat_completion",
        {"messages": hi, "max_tokens": 6, "seed": 1, "include_reasoning": True},
        "include_reasoning",
    )
    call(
        "chat_completion",
        {
            "messages": hi,
            "chat_template_kwargs": {"enable_thinking": False},
            "regex": "Hello [a-z]{3}",
            "seed": 1,
        },
        "thinking off",
    )
    weather = [{"role": "user", "content": "Weather in Paris?"}]
    first = call(
        "chat_completion",
        {
            "messages": weather,
            "tools": [WEATHER],
            "chat_template_kwargs": {"enable_thinking": False},
            "regex": TOOL_CALL_REGEX,
            "seed": 1,
            "session_id": "trip",
        },
        "a tool call (the random model steered by a regex)",
    )
    call_id = first["result"]["structuredContent"]["tool_calls"][0]["id"]
    call(
        "chat_completion",
        {
            "messages": [{"role": "tool", "tool_call_id": call_id, "content": '{"temp_c": 18}'}],
            "tools": [WEATHER],
            "chat_template_kwargs": {"enable_thinking": False},
            "regex": "It is [a-z]{2,5}",
            "seed": 1,
            "session_id": "trip",
        },
        "the tool's result sent back",
    )
    named = {"type": "function", "function": {"name": "get_weather"}}
    call(
        "chat_completion",
        {
            "messages": weather,
            "tools": [WEATHER],
            "tool_choice": named,
            "max_tokens": 30,
            "seed": 1,
            "chat_template_kwargs": {"enable_thinking": False},
        },
        "one named function (constrained to its parameters)",
    )
    call("chat_completion", {"messages": weather, "tool_choice": "required"}, "tool_choice without tools")
    call(
        "chat_completion",
        {"messages": [{"role": "tool", "content": "18"}]},
        "a tool message without its call id",
    )
    call(
        "chat_completion",
        {"messages": hi, "chat_template_kwargs": {"tools": []}},
        "a reserved template argument",
    )
    server.close()


if __name__ == "__main__":
    main()
