"""Names vLLM defines, read from its files without importing the package.

Importing vLLM imports torch: 10-14 s of a small CPU machine. ``serve`` needs vLLM's
environment variable names before it answers its first request, and ``config validate``
and ``doctor`` need its engine argument names; both are in plain files of the package.
core.py falls back to importing vLLM when these return nothing (a layout that changed).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
from pathlib import Path


def vllm_file(name: str) -> Path | None:
    """A file of the installed vLLM package, found without importing it (None: not there)."""
    with contextlib.suppress(Exception):
        spec = importlib.util.find_spec("vllm")
        if spec is not None and spec.submodule_search_locations:
            path = Path(next(iter(spec.submodule_search_locations))) / name
            return path if path.is_file() else None
    return None


def env_names() -> frozenset[str]:
    """``vllm/envs.py``'s ``environment_variables``, that module run on its own (it imports no torch)."""
    path = vllm_file("envs.py")
    with contextlib.suppress(Exception):
        assert path is not None
        spec = importlib.util.spec_from_file_location("_vllm_mcp_vllm_envs", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return frozenset(module.environment_variables)
    return frozenset()


def engine_arg_names() -> frozenset[str]:
    """The fields of ``EngineArgs`` and ``AsyncEngineArgs``: class-level annotations, ClassVars aside."""
    path = vllm_file("engine/arg_utils.py")
    with contextlib.suppress(Exception):
        assert path is not None
        classes = [n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef)]
        return frozenset(
            field.target.id
            for c in classes
            if c.name in ("EngineArgs", "AsyncEngineArgs")
            for field in c.body
            if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name)
            if "ClassVar" not in ast.unparse(field.annotation)
        )
    return frozenset()


_PARSER_REGISTRIES = {
    "reasoning": ("reasoning/__init__.py", "_REASONING_PARSERS_TO_REGISTER"),
    "tool": ("tool_parsers/__init__.py", "_TOOL_PARSERS_TO_REGISTER"),
}


def parser_names(kind: str) -> frozenset[str]:
    """The names in vLLM's reasoning (``kind="reasoning"``) or tool-call (``"tool"``) parser registry.

    The keys of the registry's mapping and the ``name=`` of its ``register_lazy_module`` calls,
    read from ``vllm/<registry>/__init__.py``: config validation must not import vLLM. Empty
    when the layout changed; the engine then checks the name when it starts.
    """
    file, mapping = _PARSER_REGISTRIES[kind]
    path = vllm_file(file)
    names: set[object] = set()
    with contextlib.suppress(Exception):
        assert path is not None
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == mapping for t in targets):
                    names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register_lazy_module":
                names.update(
                    k.value.value
                    for k in node.keywords
                    if k.arg == "name" and isinstance(k.value, ast.Constant)
                )
    return frozenset(n for n in names if isinstance(n, str))
