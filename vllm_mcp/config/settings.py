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
from typing import Any

from pydantic import (
    ConfigDict,
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
from vllm_mcp.config.fields import EMBEDDED_MODEL, ModelFields, ServerFields, TransportFields
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


class Settings(TransportFields, ServerFields, ModelFields):
    """Everything ``vllm-mcp`` can be told. Field aliases are the environment names.

    The fields are in fields.py, by group (listed last-first here: pydantic orders a model's
    fields from its last base to its first, and this keeps the README's order).
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

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
