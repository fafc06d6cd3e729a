"""Turning the layers (defaults < file < environment < options) into ``Settings``, and back.

``Settings.load_with_sources`` (settings.py) calls ``layered`` and ``explain``; nothing else
reads the environment for a setting's value. ``child_environment`` copies the environment
for a child process, ``mask_secret`` shows a secret as set without revealing it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ValidationError

from vllm_mcp.config import store_location
from vllm_mcp.errors import ConfigError

Source = Literal["default", "environment", "option", "file"]


def layered(
    names: Mapping[str, str],
    environ: Mapping[str, str],
    options: Mapping[str, Any] | None,
    file_values: Mapping[str, str] | None,
) -> tuple[dict[str, Any], dict[str, Source]]:
    """The raw values by environment name, and where each field's came from.

    ``names`` maps field name -> environment name; HF_TOKEN stands in for
    HUGGING_FACE_HUB_TOKEN; ``None`` options are not given.
    """
    raw: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    layers: list[tuple[Source, Mapping[str, Any]]] = [
        ("file", file_values or {}),
        ("environment", environ),
    ]
    for source, layer in layers:
        for field, env in names.items():
            value = layer.get(env)
            if value is None and field == "hf_token":
                value = layer.get("HF_TOKEN")
            if value is not None:
                raw[env] = value
                sources[field] = source
    for field, value in (options or {}).items():
        if value is not None:
            raw[names[field]] = value
            sources[field] = "option"
    return raw, sources


def explain(error: ValidationError, raw: Mapping[str, Any]) -> list[str]:
    """One sentence per problem: the variable, its value (secrets hidden) and what is expected."""
    lines = []
    for item in error.errors(include_url=False):
        loc = item.get("loc") or ()
        name = str(loc[0]) if loc else ""
        msg = item["msg"].removeprefix("Value error, ")
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):  # already one complete line per problem (the models file)
            lines.extend(cause.lines)
            continue
        if not name:  # a cross-field check: its message already names the variables
            lines.append(f"invalid configuration: {msg}")
            continue
        shown = "<hidden>" if name in ("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN") else raw.get(name)
        if name == "VLLM_MCP_SESSION_STORE" and isinstance(shown, str):
            shown = store_location.redact(shown)
        if name == "VLLM_MCP_ENGINE_ARGS" and shown is not None:
            shown = _masked_engine_args(shown)
        lines.append(f"invalid {name}={shown!r}: {msg[0].lower() + msg[1:]}")
    return lines


def _masked_engine_args(value: Any) -> Any:
    """An invalid ``VLLM_MCP_ENGINE_ARGS`` as an error may show it: masked where it parses,
    hidden whole where it does not (its secrets cannot be told apart)."""
    from vllm_mcp.config.rules import mask_engine_args, names_a_secret

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return (
                "<hidden: not JSON>" if any(names_a_secret(w) for w in re.findall(r"\w+", value)) else value
            )
    return mask_engine_args(value)


def mask_secret(secret: str | None) -> str | None:
    """Show that a secret is set without revealing it (``hf_…abcd``-style is too much)."""
    if not secret:
        return None
    return f"<set, {len(secret)} characters>"


def child_environment(
    extra: Mapping[str, str] | None = None, defaults: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a child ``vllm-mcp serve`` inherits (token included, never printed).

    ``extra`` overrides the parent's values; ``defaults`` applies only where the parent has none.
    """
    env = {**(defaults or {}), **os.environ}
    env.update(extra or {})
    return env
