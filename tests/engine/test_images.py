"""vLLM's word on a multimodal model's images (engine/images.py), read from its config, no engine.

The tiny Idefics3 (tests/support/vision.py) with its own template, which loops over content
parts, and with a template of strings: vLLM's content-format detection tells them apart, and
the model's class gives its placeholder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vllm_mcp.engine import images
from vllm_mcp.engine.types import ImageInput


def _model(directory: Path) -> tuple[Any, Any]:
    from transformers import AutoTokenizer
    from vllm.config import ModelConfig

    return ModelConfig(
        model=str(directory), dtype="float32", max_model_len=512
    ), AutoTokenizer.from_pretrained(directory)


def test_how_the_template_takes_images_is_vllms_call(tiny_vision_model: Path) -> None:
    config, tokenizer = _model(tiny_vision_model)
    assert config.is_multimodal_model
    assert images.image_input(config, tokenizer) == ImageInput(parts=True, placeholder="<image>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    tokenizer.name_or_path = "a template of strings"  # vLLM caches the format per tokenizer name
    assert images.image_input(config, tokenizer) == ImageInput(parts=False, placeholder="<image>")
