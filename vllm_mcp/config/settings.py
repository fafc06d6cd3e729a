"""The one typed configuration object, built and validated in one place.

Every setting has an environment variable (the seed's ``VLLM_*`` names, ours
``VLLM_MCP_*``) and a ``serve`` option. ``Settings.load`` is the only code that
turns the environment into settings; everything else receives a ``Settings``. The
environment is read here once more, never for a setting's value: ``child_environment``
copies it for a child (and ``check.validate`` looks at every name in it for typos).

Each validation rule lives once: here, or in ``rules`` (``oauth``, ``multinode``,
``store_location``) when it is more than a field constraint (``load`` layers the sources and
explains errors; ``check`` gathers what the rules find for ``config validate``). A
combination that only limits what calls get (a default reply longer than the context, say) is
a warning (``Settings.warnings``), shown by ``doctor`` and ``config validate`` and logged by
``serve``; only what cannot serve at all (or serves HTTP to the network without a token) is
refused, so a supervisor does not restart the server in a loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from vllm_mcp.config import models as models_file
from vllm_mcp.config import multinode, store_location
from vllm_mcp.config import oauth as oauth_rules
from vllm_mcp.config import rules as config_rules
from vllm_mcp.config.load import Source, child_environment, explain, layered, mask_secret
from vllm_mcp.config.models import ModelSpec
from vllm_mcp.config.parsers import check_parser_name
from vllm_mcp.config.rules import check_top_k, is_loopback, parallel_problem, unknown_engine_args
from vllm_mcp.errors import ConfigError

__all__ = [
    "EMBEDDED_MODEL",
    "ModelSpec",
    "Settings",
    "Source",
    "check_top_k",
    "child_environment",
    "is_loopback",
    "mask_secret",
    "parallel_problem",
    "unknown_engine_args",
]

EMBEDDED_MODEL = "embedded"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "vllm-mcp"


class Settings(BaseModel):
    """Everything ``vllm-mcp`` can be told. Field aliases are the environment names."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    # --- model (seed) -------------------------------------------------------
    model_name: str = Field(
        EMBEDDED_MODEL,
        alias="VLLM_MODEL_NAME",
        min_length=1,
        description="Hugging Face model id, local directory, or 'embedded' (SmolLM2-135M-Instruct).",
    )
    tensor_parallel_size: int = Field(
        1, alias="VLLM_TENSOR_PARALLEL_SIZE", ge=1, description="GPUs per model replica."
    )
    gpu_memory_utilization: float = Field(
        0.9,
        alias="VLLM_GPU_MEMORY_UTILIZATION",
        gt=0.0,
        le=1.0,
        description="Fraction of each GPU's memory vLLM may take (0-1].",
    )
    max_model_len: int | None = Field(
        None, alias="VLLM_MAX_MODEL_LEN", ge=16, description="Context length; model's own if unset."
    )
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "float16", alias="VLLM_DTYPE", description="Weight and activation dtype."
    )
    models_file: Path | None = Field(
        None,
        alias="VLLM_MCP_MODELS",
        description="TOML file of [[models]] tables (name, model, kind, dtype, max_model_len, "
        "devices, ...) to serve several models, embedding models among them; the single-model "
        "settings describe the one model if unset (docs/operations.md).",
    )
    hf_token: SecretStr | None = Field(
        None,
        alias="HUGGING_FACE_HUB_TOKEN",
        description="Token for gated models (HF_TOKEN is read too). Never logged.",
    )
    # --- sampling defaults (seed) ---------------------------------------------
    default_temperature: float = Field(
        0.7, alias="VLLM_DEFAULT_TEMPERATURE", ge=0.0, le=2.0, description="Default temperature."
    )
    default_max_tokens: int = Field(
        512, alias="VLLM_DEFAULT_MAX_TOKENS", ge=1, description="Default max tokens per reply."
    )
    default_top_p: float = Field(
        1.0, alias="VLLM_DEFAULT_TOP_P", gt=0.0, le=1.0, description="Default nucleus sampling."
    )
    default_top_k: int = Field(-1, alias="VLLM_DEFAULT_TOP_K", description="Default top-k; -1 disables it.")
    # --- sessions (seed) --------------------------------------------------------
    max_sessions: int = Field(
        100, alias="VLLM_MAX_SESSIONS", ge=1, description="Sessions kept; oldest evicted first."
    )
    max_sessions_per_caller: int | None = Field(
        None,
        alias="VLLM_MCP_MAX_SESSIONS_PER_CALLER",
        ge=1,
        description="Sessions (stored, and MCP sessions over stateful HTTP) one caller may hold; "
        "its own oldest evicted first. No limit beyond VLLM_MAX_SESSIONS if unset.",
    )
    max_session_messages: int = Field(
        50, alias="VLLM_MAX_SESSION_MESSAGES", ge=2, description="Messages kept per session."
    )
    # --- logging (seed) ---------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", alias="VLLM_LOG_LEVEL", description="Log level."
    )
    # --- multi-GPU / multi-node pass-through to vLLM ---------------------------
    pipeline_parallel_size: int = Field(
        1, alias="VLLM_PIPELINE_PARALLEL_SIZE", ge=1, description="Pipeline-parallel stages."
    )
    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = Field(
        None,
        alias="VLLM_DISTRIBUTED_EXECUTOR_BACKEND",
        description="vLLM executor backend ('ray' for multi-node); vLLM picks if unset.",
    )
    nnodes: int = Field(
        1, alias="VLLM_NNODES", ge=1, description="Nodes one model spans (vLLM's multiprocessing multi-node)."
    )
    node_rank: int = Field(
        0, alias="VLLM_NODE_RANK", ge=0, description="This node's rank: 0 runs `serve`, the others `worker`."
    )
    master_addr: str | None = Field(
        None, alias="VLLM_MASTER_ADDR", description="The head node's address; needed when VLLM_NNODES > 1."
    )
    master_port: int = Field(
        29501, alias="VLLM_MASTER_PORT", ge=1, le=65535, description="The head node's rendezvous port."
    )
    engine_args: dict[str, Any] = Field(
        default_factory=dict,
        alias="VLLM_MCP_ENGINE_ARGS",
        description="JSON object of any other vLLM engine arguments.",
    )
    lora_modules: dict[str, str] = Field(
        default_factory=dict,
        alias="VLLM_MCP_LORA_MODULES",
        description="LoRA adapters to serve, as name=path pairs (local directories or Hugging Face "
        "ids) separated by spaces or commas; calls pick one with 'adapter'.",
    )
    reasoning_parser: str | None = Field(
        None,
        alias="VLLM_MCP_REASONING_PARSER",
        description="vLLM reasoning parser (vllm.reasoning, e.g. deepseek_r1, qwen3): the thinking "
        "goes to the result's 'reasoning', the answer to 'text'.",
    )
    tool_call_parser: str | None = Field(
        None,
        alias="VLLM_MCP_TOOL_CALL_PARSER",
        description="vLLM tool-call parser (vllm.tool_parsers, e.g. hermes, llama3_json): model "
        "output becomes 'tool_calls' when a call passes 'tools'.",
    )
    cpu_kvcache_space_gib: float = Field(
        4.0,
        alias="VLLM_CPU_KVCACHE_SPACE",
        gt=0,
        description="KV cache size in GiB when running on the CPU (vLLM's own variable).",
    )
    cpu_worker_nice: int = Field(
        10,
        alias="VLLM_MCP_CPU_WORKER_NICE",
        ge=0,
        le=19,
        description="Niceness of vLLM's CPU worker processes, so the server's front end wins a "
        "shared core (CPU only; 0 leaves them alone).",
    )
    # --- server (ours) ---------------------------------------------------------
    max_concurrency: int = Field(
        64, alias="VLLM_MCP_MAX_CONCURRENCY", ge=1, description="Generations in flight at once."
    )
    max_queue: int = Field(
        256,
        alias="VLLM_MCP_MAX_QUEUE",
        ge=0,
        description="Calls waiting for a slot; beyond it calls get 'server busy'.",
    )
    progress_interval: float = Field(
        0.05,
        alias="VLLM_MCP_PROGRESS_INTERVAL",
        ge=0.0,
        le=10.0,
        description="Minimum seconds between two progress notifications of one call.",
    )
    progress_max_rate: float = Field(
        200.0,
        alias="VLLM_MCP_PROGRESS_MAX_RATE",
        ge=0.0,
        description="Progress notifications per second across all streaming calls: with many "
        "calls each one's interval stretches to calls / rate (0: no cap).",
    )
    shutdown_grace: float = Field(
        30.0,
        alias="VLLM_MCP_SHUTDOWN_GRACE",
        ge=0.0,
        description="Seconds in-flight calls get to finish on SIGTERM/SIGINT/end of input.",
    )
    max_call_seconds: float | None = Field(
        None,
        alias="VLLM_MCP_MAX_CALL_SECONDS",
        gt=0.0,
        description="Time budget of one chat call, queueing included: when it runs out the "
        "generation stops and the text so far is returned (finish_reason 'time_limit'). "
        "Set it below the client's own timeout (FluidMCP: 30 s). No limit if unset.",
    )
    task_ttl: float = Field(
        3600.0,
        alias="VLLM_MCP_TASK_TTL",
        gt=0.0,
        description="Seconds a task (a call run in the background, polled for) and its result are "
        "kept from its creation; a client's requested ttl may ask for less.",
    )
    max_task_seconds: float = Field(
        3600.0,
        alias="VLLM_MCP_MAX_TASK_SECONDS",
        gt=0.0,
        description="Time budget of a call run as a task, in place of VLLM_MCP_MAX_CALL_SECONDS: "
        "then the text so far is its result (finish_reason 'time_limit').",
    )
    task_lease_seconds: float = Field(
        30.0,
        alias="VLLM_MCP_TASK_LEASE_SECONDS",
        ge=3.0,
        description="A task whose server shows no sign of life for this long (it renews the "
        "lease every second) ends 'failed' when next read: its server died.",
    )
    max_tasks_per_caller: int = Field(
        16,
        alias="VLLM_MCP_MAX_TASKS_PER_CALLER",
        ge=1,
        description="Tasks one caller may have running at once; another is refused until one ends.",
    )
    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        alias="VLLM_MCP_MAX_MESSAGE_BYTES",
        ge=1024,
        description="Largest JSON-RPC message accepted: a stdin line, or an HTTP request body (413).",
    )
    max_content_chars: int = Field(
        200_000,
        alias="VLLM_MCP_MAX_CONTENT_CHARS",
        ge=1,
        description="Largest content of one chat message.",
    )
    # Bounds on what one call may ask for, checked before admission (tools/limits.py).
    max_messages: int = Field(
        256, alias="VLLM_MCP_MAX_MESSAGES", ge=1, description="Most messages in one call."
    )
    max_json_schema_bytes: int = Field(
        65536, alias="VLLM_MCP_MAX_JSON_SCHEMA_BYTES", ge=64, description="Largest json_schema (as JSON)."
    )
    max_regex_chars: int = Field(4096, alias="VLLM_MCP_MAX_REGEX_CHARS", ge=1, description="Longest regex.")
    max_choices: int = Field(256, alias="VLLM_MCP_MAX_CHOICES", ge=1, description="Most choice strings.")
    max_choice_chars: int = Field(
        1024, alias="VLLM_MCP_MAX_CHOICE_CHARS", ge=1, description="Longest choice string."
    )
    max_stop_chars: int = Field(
        1024, alias="VLLM_MCP_MAX_STOP_CHARS", ge=1, description="Longest stop string."
    )
    # Images in chat_completion messages (tools/media.py, docs/tools.md "Images").
    max_images_per_call: int = Field(
        8,
        alias="VLLM_MCP_MAX_IMAGES_PER_CALL",
        ge=0,
        description="Most images the messages of one chat_completion call may carry; 0 refuses images.",
    )
    max_image_bytes: int = Field(
        5 * 1024 * 1024,
        alias="VLLM_MCP_MAX_IMAGE_BYTES",
        ge=1024,
        description="Largest image file (decoded from base64, or fetched from an allowed domain).",
    )
    max_image_pixels: int = Field(
        16_777_216,
        alias="VLLM_MCP_MAX_IMAGE_PIXELS",
        ge=1,
        description="Most pixels (width x height) in one image, read from its header before it is decoded.",
    )
    allowed_media_domains: str | None = Field(
        None,
        alias="VLLM_MCP_ALLOWED_MEDIA_DOMAINS",
        description="Comma-separated host names whose http(s) image URLs the server fetches "
        "('*.example.org': its subdomains); unset, no URL is fetched: images come inline.",
    )
    media_fetch_timeout: float = Field(
        10.0,
        alias="VLLM_MCP_MEDIA_FETCH_TIMEOUT",
        gt=0.0,
        description="Seconds one image fetch (from an allowed domain) may take.",
    )
    log_format: Literal["json", "text"] = Field(
        "json", alias="VLLM_MCP_LOG_FORMAT", description="Log lines as JSON or plain text."
    )
    log_file: Path | None = Field(
        None, alias="VLLM_MCP_LOG_FILE", description="Write logs here instead of stderr."
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        alias="VLLM_MCP_CACHE_DIR",
        description="Where the embedded model's checkpoint is prepared.",
    )
    session_store: str | None = Field(
        None,
        alias="VLLM_MCP_SESSION_STORE",
        description="Where sessions live: a SQLite file path (or sqlite:///path), or "
        "postgresql://user@host:port/db (no password in it); in memory if unset.",
    )
    session_store_password_file: Path | None = Field(
        None,
        alias="VLLM_MCP_SESSION_STORE_PASSWORD_FILE",
        description="File holding the PostgreSQL session store's password (or use PGPASSFILE).",
    )
    session_ttl: float | None = Field(
        None,
        alias="VLLM_MCP_SESSION_TTL",
        gt=0.0,
        description="Seconds a session may stay idle before it is forgotten; kept until evicted if unset.",
    )
    metrics_textfile: Path | None = Field(
        None,
        alias="VLLM_MCP_METRICS_TEXTFILE",
        description="Prometheus textfile to write (node_exporter textfile collector); off if unset.",
    )
    metrics_caller_label: Literal["off", "token-file"] = Field(
        "off",
        alias="VLLM_MCP_METRICS_CALLER_LABEL",
        description="What the requests metric's caller label holds: 'off' (always empty) or "
        "'token-file' (the token file's caller names; OAuth callers all 'oauth'). Never an OAuth "
        "subject: that would be personal data and one series per user.",
    )
    metrics_interval: float = Field(
        15.0,
        alias="VLLM_MCP_METRICS_INTERVAL",
        gt=0.0,
        description="Seconds between two writes of the metrics textfile.",
    )

    # --- transport (ours) --------------------------------------------------------
    transport: Literal["stdio", "http"] = Field(
        "stdio",
        alias="VLLM_MCP_TRANSPORT",
        description="'stdio' (one client that spawns us) or 'http' (MCP Streamable HTTP, many clients).",
    )
    http_host: str = Field(
        "127.0.0.1",
        alias="VLLM_MCP_HTTP_HOST",
        min_length=1,
        description="Address the HTTP transport listens on; anything but loopback needs a token file.",
    )
    http_port: int = Field(
        8000, alias="VLLM_MCP_HTTP_PORT", ge=0, le=65535, description="TCP port of the HTTP transport."
    )
    http_token_file: Path | None = Field(
        None,
        alias="VLLM_MCP_HTTP_TOKEN_FILE",
        description="File of bearer tokens (one 'token' or 'name:token' per line), re-read when it "
        "changes; HTTP clients must send one.",
    )
    http_allowed_hosts: str | None = Field(
        None,
        alias="VLLM_MCP_HTTP_ALLOWED_HOSTS",
        description="Comma-separated Host header values the HTTP transport accepts besides the "
        "address it listens on (DNS-rebinding protection); '*' accepts any (with authentication only).",
    )
    http_public_url: str | None = Field(
        None,
        alias="VLLM_MCP_HTTP_PUBLIC_URL",
        description="The origin clients reach this server at (https://host[:port]) behind a proxy; "
        "the OAuth audience and metadata URLs are built from it.",
    )
    # --- OAuth 2.1 resource server (ours; vllm_mcp/config/oauth.py, docs/http.md) ------
    oauth_issuer: str | None = Field(
        None,
        alias="VLLM_MCP_OAUTH_ISSUER",
        description="Authorization server whose access tokens HTTP clients may send (its keys are "
        "found through OpenID / RFC 8414 discovery); off if unset.",
    )
    oauth_audience: str | None = Field(
        None,
        alias="VLLM_MCP_OAUTH_AUDIENCE",
        description="The resource tokens must be issued for (RFC 8707); the public /mcp URL if unset.",
    )
    oauth_scopes: str | None = Field(
        None, alias="VLLM_MCP_OAUTH_SCOPES", description="Scopes every token must carry, space-separated."
    )
    oauth_jwks_url: str | None = Field(
        None, alias="VLLM_MCP_OAUTH_JWKS_URL", description="The issuer's key set; discovered if unset."
    )
    oauth_caller_claim: str = Field(
        "sub", alias="VLLM_MCP_OAUTH_CALLER_CLAIM", description="Token claim that names the caller."
    )
    oauth_introspection_url: str | None = Field(
        None,
        alias="VLLM_MCP_OAUTH_INTROSPECTION_URL",
        description="RFC 7662 endpoint for opaque tokens; the discovered one if unset.",
    )
    oauth_client_id: str | None = Field(
        None,
        alias="VLLM_MCP_OAUTH_CLIENT_ID",
        description="Client id this server introspects tokens as; introspection is off if unset.",
    )
    oauth_client_secret_file: Path | None = Field(
        None,
        alias="VLLM_MCP_OAUTH_CLIENT_SECRET_FILE",
        description="File holding that client's secret (never logged or shown).",
    )
    http_workers: int = Field(
        1,
        alias="VLLM_MCP_HTTP_WORKERS",
        ge=1,
        le=64,
        description="HTTP front-end processes on one engine core (like vllm serve --api-server-count); "
        "more than 1 needs VLLM_MCP_SESSION_STORE.",
    )
    http_stateless: bool = Field(
        False,
        alias="VLLM_MCP_HTTP_STATELESS",
        description="Serve the 2025 protocol without server-side MCP sessions (no Mcp-Session-Id), so "
        "replicas behind a load balancer need no sticky routing.",
    )

    @field_validator("default_top_k")
    @classmethod
    def _top_k(cls, v: int) -> int:
        return check_top_k(v)

    @field_validator("log_level", "dtype", "log_format", "metrics_caller_label", mode="before")
    @classmethod
    def _lower_or_upper(cls, v: Any, info: Any) -> Any:
        if isinstance(v, str):
            return v.strip().upper() if info.field_name == "log_level" else v.strip().lower()
        return v

    @field_validator("engine_args", mode="before")
    @classmethod
    def _json_object(cls, v: Any) -> Any:
        return config_rules.parse_json_object(v)

    @field_validator("reasoning_parser", "tool_call_parser", mode="before")
    @classmethod
    def _parser_name(cls, v: Any, info: Any) -> Any:
        kind = "reasoning" if info.field_name == "reasoning_parser" else "tool"
        return check_parser_name(kind, v) if isinstance(v, str) else v

    @field_validator("lora_modules", mode="before")
    @classmethod
    def _lora_pairs(cls, v: Any) -> Any:
        return config_rules.parse_lora_modules(v) if isinstance(v, str) else v

    @field_validator(
        "max_model_len",
        "models_file",
        "distributed_executor_backend",
        "master_addr",
        "hf_token",
        "log_file",
        "session_store",
        "session_store_password_file",
        "session_ttl",
        "metrics_textfile",
        "http_token_file",
        "http_allowed_hosts",
        "allowed_media_domains",
        "http_public_url",
        "oauth_issuer",
        "oauth_audience",
        "oauth_scopes",
        "oauth_jwks_url",
        "oauth_introspection_url",
        "oauth_client_id",
        "oauth_client_secret_file",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("master_addr")
    @classmethod
    def _master_addr(cls, v: str | None) -> str | None:
        return None if v is None else multinode.check_master_addr(v)

    @field_validator("session_store")
    @classmethod
    def _store_location(cls, v: str | None) -> str | None:
        return None if v is None else store_location.parse_location(v).display

    @field_validator("http_allowed_hosts")
    @classmethod
    def _host_list(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return config_rules.check_host_list(v)

    @field_validator("allowed_media_domains")
    @classmethod
    def _media_domains(cls, v: str | None) -> str | None:
        return None if v is None else config_rules.check_domain_list(v)

    @field_validator(
        "http_public_url", "oauth_issuer", "oauth_audience", "oauth_jwks_url", "oauth_introspection_url"
    )
    @classmethod
    def _oauth_url(cls, v: str | None, info: Any) -> str | None:
        origin_only = info.field_name == "http_public_url"
        return None if v is None else oauth_rules.check_url(v, "the URL", path_allowed=not origin_only)

    @field_validator("oauth_scopes", "oauth_caller_claim")
    @classmethod
    def _oauth_words(cls, v: str | None, info: Any) -> str | None:
        if v is None:  # VLLM_MCP_OAUTH_SCOPES unset; the caller claim has a default
            return None
        if info.field_name == "oauth_scopes":
            return oauth_rules.check_scopes(v)
        return oauth_rules.check_claim(v)

    _models: tuple[ModelSpec, ...] = PrivateAttr(())

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """Every served model in order (``VLLM_MCP_MODELS``, or the one the settings describe)."""
        return self._models or (models_file.single(self),)

    def for_model(self, spec: ModelSpec) -> Settings:
        """The settings one model's engine reads: its own values in the single-model fields."""
        return self.model_copy(update=models_file.engine_fields(spec))

    @property
    def allowed_hosts(self) -> list[str]:
        """``VLLM_MCP_HTTP_ALLOWED_HOSTS`` as a list."""
        return self.http_allowed_hosts.split(",") if self.http_allowed_hosts else []

    @property
    def media_domains(self) -> list[str]:
        """``VLLM_MCP_ALLOWED_MEDIA_DOMAINS`` as a list (empty: no image URL is fetched)."""
        return self.allowed_media_domains.split(",") if self.allowed_media_domains else []

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        authenticated = self.http_token_file is not None or self.oauth_issuer is not None
        if self.transport == "http" and not authenticated and not is_loopback(self.http_host):
            raise ValueError(
                f"VLLM_MCP_HTTP_HOST={self.http_host} is not a loopback address, so the HTTP transport "
                "needs VLLM_MCP_HTTP_TOKEN_FILE (a file holding the bearer token clients must send) "
                "or VLLM_MCP_OAUTH_ISSUER; refusing to serve without authentication"
            )
        if self.models_file is not None:  # ConfigError: one line per problem in the file
            self._models = tuple(models_file.read(self.models_file, self))
        problem = (
            config_rules.open_hosts_problem(self)
            or oauth_rules.problem(self)
            or multinode.problem(self)
            or models_file.problem(self)
        )
        if problem:
            raise ValueError(problem)
        if self.http_workers > 1 and self.transport != "http":
            raise ValueError(
                f"VLLM_MCP_HTTP_WORKERS={self.http_workers} needs VLLM_MCP_TRANSPORT=http: over stdio "
                "one client talks to one process; set VLLM_MCP_HTTP_WORKERS=1"
            )
        if self.http_workers > 1 and self.session_store is None:
            raise ValueError(
                f"VLLM_MCP_HTTP_WORKERS={self.http_workers} needs VLLM_MCP_SESSION_STORE: each worker "
                "process has its own memory, so a conversation's turns would be lost between them; "
                "set it to a SQLite file (enough on one host, e.g. /var/lib/vllm-mcp/sessions.db)"
            )
        return self

    def warnings(self, model_context: int | None = None) -> list[str]:
        """Combinations that serve, but limit what calls get; each a sentence naming the variables.

        ``model_context`` is the model's own context length, when known (doctor reads it).
        """
        out = []
        context = self.max_model_len or model_context
        if context is not None and self.default_max_tokens >= context:
            which = (
                f"VLLM_MAX_MODEL_LEN ({context})"
                if self.max_model_len
                else f"the model's context ({context})"
            )
            out.append(
                f"VLLM_DEFAULT_MAX_TOKENS ({self.default_max_tokens}) is not below {which}: a call "
                "that does not set max_tokens gets its reply capped to the room its prompt leaves, "
                "and loses its session history to make that room; "
                f"set VLLM_DEFAULT_MAX_TOKENS below {context}"
            )
        return out

    # --- construction ----------------------------------------------------------

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name -> environment variable name."""
        return {name: f.alias or name for name, f in cls.model_fields.items()}

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        file_values: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from defaults < file < environment < command-line options.

        Raises ``ConfigError`` whose lines name the variable, the value and what is expected.
        """
        return cls.load_with_sources(environ, options, file_values)[0]

    @classmethod
    def load_with_sources(
        cls,
        environ: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        file_values: Mapping[str, str] | None = None,
    ) -> tuple[Settings, dict[str, Source]]:
        environ = os.environ if environ is None else environ
        names = cls.env_names()
        raw, sources = layered(names, environ, options, file_values)
        try:
            settings = cls.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(explain(e, raw)) from None
        return settings, {f: sources.get(f, "default") for f in names}

    # --- views -------------------------------------------------------------------

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain values, the token and secret engine arguments masked: safe to print or log."""
        out: dict[str, Any] = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if isinstance(value, SecretStr):
                value = mask_secret(value.get_secret_value())
            elif field == "engine_args":
                value = config_rules.mask_engine_args(value)
            elif isinstance(value, Path):
                value = str(value)
            out[field] = value
        if self.models_file is not None:
            out["models"] = [spec.public_dict() for spec in self.models]
        return out
