"""The README is the user's reference: it must list every setting with its real default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support import ROOT
from vllm_mcp.config.settings import Settings

ROW = re.compile(r"^\| `([A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def readme_defaults() -> dict[str, str]:
    return {name: cell.strip() for name, cell in ROW.findall((ROOT / "README.md").read_text())}


def same(documented: str, actual: Any) -> bool:
    if not documented.startswith("`"):  # prose such as "none (off)" or "the model's own"
        return actual is None or actual == {}
    literal = documented.strip("`")
    if isinstance(actual, Path):
        return Path(literal).expanduser() == actual
    if isinstance(actual, bool):
        return literal == str(actual).lower()
    if isinstance(actual, int | float):
        return float(literal) == float(actual)
    if isinstance(actual, dict):
        return literal == "{}" and actual == {}
    return literal == str(actual)


def test_every_setting_is_documented_with_its_default() -> None:
    documented = readme_defaults()
    env = Settings.env_names()
    defaults = Settings.load(environ={})
    missing = [env[name] for name in Settings.model_fields if env[name] not in documented]
    assert missing == []
    wrong = {
        env[name]: (documented[env[name]], getattr(defaults, name))
        for name in Settings.model_fields
        if not same(documented[env[name]], getattr(defaults, name))
    }
    assert wrong == {}
