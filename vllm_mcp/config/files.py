"""Configuration files: systemd/docker env files and FluidMCP config JSON.

``config validate PATH`` reads them to validate what a deployment will pass to ``serve``,
and doctor reads the gateway unit's environment files. The values they yield go through
``config_check.validate`` like the environment's.
"""

from __future__ import annotations

import json
from pathlib import Path

from vllm_mcp.errors import ConfigError


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a systemd/docker-style env file (``KEY=value``, ``#`` comments, optional quotes)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError([f"{path}:{number}: expected KEY=value"])
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


_OUR_ENV_PREFIXES = ("VLLM_", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN")
_JSON_KIND = {
    int: "a number",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def read_fluidmcp_config(path: Path) -> dict[str, dict[str, str]]:
    """The ``env`` map of each vllm-mcp entry of a FluidMCP config (or metadata.json).

    An entry is ours when its command or args name vllm-mcp / vllm_mcp, or its env
    sets a ``VLLM_*`` or token variable; other MCP servers in the file are skipped.
    Non-string env values are errors: the gateway hands env to the process as is.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError([f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})"]) from None
    servers = doc.get("mcpServers") if isinstance(doc, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError([f'{path}: no "mcpServers" object (expected a FluidMCP config)'])
    out: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name, entry in servers.items():
        if not isinstance(entry, dict):
            problems.append(f"{path}: server {name!r} must be a JSON object")
            continue
        env = entry.get("env") or {}
        if not isinstance(env, dict):
            problems.append(f'{path}: server {name!r}: "env" must be a JSON object')
            continue
        launch = " ".join(str(x) for x in [entry.get("command", ""), *(entry.get("args") or [])])
        ours = (
            "vllm-mcp" in launch
            or "vllm_mcp" in launch
            or any(str(k).startswith(_OUR_ENV_PREFIXES) for k in env)
        )
        if not ours:
            continue
        values: dict[str, str] = {}
        for key, value in env.items():
            if not isinstance(value, str):
                problems.append(
                    f"{path}: server {name!r}: env {key} must be a JSON string "
                    f"(quote it), not {_JSON_KIND.get(type(value), type(value).__name__)}"
                )
                continue
            values[str(key)] = value
        out[str(name)] = values
    if problems:
        raise ConfigError(problems)
    if not out:
        raise ConfigError([f'{path}: no vllm-mcp server entry in "mcpServers"'])
    return out


def read_config_file(path: Path) -> dict[str, dict[str, str]]:
    """Label -> values for an env file (one set) or a FluidMCP JSON config (one per server)."""
    if not path.is_file():
        raise ConfigError([f"{path}: no such file"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([f"{path}: cannot read ({e})"]) from None
    if path.suffix == ".json" or text.lstrip().startswith("{"):
        return {f"{path} server {name!r}": v for name, v in read_fluidmcp_config(path).items()}
    return {str(path): read_env_file(path)}
