"""Images in chat messages: the part shapes clients send, each checked, and handed on as data.

Two shapes are taken, in any message's ``content`` list, in order among the text parts:
OpenAI's ``{"type": "image_url", "image_url": {"url": ...}}`` (a ``data:image/...;base64,``
URL, or an ``http(s)`` URL of a domain the operator allows, VLLM_MCP_ALLOWED_MEDIA_DOMAINS)
and MCP's own image content ``{"type": "image", "data": <base64>, "mimeType": ...}``. Every
image is checked before the model sees it: its bytes (VLLM_MCP_MAX_IMAGE_BYTES), that Pillow
reads it as PNG, JPEG, WebP or GIF, its pixels (VLLM_MCP_MAX_IMAGE_PIXELS), their count
(VLLM_MCP_MAX_IMAGES_PER_CALL); each mistake is named by where it is (``messages[1].content[0]``)
and what to do. ``file:`` URLs and local paths are never read.

Once checked, each image part becomes ``{"type": "image_url", "image_url": {"url": <data
URL>}}`` (a fetched image too: a later turn neither fetches again nor sees other bytes): the
form sessions keep (docs/tools.md, "Images"). For the chat template an image part becomes what
the template takes (``template_messages``), and the images go to the engine decoded, in the
order their placeholders appear. No vLLM or MCP here.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine.types import ImageInput
from vllm_mcp.errors import InvalidArguments

IMAGE_PART_TYPES = ("image_url", "image", "input_image")
# Pillow's format name -> the MIME type a data URL of it carries.
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
MIME_TYPES = frozenset(FORMATS.values()) | {"image/jpg"}
MAX_REDIRECTS = 5
_DATA_URL = re.compile(r"data:([A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+)((?:;[^;,]*)*),(.*)", re.DOTALL)
_WHITESPACE = re.compile(rb"\s+")
_FIX = "send a PNG, JPEG, WebP or GIF"


class ImageUrl(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, description="A data:image/...;base64, URL, or an allowed http(s) URL.")
    detail: Literal["auto", "low", "high"] | None = Field(
        None, description="OpenAI's hint; accepted and not used (the model's processor decides)."
    )


class ImageUrlPart(BaseModel):
    """OpenAI's image content part."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["image_url"]
    image_url: ImageUrl


class McpImagePart(BaseModel):
    """MCP's image content, as a client that forwards a tool's image result sends it."""

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    type: Literal["image"]
    data: str = Field(min_length=1, description="The image file, base64.")
    mimeType: str = Field(description="image/png, image/jpeg, image/webp or image/gif.")
    annotations: dict[str, Any] | None = None
    meta: dict[str, Any] | None = Field(None, alias="_meta")


ImagePart = ImageUrlPart | McpImagePart


def first_image_part(arguments: Any) -> str | None:
    """Where the first image part of ``messages`` is (``messages[1].content[0]``), or None.

    Any JSON may come in (validation follows): what is not the expected shape has no image part.
    """
    messages = arguments.get("messages") if isinstance(arguments, dict) else None
    if not isinstance(messages, list):
        return None
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") in IMAGE_PART_TYPES:
                    return f"messages[{i}].content[{j}]"
    return None


def refusal(where: str, model: str) -> str:
    """Why a text-only model cannot take an image, naming the model."""
    return (
        f"invalid arguments: {where} is an image, and {model} is a text-only model (model_info's "
        "input_modalities: text); send text, or serve a multimodal model"
    )


def image_places(messages: Sequence[dict[str, Any]]) -> list[str]:
    """Where each image part of ``messages`` (as ``as_dict`` gives them) is, in order."""
    return [
        f"messages[{i}].content[{j}]"
        for i, m in enumerate(messages)
        if isinstance(m.get("content"), list)
        for j, part in enumerate(m["content"])
        if part.get("type") != "text"
    ]


def check_count(messages: Sequence[dict[str, Any]], settings: Settings) -> None:
    """No more images than VLLM_MCP_MAX_IMAGES_PER_CALL; checked before the call is admitted."""
    places = image_places(messages)
    limit = settings.max_images_per_call
    if len(places) > limit:
        if limit == 0:
            raise InvalidArguments(
                f"invalid arguments: {places[0]} is an image, and this server takes none "
                "(VLLM_MCP_MAX_IMAGES_PER_CALL=0); send text"
            )
        raise InvalidArguments(
            f"invalid arguments: {places[limit]} is image {limit + 1} of this call, more than "
            f"{limit} (VLLM_MCP_MAX_IMAGES_PER_CALL); send fewer images per call (a session keeps "
            "the earlier ones)"
        )


