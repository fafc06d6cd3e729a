"""Image content parts, as clients send them, told apart before the arguments are validated.

OpenAI-style ``{"type": "image_url", "image_url": {"url": ...}}`` and MCP's own
``{"type": "image", "data": ..., "mimeType": ...}`` are recognised by shape, so a call that
sends one hears what the served model can take, by name, rather than a schema error.
No vLLM or MCP here.
"""

from __future__ import annotations

from typing import Any

IMAGE_PART_TYPES = ("image_url", "image", "input_image")


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


def refusal(where: str, model: str, multimodal: bool) -> str:
    """Why an image part cannot be served, naming the model."""
    if multimodal:
        return (
            f"invalid arguments: {where} is an image: {model} takes images, but this server does not "
            "pass images to it yet (model_info's input_modalities); send text"
        )
    return (
        f"invalid arguments: {where} is an image, and {model} is a text-only model (model_info's "
        "input_modalities: text); send text, or serve a multimodal model"
    )
