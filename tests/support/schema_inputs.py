"""Tool arguments generated from the tools' own input schemas (hypothesis-jsonschema).

hypothesis-jsonschema 0.23.1, its latest release, draws object properties through
hypothesis's internal ``cu.many(...).more()``; hypothesis 6.15x replaced ``more()`` with a
context manager and iteration, so every object schema fails with "'many' object has no
attribute 'more'". ``_OldMany`` gives the library the interface it calls, over the new one,
for its module only (hypothesis itself is untouched). Remove it once a release fixes this.
"""

from __future__ import annotations

import types
from typing import Any

from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as cu


class _OldMany:
    """``cu.many`` as hypothesis-jsonschema uses it: ``while elements.more(): ...``."""

    def __init__(self, data: Any, min_size: int, max_size: float, average_size: float) -> None:
        self._many = cu.many(data, min_size=min_size, max_size=max_size, average_size=average_size)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        try:
            next(self._elements)
        except StopIteration:
            self._many.__exit__(None, None, None)
            return False
        return True

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


def _patched() -> Any:
    from hypothesis_jsonschema import _from_schema

    if not hasattr(cu.many, "more") and not isinstance(_from_schema.cu, types.SimpleNamespace):
        shim = types.SimpleNamespace(**{k: getattr(cu, k) for k in dir(cu) if not k.startswith("__")})
        shim.many = _OldMany
        _from_schema.cu = shim  # type: ignore[assignment]
    return _from_schema.from_schema


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against ``schema`` (JSON Schema), as hypothesis-jsonschema draws them."""
    return _patched()(schema)
