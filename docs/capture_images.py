"""Capture the image exchanges shown in docs/tools.md ("Images") from a real `vllm-mcp serve`.

    PYTHONPATH=. python docs/capture_images.py > /tmp/images.md

Runs the tests' tiny random Idefics3 (tests/support/vision.py; its output is gibberish) with
127.0.0.1 an allowed media domain and an image host there (tests/support/imagehost.py), and
prints each JSON-RPC request and the server's response as they went over stdio.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from tests.support.imagehost import image_host, png
from tests.support.models import make_tiny_model, serve_env
from tests.support.servers import RawServer
from tests.support.vision import make_tiny_vision_model

WORK = Path("/tmp/vllm-mcp-docs-images")


def main() -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    model = make_tiny_vision_model(WORK / "tiny-idefics3", make_tiny_model(WORK / "tiny-llama"))
    red = base64.b64encode(png((220, 20, 20), (8, 8))).decode()
    env = serve_env(model, VLLM_MCP_ALLOWED_MEDIA_DOMAINS="127.0.0.1", VLLM_DEFAULT_MAX_TOKENS="6")
    server = RawServer(env)
    server.initialize()
    server.wait_ready()
    rid = 0

    def call(tool: str, arguments: dict[str, Any], title: str) -> dict[str, Any]:
        nonlocal rid
        rid += 1
        request = {
            "jsonrpc": "2.0",
            "id": rid,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        server.send(request)
        response = server.response(rid, timeout=600)
        print(f"##### {title}\n\n```json\n{json.dumps(request)}\n```\n```json\n{json.dumps(response)}\n```\n")
        sys.stdout.flush()
        return response

    def ask(*parts: dict[str, Any], **arguments: Any) -> dict[str, Any]:
        content = [{"type": "text", "text": "What is in the picture?"}, *parts]
        return {"messages": [{"role": "user", "content": content}], "seed": 1, **arguments}

    inline = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{red}"}}
    mcp = {"type": "image", "data": red, "mimeType": "image/png"}
    call("chat_completion", ask(inline, session_id="look"), "an image as a data URL, in a session")
    call(
        "chat_completion",
        {"messages": [{"role": "user", "content": "And its colour?"}], "seed": 1, "session_id": "look"},
        "the next turn: the session still holds the image",
    )
    call("chat_completion", ask(mcp), "MCP image content")
    with image_host({"/red.png": (200, {"Content-Type": "image/png"}, png((220, 20, 20), (8, 8)))}) as host:
        fetched = {"type": "image_url", "image_url": {"url": f"{host}/red.png"}}
        call("chat_completion", ask(fetched), "an image URL of an allowed domain")
    other = {"type": "image_url", "image_url": {"url": "https://images.example.org/cat.png"}}
    call("chat_completion", ask(other), "an image URL of another domain")
    bad = {"type": "image", "data": base64.b64encode(b"plain text").decode(), "mimeType": "image/png"}
    call("chat_completion", ask(bad), "data that is not an image")
    local = {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}
    call("chat_completion", ask(local), "a file: URL")
    info = call("model_info", {}, "model_info")
    assert info["result"]["structuredContent"]["input_modalities"] == ["text", "image"]
    server.close()


if __name__ == "__main__":
    main()
