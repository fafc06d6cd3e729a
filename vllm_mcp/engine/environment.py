"""The process environment vLLM reads: set once, before vLLM is imported, for every process.

vLLM takes its settings from ``VLLM_*`` variables in this process and its engine processes, and
logs to stdout unless told otherwise; the server, the HTTP front ends, the worker node, doctor's
smoke test and the bench's raw engine all prepare their process here the same way.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os

from vllm_mcp.config import vllm_names
from vllm_mcp.config.settings import Settings
from vllm_mcp.engine import lifeline


def prepare_process_environment(settings: Settings) -> None:
    """Set vLLM's own variables before vLLM is imported.

    vLLM logs to stdout by default, which would corrupt the protocol stream, and
    reads its settings from the environment of this process and its children.
    """
    # Our settings share vLLM's VLLM_ prefix; vLLM warns about every name it does not
    # know, in this process and in each engine process. They are parsed by now.
    own = set(Settings.env_names().values()) - engine_env_names()
    # A gateway's own variables, its bearer token among them (FluidMCP passes its whole
    # environment to the servers it starts): no engine process or log may see them.
    gateway = {name for name in os.environ if name.startswith(GATEWAY_ENV_PREFIXES)}
    for name in own | gateway | {"HUGGING_FACE_HUB_TOKEN"}:
        os.environ.pop(name, None)
    # INFO: its engine processes tell the load phases only there (load_phase.py); the log
    # pump keeps those lines off stderr unless VLLM_LOG_LEVEL is DEBUG.
    vllm_level = "INFO"
    os.environ["VLLM_LOGGING_STREAM"] = "ext://sys.stderr"
    os.environ["VLLM_LOGGING_LEVEL"] = vllm_level
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = _number(settings.cpu_kvcache_space_gib)
    if settings.hf_token is not None:
        os.environ["HF_TOKEN"] = settings.hf_token.get_secret_value()
    # transformers' own advisory warnings are noise on a server's stderr.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if _is_vllm_cpu():
        # vllm-cpu 0.32 stores its AOT compile cache but cannot load it back ("'function' object
        # has no attribute 'finalize_loading'"), so every start compiles again; the older cache
        # works: SmolLM2 restarts in ~41 s instead of ~68 s here, generating as fast.
        os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")
    # The engine processes die with us, even on SIGKILL (see lifeline.py).
    lifeline.adopt_children()


GATEWAY_ENV_PREFIXES = ("FMCP_",)


def _is_vllm_cpu() -> bool:
    try:
        importlib.metadata.distribution("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def engine_env_names() -> frozenset[str]:
    """The environment variables vLLM itself reads (so ``config validate`` knows them).

    From ``vllm/envs.py`` alone while vLLM is not imported (vllm_mcp/config/vllm_names.py): ``serve``
    needs them before it reads its first request, and the package imports torch (~9 s of CPU).
    """
    import sys

    if "vllm.envs" not in sys.modules and (names := vllm_names.env_names()):
        return names
    import vllm.envs

    return frozenset(vllm.envs.environment_variables)


def cache_vllm_env() -> None:
    """Let vLLM read its ``VLLM_*`` variables once, now that they are settled.

    Uncached, vLLM's output processor reads one from ``os.environ`` per request per engine
    step (1.4 % of the front end's samples at c=16/64 on the tiny model, docs/performance.md).
    Its engine processes cache them after start-up the same way; nothing sets them later here
    (``prepare_process_environment`` runs before vLLM is imported).
    """
    with contextlib.suppress(ImportError, AttributeError):
        from vllm.envs import enable_envs_cache

        enable_envs_cache()
