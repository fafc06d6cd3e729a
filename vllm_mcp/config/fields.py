"""The settings' fields, grouped as the README's table is: the model, the server, the transport.

``Settings`` (settings.py) is built from these groups; it holds every validator and rule. A new
setting is a field here, in its group, with its environment name as the alias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr

EMBEDDED_MODEL = "embedded"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "vllm-mcp"


class ModelFields(BaseModel):
    """The model, its sampling defaults, sessions, logging, and what passes through to vLLM."""

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


class ServerFields(BaseModel):
    """The server's own: admission, time budgets, tasks, limits on a call, stores, metrics."""

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


class TransportFields(BaseModel):
    """How callers reach it: stdio or Streamable HTTP, tokens, OAuth, front-end processes."""

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
