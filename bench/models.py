"""The tiny real model made on the spot, and the environment of a server that serves it offline.

Shared by the benchmark (``--model tiny``) and the tests (tests/support.py re-exports it).
The model is a random 2-layer Llama (head size 64, which vLLM's CPU attention supports)
with a byte-level BPE tokenizer trained here and a chat template. Its output is gibberish
but it is a real checkpoint served by the real engine, and deterministic for a given seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Any local text will do for the tokenizer; the seed design document is at hand.
_CORPUS_FILES = [ROOT / "README.md", ROOT / "vllm_mcp" / "config.py"]


def make_tiny_model(directory: Path, *, chat_template: bool = True) -> Path:
    """Write the tiny model into ``directory`` (once) and return it."""
    marker = directory / "config.json"
    if marker.exists():
        return directory
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    text = []
    for f in _CORPUS_FILES:
        if f.exists():
            text.append(f.read_text(encoding="utf-8"))
    text.append(" ".join(f"word{i} number {i} the quick brown fox" for i in range(2000)))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2048,
        special_tokens=["<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.save_pretrained(directory, safe_serialization=True)
    fast.save_pretrained(directory)
    (directory / "generation_config.json").write_text(json.dumps({"do_sample": True}))
    return directory


def serve_env(model_dir: Path | str, **overrides: str) -> dict[str, str]:
    """Environment for a ``vllm-mcp serve`` subprocess on the tiny model, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_", "HUGGING_FACE"))}
    env.update(
        {
            "VLLM_MODEL_NAME": str(model_dir),
            "VLLM_DTYPE": "float32",
            "VLLM_MAX_MODEL_LEN": "1024",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_MCP_ENGINE_ARGS": json.dumps({"enforce_eager": True}),
            "VLLM_MCP_LOG_FORMAT": "json",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env
