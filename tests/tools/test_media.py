"""Images in chat_completion: each shape taken, each mistake named, the images' way to the engine.

Over the FakeEngine double (tests/support/doubles.py): a text-only one, and one that says it
takes images (``image_input``, as vLLM reports a multimodal model's template) and records the
images each request carried. Image URLs are fetched from a real HTTP server on 127.0.0.1
(tests/support/imagehost.py). The real engine's side is tests/e2e/test_images.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import random
import threading
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from tests.support.imagehost import image_host, png
from vllm_mcp.engine.types import ImageInput
from vllm_mcp.tools import handlers as tools
from vllm_mcp.tools import media

RED = png((200, 30, 30))
BLUE = png((30, 30, 200), (8, 8))
OPENAI = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
MCP = {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def data_url(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64(data)}"}}


def mcp(data: bytes, mime: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "data": b64(data), "mimeType": mime}


def url(address: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": address}}


def seeing(**env: str) -> tuple[Any, FakeEngine]:
    """Tools over a double of a model whose template loops over content parts."""
    engine = FakeEngine(loaded=True, model_name="tiny-vision", image_input=ImageInput(parts=True))
    return tools_over(engine, **env), engine


def chat(t: Any, *parts: Any, **arguments: Any) -> Any:
    content = [{"type": "text", "text": "what is it?"}, *parts]
    return asyncio.run(t.chat_completion({"messages": [{"role": "user", "content": content}], **arguments}))


def refused(t: Any, *parts: Any) -> str:
    with pytest.raises(tools.InvalidArguments) as e:
        chat(t, *parts)
    return str(e.value)


def colours(images: list[Any]) -> list[tuple[int, int, int]]:
    return [image.getpixel((0, 0)) for image in images]


# --- text-only models ---------------------------------------------------------------------


@pytest.mark.parametrize("part", [OPENAI, MCP])
def test_a_text_only_model_refuses_an_image_by_name(part: dict[str, Any]) -> None:
    t = tools_over(FakeEngine(loaded=True, model_name="tiny-llama"))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "x"}, part]},
    ]
    with pytest.raises(tools.InvalidArguments) as e:
        asyncio.run(t.chat_completion({"messages": messages}))
    assert str(e.value) == (
        "invalid arguments: messages[1].content[1] is an image, and tiny-llama is a text-only model "
        "(model_info's input_modalities: text); send text, or serve a multimodal model"
    )


def test_a_call_sent_while_a_text_only_model_loads_is_refused_once_it_is_known() -> None:
    engine = FakeEngine(model_name="tiny-llama")  # loading: nobody knows yet what it takes
    t = tools_over(engine)

    async def run() -> str:
        call = asyncio.ensure_future(
            t.chat_completion({"messages": [{"role": "user", "content": [data_url(RED)]}]})
        )
        await engine.start()
        with pytest.raises(tools.InvalidArguments) as e:
            await call
        return str(e.value)

    assert "messages[0].content[0] is an image, and tiny-llama is a text-only model" in asyncio.run(run())
    assert engine.started == []


def test_model_info_says_what_a_call_can_send() -> None:
    info = asyncio.run(tools_over(FakeEngine(loaded=True)).model_info())
    assert info.input_modalities == ["text"] and info.multimodal is False
    info = asyncio.run(seeing()[0].model_info())
    assert info.input_modalities == ["text", "image"] and info.multimodal is True


@pytest.mark.parametrize("arguments", [None, [], {"messages": "x"}, {"messages": [1, {"content": 5}]}])
def test_any_other_shape_has_no_image_part(arguments: Any) -> None:
    assert media.first_image_part(arguments) is None


# --- multimodal models: the images' way --------------------------------------------------


def test_images_reach_the_engine_in_order_with_their_places_in_the_template() -> None:
    t, engine = seeing()
    chat(t, data_url(RED), {"type": "text", "text": " and "}, mcp(BLUE))
    [images] = engine.images.values()
    assert colours(images) == [(200, 30, 30), (30, 30, 200)]
    assert "<user>what is it?<image> and <image><assistant>" in engine.tokenizer.texts[-1]


def test_a_template_of_strings_gets_the_models_placeholder_a_line_each_before_the_text() -> None:
    engine = FakeEngine(loaded=True, image_input=ImageInput(parts=False, placeholder="<|img|>"))
    chat(tools_over(engine), mcp(RED), mcp(BLUE))
    assert "<user><|img|>\n<|img|>\nwhat is it?<assistant>" in engine.tokenizer.texts[-1]
    assert len(engine.images[engine.started[-1]]) == 2


def test_jpeg_webp_and_gif_are_taken_and_other_modes_become_rgb() -> None:
    from PIL import Image

    t, engine = seeing()
    for fmt, mime, mode in (
        ("JPEG", "image/jpeg", "L"),
        ("WEBP", "image/webp", "RGBA"),
        ("GIF", "image/gif", "P"),
    ):
        out = io.BytesIO()
        Image.new(mode, (16, 16)).save(out, format=fmt)
        chat(t, mcp(out.getvalue(), mime))
        assert engine.images[engine.started[-1]][0].mode == "RGB"


def test_a_session_keeps_each_image_as_a_data_url_and_sends_it_again_next_turn() -> None:
    t, engine = seeing()
    chat(t, mcp(RED), session_id="s")
    history = asyncio.run(t.sessions.history("s"))
    assert history[0]["content"][1] == data_url(RED)  # MCP content, kept in OpenAI's form
    asyncio.run(t.chat_completion({"messages": [{"role": "user", "content": "and now?"}], "session_id": "s"}))
    assert colours(engine.images[engine.started[-1]]) == [(200, 30, 30)]


def test_the_images_of_history_turns_dropped_to_fit_the_context_are_not_sent() -> None:
    engine = FakeEngine(loaded=True, max_model_len=400, image_input=ImageInput(parts=True))
    t = tools_over(engine)
    for colour in (RED, BLUE):
        content = [{"type": "text", "text": "x" * 120}, mcp(colour)]
        asyncio.run(
            t.chat_completion({"messages": [{"role": "user", "content": content}], "session_id": "s"})
        )
    result = asyncio.run(
        t.chat_completion(
            {"messages": [{"role": "user", "content": "y" * 60}], "session_id": "s", "max_tokens": 40}
        )
    )
    assert result.dropped_history_messages == 2
    assert colours(engine.images[engine.started[-1]]) == [(30, 30, 200)]


# --- each mistake, named --------------------------------------------------------------------


def _noise_png(side: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    pixels = random.Random(0).randbytes(side * side * 3)  # noise: PNG cannot compress it
    Image.frombytes("RGB", (side, side), pixels).save(out, format="PNG")
    return out.getvalue()


def _bmp() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="BMP")
    return out.getvalue()


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ({"type": "image", "data": "@@@@", "mimeType": "image/png"}, "the image data is not valid base64"),
        (
            mcp(b"just some text"),
            "the data is not an image (it says image/png); send a PNG, JPEG, WebP or GIF",
        ),
        (mcp(RED, "image/tiff"), "mimeType 'image/tiff' is not an image type this server takes"),
        (mcp(_bmp(), "image/png"), "the image is BMP, which this server does not take; send a PNG, JPEG"),
        (mcp(RED[: len(RED) // 2]), "the image cannot be read ("),
        (url("data:image/png," + b64(RED)), "a data URL must be base64 (data:<image type>;base64,<data>)"),
        (url("data:nonsense"), "a data URL must be data:<image type>;base64,<data>"),
        (url("data:text/plain;base64,aGk="), "mimeType 'text/plain' is not an image type this server takes"),
        (url("file:///etc/passwd"), "file: URLs and local paths are never read. Send the image inline"),
        (url("/home/me/cat.png"), "file: URLs and local paths are never read"),
        (
            url("https://images.example.org/cat.png"),
            "this server fetches no image URLs (VLLM_MCP_ALLOWED_MEDIA",
        ),
    ],
)
def test_a_bad_image_is_named_by_its_place_and_what_to_do(part: dict[str, Any], expected: str) -> None:
    message = refused(seeing()[0], part)
    assert message.startswith("invalid arguments: messages[0].content[1]: ") and expected in message, message


def test_size_pixel_and_count_limits_are_named_with_their_settings() -> None:
    big = _noise_png(64)
    message = refused(seeing(VLLM_MCP_MAX_IMAGE_BYTES="1024")[0], mcp(big))
    assert f"the image has {len(big)} bytes, more than 1024 (VLLM_MCP_MAX_IMAGE_BYTES)" in message
    message = refused(seeing(VLLM_MCP_MAX_IMAGE_PIXELS="100")[0], data_url(RED))
    assert "the image has 40x30 pixels, more than 100 (VLLM_MCP_MAX_IMAGE_PIXELS); send a smaller" in message
    message = refused(seeing(VLLM_MCP_MAX_IMAGES_PER_CALL="1")[0], mcp(RED), mcp(RED))
    assert message == (
        "invalid arguments: messages[0].content[2] is image 2 of this call, more than 1 "
        "(VLLM_MCP_MAX_IMAGES_PER_CALL); send fewer images per call (a session keeps the earlier ones)"
    )
    message = refused(seeing(VLLM_MCP_MAX_IMAGES_PER_CALL="0")[0], mcp(RED))
    assert "messages[0].content[1] is an image, and this server takes none" in message


def test_a_huge_base64_payload_is_refused_before_it_is_decoded() -> None:
    huge = {"type": "image", "data": "A" * 8_000_000, "mimeType": "image/png"}
    assert "more than 5242880 (VLLM_MCP_MAX_IMAGE_BYTES)" in refused(seeing()[0], huge)


# --- image URLs: allowed domains only ------------------------------------------------------


def test_an_allowed_domain_is_fetched_redirects_checked_each_time() -> None:
    routes = {
        "/red.png": (200, {"Content-Type": "image/png"}, RED),
        "/moved": (301, {"Location": "/red.png"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/big.png": (200, {}, _noise_png(64)),
    }
    with image_host(routes) as host:
        routes["/away"] = (302, {"Location": host.replace("127.0.0.1", "localhost") + "/red.png"}, b"")
        t, engine = seeing(VLLM_MCP_ALLOWED_MEDIA_DOMAINS="127.0.0.1", VLLM_MCP_MAX_IMAGE_BYTES="2048")
        chat(t, url(host + "/red.png"), url(host + "/moved"), session_id="s")
        assert colours(engine.images[engine.started[-1]]) == [(200, 30, 30)] * 2
        # The session keeps the bytes fetched, not the URL: a later turn fetches nothing.
        assert asyncio.run(t.sessions.history("s"))[0]["content"][1] == data_url(RED)
        where = "invalid arguments: messages[0].content[1]: "
        assert (
            refused(t, url(host + "/missing.png")) == where + "fetching the image got HTTP 404; check the URL"
        )
        assert (
            f"{where}the image URL redirects to {host.replace('127.0.0.1', 'localhost')}/red.png: "
            in refused(t, url(host + "/away"))
        )
        allowed = "(VLLM_MCP_ALLOWED_MEDIA_DOMAINS: 127.0.0.1)"
        assert f"localhost is not a domain this server fetches images from {allowed}" in refused(
            t, url(host + "/away")
        )
        assert "redirects more than 5 times" in refused(t, url(host + "/loop"))
        assert "more than 2048 (VLLM_MCP_MAX_IMAGE_BYTES)" in refused(t, url(host + "/big.png"))
        assert "example.org is not a domain this server fetches images from" in refused(
            t, url("https://example.org/red.png")
        )


def test_a_fetch_that_does_not_answer_in_time_is_named_with_its_setting() -> None:
    stall = threading.Event()
    with image_host({"/slow.png": (0, {}, b"")}, stall) as host:
        t, _ = seeing(VLLM_MCP_ALLOWED_MEDIA_DOMAINS="127.0.0.1", VLLM_MCP_MEDIA_FETCH_TIMEOUT="0.2")
        assert (
            "fetching the image took longer than 0.2 s (VLLM_MCP_MEDIA_FETCH_TIMEOUT); send it inline"
            in refused(t, url(host + "/slow.png"))
        )


@pytest.mark.parametrize(
    ("host", "domains", "expected"),
    [
        ("images.example.org", ["images.example.org"], True),
        ("IMAGES.example.org.", ["images.example.org"], True),
        ("cdn.images.example.org", ["*.example.org"], True),
        ("example.org", ["*.example.org"], False),  # '*.' is the subdomains only
        ("badexample.org", ["*.example.org"], False),
        ("example.org.evil.net", ["example.org"], False),
        ("other.org", [], False),
    ],
)
def test_the_domain_rule(host: str, domains: list[str], expected: bool) -> None:
    assert media.allowed(host, domains) is expected
