"""``vllm-mcp prefetch``: put a model's weights in the Hugging Face cache ahead of time.

Only what vLLM loads is fetched: config and tokenizer files, and one copy of the
weights (safetensors; ``.bin`` only when a repository has no safetensors). The
revision is resolved to a commit first and the download pinned to it, so the
commit printed is the one on disk. Downloads resume where they stopped (that is
huggingface_hub's cache), and every hub failure becomes one line, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import lora
from vllm_mcp.engine import source as model_source
from vllm_mcp.engine.source import explain_hub_error
from vllm_mcp.errors import EmbeddedModelError, ModelNotFound, PrefetchError

# Small top-level files vLLM or transformers may read besides the weights.
_SIDE_FILES = (
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
_SIDE_SUFFIXES = (".json", ".tiktoken", ".model", ".py", ".jinja")
_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".gguf",
    ".onnx",
    ".h5",
    ".msgpack",
    ".ot",
    ".tflite",
    ".ckpt",
    ".npz",
)
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"


@dataclass(frozen=True)
class PrefetchResult:
    model: str
    commit: str | None
    path: Path
    files: tuple[str, ...]


def select_files(repo_files: Iterable[str], index_weights: Iterable[str] | None = None) -> list[str]:
    """The files of a repository that vLLM needs, in a stable order.

    Top-level config/tokenizer files plus one set of weights: the safetensors (only
    those named by ``index_weights``, the index's ``weight_map``, when given, so that
    duplicate consolidated files are skipped), else the ``.bin`` files. Files in
    sub-folders (``original/``, ``onnx/``...) are never needed. Raises ValueError when
    the repository has no weights vLLM can load.
    """
    top = sorted(f for f in set(repo_files) if "/" not in f)
    safetensors = [f for f in top if f.endswith(".safetensors")]
    bins = [f for f in top if f.endswith(".bin") and f != "training_args.bin"]
    if safetensors:
        if index_weights is not None:
            wanted = set(index_weights)
            safetensors = [f for f in safetensors if f in wanted]
        weights, skip_index = safetensors, BIN_INDEX
    elif bins:
        weights, skip_index = bins, SAFETENSORS_INDEX
    else:
        raise ValueError(
            "no .safetensors or .bin weights at the top of the repository "
            "(GGUF-only or other formats are not loaded by vllm-mcp)"
        )
    side = [
        f
        for f in top
        if not f.endswith(_WEIGHT_SUFFIXES)
        and f != skip_index
        and (f in _SIDE_FILES or f.startswith("tokenizer") or f.endswith(_SIDE_SUFFIXES))
        and not f.lower().startswith(("readme", "license", "notice", "use_policy"))
    ]
    return sorted(set(side) | set(weights))


def prefetch(
    model: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> PrefetchResult:
    """Download what vLLM needs of ``model`` at ``revision`` into the cache."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    api = HfApi(endpoint=endpoint, token=token or False)
    try:
        info = api.model_info(model, revision=revision)
        commit = info.sha
        files = [s.rfilename for s in info.siblings or []]
        index_weights = None
        if SAFETENSORS_INDEX in files:
            index = hf_hub_download(
                model,
                SAFETENSORS_INDEX,
                revision=commit,
                cache_dir=cache_dir,
                token=token or False,
                endpoint=endpoint,
            )
            index_weights = set(json.loads(Path(index).read_text())["weight_map"].values())
        try:
            wanted = select_files(files, index_weights)
        except ValueError as e:
            raise PrefetchError(f"{model}: {e}") from None
        (enable_progress_bars if progress else disable_progress_bars)()
        path = snapshot_download(
            model,
            revision=commit,
            cache_dir=cache_dir,
            allow_patterns=wanted,
            token=token or False,
            endpoint=endpoint,
        )
    except PrefetchError:
        raise
    except Exception as e:
        raise PrefetchError(explain_hub_error(e, model, revision, bool(token))) from None
    return PrefetchResult(model, commit, Path(path), tuple(wanted))


def prefetch_for_settings(
    settings: Settings,
    model: str | None = None,
    revision: str | None = None,
    progress: bool = True,
    endpoint: str | None = None,
) -> PrefetchResult:
    """``prefetch MODEL`` with the token and cache from the settings; 'embedded' converts."""
    model = model or settings.model_name
    try:
        source = model_source.locate(model, settings.cache_dir)
    except ModelNotFound as e:
        raise PrefetchError(
            f"{e}: give a Hugging Face model id, a checkpoint directory or 'embedded'"
        ) from None
    if source.kind == "embedded":
        if revision:
            raise PrefetchError("the embedded model has no revisions; drop --revision")
        from vllm_mcp.engine import embedded

        try:
            path = embedded.prepare_embedded_model(settings.cache_dir)
        except EmbeddedModelError as e:
            raise PrefetchError(str(e)) from None
        except OSError as e:
            raise PrefetchError(
                f"cannot prepare the embedded model in {settings.cache_dir}: {e.strerror or e}"
            ) from None
        return PrefetchResult(
            embedded.DISPLAY_NAME, None, path, tuple(sorted(f.name for f in path.iterdir()))
        )
    if source.path is not None:
        return PrefetchResult(model, None, source.path, tuple(sorted(f.name for f in source.path.iterdir())))
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    return prefetch(model, revision=revision, token=token, progress=progress, endpoint=endpoint)


def prefetch_adapters(
    settings: Settings, progress: bool = True, endpoint: str | None = None, cache_dir: Path | None = None
) -> list[tuple[str, PrefetchResult]]:
    """Each ``VLLM_MCP_LORA_MODULES`` adapter: Hub ids downloaded (as models are), paths checked."""
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    out = []
    for name, path in settings.lora_modules.items():
        if lora.is_local(path):
            local = Path(path).expanduser()
            if not (local / "adapter_config.json").is_file():
                raise PrefetchError(
                    f"adapter {name}: {path} is not a LoRA adapter directory (no adapter_config.json)"
                )
            out.append(
                (name, PrefetchResult(path, None, local, tuple(sorted(f.name for f in local.iterdir()))))
            )
            continue
        try:
            out.append(
                (name, prefetch(path, token=token, progress=progress, endpoint=endpoint, cache_dir=cache_dir))
            )
        except PrefetchError as e:
            raise PrefetchError(f"adapter {name}: {e}") from None
    return out
