"""End to end: images reach a multimodal model, sent inline, as MCP content, or fetched.

One real ``vllm-mcp serve`` of the tiny random Idefics3 (tests/support/vision.py: a CLIP-like
vision tower on the tiny Llama, as SmolVLM is built) through the official MCP client, with
127.0.0.1 an allowed media domain and a real HTTP server there (tests/support/imagehost.py).
The model is random, so what is checked is that the image reaches it: the same image gives the
same greedy tokens however it is sent, another image other log-probabilities.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.imagehost import image_host, png
from tests.support.models import serve_env
from tests.support.servers import McpClient

pytestmark = pytest.mark.engine

RED = png((220, 20, 20))
BLUE = png((20, 20, 220), (64, 64))


def image_url(data: bytes) -> dict[str, Any]:
    return {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()},
    }


def mcp_image(data: bytes) -> dict[str, Any]:
    return {"type": "image", "data": base64.b64encode(data).decode(), "mimeType": "image/png"}


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    routes = {
        "/red.png": (200, {"Content-Type": "image/png"}, RED),
        "/moved": (302, {"Location": "/red.png"}, b""),
    }
    with image_host(routes) as url:
        routes["/away"] = (302, {"Location": url.replace("127.0.0.1", "localhost") + "/red.png"}, b"")
        yield url


@pytest.fixture(scope="module")
def client(tiny_vision_model: Path) -> Iterator[McpClient]:
    env = serve_env(
        tiny_vision_model, VLLM_MCP_ALLOWED_MEDIA_DOMAINS="127.0.0.1", VLLM_DEFAULT_MAX_TOKENS="4"
    )
    c = McpClient(env)
    c.wait_ready(timeout=600)
    yield c
    c.close()


def ask(client: McpClient, *parts: dict[str, Any], **arguments: Any) -> dict[str, Any]:
    content = [{"type": "text", "text": "What is in the picture?"}, *parts]
    result = client.call(
        "chat_completion",
        {"messages": [{"role": "user", "content": content}], "temperature": 0, "logprobs": 1, **arguments},
    )
    assert not result.is_error, result.content[0].text
    return dict(result.structured_content)


def tokens(result: dict[str, Any]) -> list[int]:
    return [entry["token_id"] for entry in result["logprobs"]]


def first_logprob(result: dict[str, Any]) -> float:
    return float(result["logprobs"][0]["logprob"])


def test_model_info_says_the_model_takes_images(client: McpClient) -> None:
    info = client.info()
    assert info["input_modalities"] == ["text", "image"] and info["multimodal"] is True


def test_an_image_inline_or_as_mcp_content_reaches_the_model(client: McpClient) -> None:
    red = ask(client, image_url(RED))
    assert red["text"] and red["finish_reason"] == "length" and red["usage"]["completion_tokens"] == 4
    assert tokens(ask(client, mcp_image(RED))) == tokens(red)
    # Another image, same text: the model saw the pixels.
    assert abs(first_logprob(ask(client, mcp_image(BLUE))) - first_logprob(red)) > 1e-4


def test_an_image_from_an_allowed_domain_is_fetched_following_its_redirects(
    client: McpClient, host: str
) -> None:
    inline = ask(client, image_url(RED))
    for path in ("/red.png", "/moved"):
        fetched = ask(client, {"type": "image_url", "image_url": {"url": host + path}})
        assert tokens(fetched) == tokens(inline)


def test_a_redirect_off_the_allowed_domains_is_refused(client: McpClient, host: str) -> None:
    part = {"type": "image_url", "image_url": {"url": host + "/away"}}
    result = client.call("chat_completion", {"messages": [{"role": "user", "content": [part]}]})
    assert result.is_error
    text = result.content[0].text
    assert "messages[0].content[0]: the image URL redirects to http://localhost:" in text
    assert "localhost is not a domain this server fetches images from" in text


def test_a_session_keeps_the_image_for_the_next_turn(client: McpClient) -> None:
    later: dict[bytes, dict[str, Any]] = {}
    for name, image in (("red", RED), ("blue", BLUE)):
        ask(client, image_url(image), session_id=f"picture-{name}")
        later[image] = ask(client, session_id=f"picture-{name}")  # text only: the image is in the session
    assert abs(first_logprob(later[RED]) - first_logprob(later[BLUE])) > 1e-4
    assert later[RED]["usage"]["prompt_tokens"] > ask(client)["usage"]["prompt_tokens"]


def test_what_is_not_an_image_is_named_over_the_wire(client: McpClient) -> None:
    part = {"type": "image", "data": base64.b64encode(b"GIF? no, text").decode(), "mimeType": "image/png"}
    result = client.call("chat_completion", {"messages": [{"role": "user", "content": [part]}]})
    assert result.is_error and result.content[0].text == (
        "invalid arguments: messages[0].content[0]: the data is not an image (it says image/png); "
        "send a PNG, JPEG, WebP or GIF"
    )


def test_image_tokens_that_overflow_the_context_are_refused_by_vllm_by_name(client: McpClient) -> None:
    # 1020 tokens with the image as its one placeholder (the server's count fits 1024: "x " is one
    # token of the tiny models' frozen tokenizer, tests/support/models.py); vLLM's processor makes
    # the image 7 tokens, and the prompt 1026.
    content = [{"type": "text", "text": "x " * 1000}, image_url(RED)]
    result = client.call("chat_completion", {"messages": [{"role": "user", "content": content}]})
    assert result.is_error
    assert result.content[0].text.startswith(
        "vLLM rejected the request: The decoder prompt (length 1026) is longer than the maximum model "
        "length of 1024. Make sure that `max_model_len` is no smaller than the number of text tokens "
        "plus multimodal tokens."
    ), result.content[0].text
    assert client.info()["server_state"] == "ready"