def check_model(
    messages: Sequence[dict[str, Any]], model: str, image_input: ImageInput | None, tokenizer: Any
) -> None:
    """The loaded model can take the images of this turn (a call sent while it loaded got here)."""
    places = image_places(messages)
    if not places:
        return
    if image_input is None:
        raise InvalidArguments(refusal(places[0], model))
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidArguments(
            f"invalid arguments: {places[0]} is an image, and {model} has no chat template to place "
            "it in (a base model); serve a multimodal chat model, or send text"
        )


# --- checking and fetching ------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """An image file that Pillow read, within the limits."""

    mime: str
    data: bytes

    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


def _bad(where: str, problem: str) -> InvalidArguments:
    return InvalidArguments(f"invalid arguments: {where}: {problem}")


async def resolve(messages: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """``messages`` with each image part checked and replaced by the data URL of its bytes.

    Fetches from allowed domains concurrently; decodes in threads (the event loop serves the
    other callers meanwhile). ``InvalidArguments`` names the first bad part, in message order
    (whichever failed first), and what to do.
    """
    jobs: dict[tuple[int, int], asyncio.Task[Checked]] = {}
    for i, m in enumerate(messages):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if part.get("type") != "text":
                where = f"messages[{i}].content[{j}]"
                jobs[(i, j)] = asyncio.ensure_future(_one(part, where, settings))
    if not jobs:
        return messages
    try:
        done = await asyncio.gather(*jobs.values(), return_exceptions=True)
    finally:
        for job in jobs.values():
            job.cancel()  # the caller went away: no fetch goes on without it
    for outcome in done:
        if isinstance(outcome, BaseException):
            raise outcome
    out = []
    for i, m in enumerate(messages):
        if isinstance(m.get("content"), list):
            parts = [
                _as_part(jobs[(i, j)].result()) if (i, j) in jobs else part
                for j, part in enumerate(m["content"])
            ]
            m = {**m, "content": parts}
        out.append(m)
    return out


def _as_part(image: Checked) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": image.data_url()}}


async def _one(part: dict[str, Any], where: str, settings: Settings) -> Checked:
    if part["type"] == "image":
        return await asyncio.to_thread(_inline, part["data"], part["mimeType"], where, settings)
    url = part["image_url"]["url"]
    if url[:5].lower() == "data:":
        return await asyncio.to_thread(_data_url, url, where, settings)
    data = await fetch(url, where, settings)
    return await asyncio.to_thread(check_image, data, where, settings, None)


def _inline(payload: str, mime: str, where: str, settings: Settings) -> Checked:
    declared = _declared(mime, where)
    return check_image(_base64(payload, where, settings), where, settings, declared)


def _data_url(url: str, where: str, settings: Settings) -> Checked:
    mime, data = parse_data_url(url, where, settings)
    return check_image(data, where, settings, mime)


def _declared(mime: str, where: str) -> str:
    mime = mime.strip().lower()
    if mime not in MIME_TYPES:
        raise _bad(where, f"mimeType {mime!r} is not an image type this server takes; {_FIX}")
    return mime


def parse_data_url(url: str, where: str, settings: Settings) -> tuple[str, bytes]:
    """The MIME type and bytes of a ``data:image/...;base64,`` URL."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise _bad(where, "a data URL must be data:<image type>;base64,<data>")
    mime, params, payload = match.groups()
    if "base64" not in [p.strip().lower() for p in params.split(";")]:
        raise _bad(where, "a data URL must be base64 (data:<image type>;base64,<data>)")
    return _declared(mime, where), _base64(payload, where, settings)


def _base64(text: str, where: str, settings: Settings) -> bytes:
    raw = _WHITESPACE.sub(b"", text.encode("ascii", "replace"))
    limit = settings.max_image_bytes
    if len(raw) // 4 * 3 > limit + 2:  # refused before it is decoded
        raise _too_big(where, len(raw) // 4 * 3, limit)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(where, "the image data is not valid base64; encode the file's bytes as base64") from None
    if len(data) > limit:
        raise _too_big(where, len(data), limit)
    return data


def _too_big(where: str, size: int, limit: int) -> InvalidArguments:
    return _bad(
        where,
        f"the image has {size} bytes, more than {limit} (VLLM_MCP_MAX_IMAGE_BYTES); send a smaller "
        "or more compressed image",
    )


def check_image(data: bytes, where: str, settings: Settings, declared: str | None) -> Checked:
    """That Pillow reads ``data`` whole as a supported format within the pixel limit."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in FORMATS:
                raise _bad(where, f"the image is {image.format}, which this server does not take; {_FIX}")
            width, height = image.size
            if width * height > settings.max_image_pixels:
                raise _bad(
                    where,
                    f"the image has {width}x{height} pixels, more than {settings.max_image_pixels} "
                    "(VLLM_MCP_MAX_IMAGE_PIXELS); send a smaller image",
                )
            image.load()  # the whole file: a truncated or damaged one fails here, not in the engine
            mime = FORMATS[image.format]
    except UnidentifiedImageError:
        said = f" (it says {declared})" if declared else ""
        raise _bad(where, f"the data is not an image{said}; {_FIX}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise _bad(where, f"the image cannot be read ({e}); {_FIX}") from None
    return Checked(mime, data)


def allowed(host: str, domains: Sequence[str]) -> bool:
    """Whether ``host`` is one of ``domains`` (``*.example.org``: any subdomain of it)."""
    host = host.lower().rstrip(".")
    for domain in domains:
        if domain.startswith("*."):
            if host.endswith(domain[1:]):
                return True
        elif host == domain:
            return True
    return False


def _checked_url(url: str, where: str, settings: Settings, via: str = "") -> httpx.URL:
    """``url`` if the server may fetch it: http(s), an allowed domain; else the reason."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        parsed = None
    scheme = parsed.scheme.lower() if parsed is not None else ""
    if scheme not in ("http", "https"):
        raise _bad(
            where,
            f"{via}the URL must be a data:image/...;base64, URL, or an http(s) URL of an allowed "
            "domain; file: URLs and local paths are never read. Send the image inline",
        )
    domains = settings.media_domains
    if not domains:
        raise _bad(
            where,
            f"{via}this server fetches no image URLs (VLLM_MCP_ALLOWED_MEDIA_DOMAINS is unset); send "
            "the image inline, as a data: URL or MCP image content",
        )
    assert parsed is not None
    if not allowed(parsed.host, domains):
        raise _bad(
            where,
            f"{via}{parsed.host or 'the URL'!s} is not a domain this server fetches images from "
            f"(VLLM_MCP_ALLOWED_MEDIA_DOMAINS: {', '.join(domains)}); send the image inline",
        )
    return parsed


async def fetch(url: str, where: str, settings: Settings) -> bytes:
    """The body at ``url`` (an allowed domain), at most VLLM_MCP_MAX_IMAGE_BYTES, within the timeout.

    Redirects are followed by hand, each checked as the first URL was: none leaves the allowed
    domains.
    """
    target = _checked_url(url, where, settings)
    timeout = settings.media_fetch_timeout
    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as client:
            return await asyncio.wait_for(_get(client, target, where, settings), timeout)
    except asyncio.TimeoutError:
        raise _bad(
            where,
            f"fetching the image took longer than {timeout:g} s (VLLM_MCP_MEDIA_FETCH_TIMEOUT); "
            "send it inline",
        ) from None
    except httpx.HTTPError as e:
        raise _bad(where, f"fetching the image failed ({type(e).__name__}: {e}); send it inline") from None


async def _get(client: httpx.AsyncClient, url: httpx.URL, where: str, settings: Settings) -> bytes:
    limit = settings.max_image_bytes
    for _ in range(MAX_REDIRECTS + 1):
        async with client.stream("GET", url) as response:
            if response.is_redirect and "location" in response.headers:
                nxt = url.join(response.headers["location"])
                url = _checked_url(str(nxt), where, settings, via=f"the image URL redirects to {nxt}: ")
                continue
            if response.status_code != 200:
                raise _bad(where, f"fetching the image got HTTP {response.status_code}; check the URL")
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_big(where, int(length), limit)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise _too_big(where, len(body), limit)
            return bytes(body)
    raise _bad(where, f"the image URL redirects more than {MAX_REDIRECTS} times; send it inline")


# --- for the chat template and the engine --------------------------------------------------


def template_messages(
    messages: Sequence[dict[str, Any]], form: ImageInput
) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """``messages`` as the chat template takes them, and each one's image data URLs by ``id``.

    The ids let the caller find the images of the messages a prompt kept (prompts.fit may drop
    the oldest turns), in the order the template writes their placeholders.
    """
    out: list[dict[str, Any]] = []
    images: dict[int, list[str]] = {}
    for m in messages:
        content = m.get("content")
        if not isinstance(content, list):
            out.append(m)
            continue
        urls = [p["image_url"]["url"] for p in content if p.get("type") == "image_url"]
        if form.parts:
            parts = [
                {"type": "text", "text": p["text"]} if p.get("type") == "text" else {"type": "image"}
                for p in content
            ]
            new = {**m, "content": parts}
        else:
            text = "".join(p["text"] for p in content if p.get("type") == "text")
            lines = [form.placeholder or "" for _ in urls] + ([text] if text else [])
            new = {**m, "content": "\n".join(lines)}
        images[id(new)] = urls
        out.append(new)
    return out, images


def decode(data_urls: Sequence[str]) -> list[Any]:
    """The PIL images of checked data URLs, RGB as vLLM's own loader makes them (run in a thread)."""
    from PIL import Image

    images = []
    for url in data_urls:
        payload = url.split(",", 1)[1]
        image = Image.open(io.BytesIO(base64.b64decode(payload)))
        image.load()
        images.append(image if image.mode == "RGB" else image.convert("RGB"))
    return images
