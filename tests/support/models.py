"""The tiny real model made on the spot, and the environment of a server that serves it offline.

Shared by the tests and the benchmark (``--model tiny``, bench/run.py imports it from here).
The model is a random 2-layer Llama (head size 64, which vLLM's CPU attention supports)
with a byte-level BPE tokenizer trained here and a chat template. Its output is gibberish
but it is a real checkpoint served by the real engine, and deterministic for a given seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

THINKING_TEMPLATE = (
    "{% if tools %}<|system|>\nTools:{% for t in tools %} {{ t | tojson }}{% endfor %}</s>\n{% endif %}"
    "{% if reasoning_effort is defined %}<|effort|>\n{{ reasoning_effort }}</s>\n{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] or '' }}"
    "{% for c in m.get('tool_calls') or [] %}<tool_call>"
    "{{ {'name': c['function']['name'], 'arguments': c['function']['arguments']} | tojson }}"
    "</tool_call>{% endfor %}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
"""A Qwen3-like template: tools listed in a system turn, tool calls as hermes ``<tool_call>``
JSON, ``enable_thinking: false`` closes an empty thinking block, ``reasoning_effort`` shown."""

THINKING_TOKENS = ("<think>", "</think>", "<tool_call>", "</tool_call>")

# Any text will do for the tokenizer, as long as it never changes: the tiny models' greedy
# replies and token counts follow from it, and tests are written against them. It once read
# README.md and config/settings.py as they stood, so each edit of those files made other models
# in CI than on a machine that had made its models before (CI saw a tool call cut by max_tokens
# and an image prompt that no longer overflowed). Those two texts, frozen as of 2026-12-07:
_CORPUS = Path(__file__).with_name("tokenizer_corpus.json")


def make_tiny_model(
    directory: Path, *, chat_template: bool = True, thinking: bool = False, heads: int = 2
) -> Path:
    """Write the tiny model into ``directory`` (once) and return it.

    ``thinking``: its tokenizer has ``THINKING_TOKENS`` (single, non-special tokens, as Qwen3's,
    so they survive decoding) and its chat template is ``THINKING_TEMPLATE``. ``heads``: attention
    heads of 64 dimensions each (vLLM's CPU attention needs one of its head sizes), so the hidden
    size is ``64 * heads``.
    """
    marker = directory / "config.json"
    if marker.exists():
        return directory
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    text = list(json.loads(_CORPUS.read_text(encoding="utf-8")))
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
    if thinking:
        from tokenizers import AddedToken

        fast.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINKING_TOKENS])
        fast.chat_template = THINKING_TEMPLATE
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64 * heads,
        intermediate_size=128 * heads,
        num_hidden_layers=2,
        num_attention_heads=heads,
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


EMBEDDING_SIZE = 192
"""The tiny embedding model's vector size (three heads of 64)."""


def make_tiny_embedding_model(directory: Path) -> Path:
    """A tiny random Llama (hidden size ``EMBEDDING_SIZE``) to serve as an embedding model.

    A causal LM: served with ``kind = "embed"``, vLLM's pooling runner converts it (``convert``
    "embed": last-token pooling, L2-normalized), as it does real decoder-based embedding models.
    Its own size, so a test sees the vectors are this model's and not the chat model's.
    """
    return make_tiny_model(directory, chat_template=False, heads=EMBEDDING_SIZE // 64)


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


def make_tiny_adapter(directory: Path, base: Path, seed: int, rank: int = 8) -> Path:
    """A random LoRA adapter for the tiny model, in PEFT's on-disk format (written directly).

    PEFT would start B at zero (no effect until trained); random A and B make each adapter
    change the output, differently per ``seed``.
    """
    config_file = directory / "adapter_config.json"
    if config_file.exists():
        return directory
    import torch
    from safetensors.torch import save_file

    base_config = json.loads((base / "config.json").read_text())
    hidden = base_config["hidden_size"]
    head = hidden // base_config["num_attention_heads"]
    shapes = {"q_proj": (hidden, hidden), "v_proj": (hidden, head * base_config["num_key_value_heads"])}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(base_config["num_hidden_layers"]):
        for module, (fan_in, fan_out) in shapes.items():
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, fan_in, generator=generator) * 0.5
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, rank, generator=generator) * 0.5
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base),
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": sorted(shapes),
        "bias": "none",
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
    }
    config_file.write_text(json.dumps(config, indent=2))
    return directory
