"""Secrets kept in files (``*_PASSWORD_FILE``, ``*_SECRET_FILE``): read one way, everywhere.

Editors and ``echo`` end a file with a newline, Windows editors with ``\\r\\n``, and a
password that silently carries either fails to authenticate with no hint why. So a secret
file's text is taken without surrounding whitespace; an empty file, or one that holds more
than one line, is an error naming the setting and the file, never its content.
"""

from __future__ import annotations

from pathlib import Path

from vllm_mcp.errors import ConfigError


def read_secret_file(path: Path, setting: str) -> str:
    """The secret in ``path`` (named by the environment variable ``setting``), stripped."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or type(e).__name__
        raise ConfigError([f"cannot read {setting} {path}: {why}"]) from None
    if not secret:
        raise ConfigError([f"{setting} {path} is empty; write the secret into it"])
    if "\n" in secret or "\r" in secret:
        raise ConfigError(
            [f"{setting} {path} holds more than one line; it must hold the secret alone, on one line"]
        )
    return secret
