"""What vLLM says about a multimodal model's images, for the tools (tools/media.py) to follow."""

from __future__ import annotations

import contextlib
from typing import Any

from vllm_mcp.engine.types import ImageInput


def image_input(model_config: Any, tokenizer: Any) -> ImageInput | None:
    """How the model's chat template takes an image, by vLLM's own rules (as ``vllm serve``);
    None when the model takes no images (audio only, say)."""
    from vllm.model_executor.model_loader import get_model_cls
    from vllm.renderers.hf import resolve_chat_template_content_format

    try:
        placeholder = get_model_cls(model_config).get_placeholder_str("image", 1)
    except ValueError:  # the model's class says it takes no images
        return None
    content_format = "string"
    with contextlib.suppress(Exception):  # no template, or one vLLM cannot parse: strings
        content_format = resolve_chat_template_content_format(
            None, None, "auto", tokenizer, model_config=model_config
        )
    return ImageInput(parts=content_format == "openai", placeholder=placeholder)
