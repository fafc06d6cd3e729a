"""Value rules of the settings that are more than a pydantic constraint, each written once.

``Settings`` (settings.py) applies the value rules through its validators; ``check_top_k`` is
also the rule for each call's ``top_k``; ``parallel_problem`` and ``unknown_engine_args`` need
facts from outside the settings (visible GPUs, vLLM's engine arguments), so doctor, ``config
validate`` and the engine call them. ``gpus_per_node`` is the one count of the GPUs a node's
share of the model takes (data x pipeline x tensor parallel over the nodes): the parallel rule
here, doctor's GPU checks and the multi-node rules all use it.

This module is the bottom of ``config``: it imports nothing of ``Settings`` (the rules that read
settings take any object with the fields they name, ``Parallelism``), so settings.py can
import it without a cycle.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

# A host name, an IPv4 address or a bracketed IPv6 address, with an optional port.
_HOST_ENTRY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?")
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_top_k(value: int) -> int:
    """Top-k is -1 (off) or at least 1: the rule for the default and for each call."""
    if value != -1 and value < 1:
        raise ValueError("must be -1 (disabled) or >= 1")
    return value


def parse_lora_modules(text: str) -> dict[str, str]:
    """``VLLM_MCP_LORA_MODULES``: ``name=path`` pairs, separated by spaces or commas.

    The syntax of ``vllm serve --lora-modules``. A path is a local directory or a Hugging Face
    id (``org/adapter``). Raises ``ValueError`` with a message that says what is wrong with
    which pair.
    """
    modules: dict[str, str] = {}
    for pair in re.split(r"[\s,]+", text.strip()):
        if not pair:
            continue
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{pair!r} is not a name=path pair (e.g. sql=/models/sql-lora)")
        if not _ADAPTER_NAME.match(name):
            raise ValueError(
                f"adapter name {name!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
            )
        if name in modules:
            raise ValueError(f"adapter name {name!r} is given twice")
        modules[name] = path
    return modules


def parse_json_object(v: Any) -> Any:
    """``VLLM_MCP_ENGINE_ARGS`` as text: empty is ``{}``, else it must be a JSON object."""
    if isinstance(v, str):
        if not v.strip():
            return {}
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(v, dict):
            raise ValueError('must be a JSON object such as {"enforce_eager": true}')
    return v


_SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "pwd", "apikey", "credential", "credentials"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def names_a_secret(key: str) -> bool:
    """Whether a setting's key names a secret (``hf_token``, ``apiKey``, ``db-password``).

    Words, not substrings: ``max_num_batched_tokens`` and ``tokenizer`` are no secrets.
    """
    words = [w.lower() for w in re.split(r"[_\-.\s]+", _CAMEL.sub("_", key)) if w]
    joined = "".join(words)
    return any(w in _SECRET_WORDS for w in words) or "apikey" in joined or "accesskey" in joined


def mask_engine_args(args: Any) -> Any:
    """``VLLM_MCP_ENGINE_ARGS`` as it may be shown: every value under a secret's key masked,
    nested objects too (``config show``, the start log, doctor)."""
    if isinstance(args, Mapping):
        return {
            k: ("<hidden>" if names_a_secret(str(k)) and v is not None else mask_engine_args(v))
            for k, v in args.items()
        }
    if isinstance(args, list):
        return [mask_engine_args(v) for v in args]
    return args


def check_host_list(v: str) -> str | None:
    """``VLLM_MCP_HTTP_ALLOWED_HOSTS``: comma-separated host, host:port or '*'; normalised."""
    entries = [e.strip() for e in v.split(",") if e.strip()]
    bad = [e for e in entries if e != "*" and not _HOST_ENTRY.fullmatch(e)]
    if bad:
        raise ValueError(
            f"{bad[0]!r} is not a host name, host:port or '*' (comma-separated, e.g. "
            "'mcp.example.org,10.0.0.5:8000')"
        )
    return ",".join(entries) or None


_DOMAIN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def check_domain_list(v: str) -> str | None:
    """``VLLM_MCP_ALLOWED_MEDIA_DOMAINS``: comma-separated host names, ``*.name`` for subdomains."""
    entries = [e.strip().lower().rstrip(".") for e in v.split(",") if e.strip()]
    bad = [e for e in entries if not _DOMAIN.fullmatch(e) or (e.startswith("*.") and "." not in e[2:])]
    if bad:
        raise ValueError(
            f"{bad[0]!r} is not a host name, or '*.' and a domain of two labels or more "
            "(comma-separated, no scheme, port or path; e.g. 'images.example.org,*.example.net')"
        )
    return ",".join(entries) or None


class HttpExposure(Protocol):
    """What ``open_hosts_problem`` reads of the settings."""

    @property
    def transport(self) -> str: ...
    @property
    def http_token_file(self) -> Any: ...
    @property
    def oauth_issuer(self) -> Any: ...
    @property
    def allowed_hosts(self) -> Any: ...


def open_hosts_problem(settings: HttpExposure) -> str | None:
    """``VLLM_MCP_HTTP_ALLOWED_HOSTS=*`` on an HTTP server without authentication, as a sentence."""
    s = settings
    authenticated = s.http_token_file is not None or s.oauth_issuer is not None
    if s.transport != "http" or authenticated or "*" not in s.allowed_hosts:
        return None
    return (
        "VLLM_MCP_HTTP_ALLOWED_HOSTS=* turns DNS-rebinding protection off, and without "
        "authentication any web page a local browser opens could then call this server; "
        "list the host names instead, or set VLLM_MCP_HTTP_TOKEN_FILE or VLLM_MCP_OAUTH_ISSUER"
    )


# --- rules that need more than the settings -------------------------------------


class Parallelism(Protocol):
    """The settings the parallelism rules read (``Settings`` has them; so may a test's object)."""

    @property
    def tensor_parallel_size(self) -> int: ...
    @property
    def pipeline_parallel_size(self) -> int: ...
    @property
    def nnodes(self) -> int: ...
    @property
    def distributed_executor_backend(self) -> str | None: ...
    @property
    def engine_args(self) -> Mapping[str, Any]: ...


def data_parallel_size(settings: Parallelism) -> int:
    """``data_parallel_size`` from ``VLLM_MCP_ENGINE_ARGS`` (vLLM's default 1 when unset or not >= 1)."""
    dp = settings.engine_args.get("data_parallel_size", 1)
    return dp if isinstance(dp, int) and not isinstance(dp, bool) and dp >= 1 else 1


def world_size(settings: Parallelism) -> int:
    """Workers of one model across all nodes: data x pipeline x tensor parallel (vLLM's count)."""
    return data_parallel_size(settings) * settings.pipeline_parallel_size * settings.tensor_parallel_size


def gpus_per_node(settings: Parallelism) -> int:
    """Workers (GPUs) on each node: vLLM splits the world evenly over ``VLLM_NNODES`` nodes."""
    return max(1, world_size(settings) // settings.nnodes)


def describe_parallelism(settings: Parallelism) -> str:
    """The product ``gpus_per_node`` counts, in the settings' names, for messages."""
    text = (
        f"VLLM_TENSOR_PARALLEL_SIZE ({settings.tensor_parallel_size}) x "
        f"VLLM_PIPELINE_PARALLEL_SIZE ({settings.pipeline_parallel_size})"
    )
    dp = data_parallel_size(settings)
    return text + (f" x data_parallel_size ({dp}, VLLM_MCP_ENGINE_ARGS)" if dp > 1 else "")


def parallel_problem(settings: Parallelism, gpu_count: int | None) -> str | None:
    """The model's share of this node needs more GPUs than are visible (vLLM would not start).

    None when it fits, when ``gpu_count`` is unknown, or with Ray, whose other nodes may bring GPUs.
    """
    needed = gpus_per_node(settings)
    if not gpu_count or needed <= gpu_count or settings.distributed_executor_backend == "ray":
        return None
    nodes = f" on each of VLLM_NNODES ({settings.nnodes}) nodes" if settings.nnodes > 1 else ""
    return (
        f"{describe_parallelism(settings)} needs {needed} "
        f"GPUs{nodes} but {gpu_count} are visible; lower it, or spread it over more nodes "
        "(VLLM_NNODES, docs/multinode.md)"
    )


def unknown_engine_args(engine_args: Mapping[str, Any], known: frozenset[str]) -> list[str]:
    """A line for each ``VLLM_MCP_ENGINE_ARGS`` key that is no vLLM engine argument (``known``)."""
    out = []
    for name in engine_args:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(f"VLLM_MCP_ENGINE_ARGS: unknown engine argument {name!r}{hint}")
    return out
