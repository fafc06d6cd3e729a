"""``config validate``: every finding about one set of values, for a person to read.

The rules themselves live in ``config.py`` (``Settings``) and ``config_rules.py``; this
module gathers what they find, and adds the one check that looks at names rather than values:
``VLLM_``/``VLLM_MCP_`` variables that neither we nor vLLM know, with the nearest known name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vllm_mcp.config.settings import (
    ConfigError,
    Settings,
    Source,
    multinode,
    parallel_problem,
    unknown_engine_args,
)

# --- names that are ours, vLLM's, or typos --------------------------------------


@dataclass(frozen=True)
class UnknownName:
    name: str
    suggestion: str | None

    def __str__(self) -> str:
        hint = f"; did you mean {self.suggestion}?" if self.suggestion else ""
        return f"unknown setting {self.name}{hint}"


def unknown_names(names: list[str], engine_names: frozenset[str] = frozenset()) -> list[UnknownName]:
    """``VLLM_``/``VLLM_MCP_`` names that neither we nor vLLM know, with the nearest known name."""
    known = set(Settings.env_names().values()) | {"HF_TOKEN"}
    out = []
    for name in sorted(names):
        if not name.startswith("VLLM_") or name in known or name in engine_names:
            continue
        pool = sorted(known if name.startswith("VLLM_MCP_") else known | engine_names)
        close = difflib.get_close_matches(name, pool, n=1, cutoff=0.75)
        # vLLM has hundreds of VLLM_* variables we do not list; only flag those
        # that look like a typo of a name, or that claim our VLLM_MCP_ prefix.
        if close or name.startswith("VLLM_MCP_") or not engine_names:
            out.append(UnknownName(name, close[0] if close else None))
    return out


# --- validation shared by `serve` and `config validate` ---------------------------


@dataclass(frozen=True)
class Validation:
    """The outcome of validating one set of values: settings when valid, and every problem."""

    label: str
    settings: Settings | None
    sources: dict[str, Source]
    problems: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate(
    environ: Mapping[str, str] | None = None,
    file_values: Mapping[str, str] | None = None,
    *,
    engine_names: frozenset[str] = frozenset(),
    engine_arg_names: frozenset[str] = frozenset(),
    gpu_count: int | None = None,
    platform: Callable[[], multinode.PlatformFacts] | None = None,
    label: str = "environment",
) -> Validation:
    """Type and range checks (``Settings.load``), unknown names, and contradictions.

    ``engine_names`` are the variables vLLM reads, ``engine_arg_names`` its engine
    arguments (``VLLM_MCP_ENGINE_ARGS`` keys are not checked when empty). ``gpu_count``
    is the number of GPUs visible on this machine, or None when there are none or it is
    unknown (the parallelism check is then skipped). ``platform`` reports vLLM's platform
    (asked only with Ray; the check is skipped without it).
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    settings: Settings | None = None
    sources: dict[str, Source] = {}
    try:
        settings, sources = Settings.load_with_sources(environ, file_values=file_values)
    except ConfigError as e:
        problems.extend(e.lines)
    names = sorted(set(environ) | set(file_values or {}))
    problems.extend(str(u) for u in unknown_names(names, engine_names))
    warnings: list[str] = []
    if settings is not None:
        if engine_arg_names:
            problems.extend(unknown_engine_args(settings.engine_args, engine_arg_names))
            for spec in settings.models if settings.models_file is not None else ():
                own = {k: v for k, v in spec.engine_args.items() if k not in settings.engine_args}
                problems.extend(
                    f"VLLM_MCP_MODELS: model {spec.name!r}: " + line.removeprefix("VLLM_MCP_ENGINE_ARGS: ")
                    for line in unknown_engine_args(own, engine_arg_names)
                )
        parallel = parallel_problem(settings, gpu_count)
        if parallel:
            problems.append(parallel)
        ray = multinode.platform_problem(settings, platform) if platform else None
        if ray:
            problems.append(ray)
        warnings = settings.warnings()
    return Validation(label, settings, sources, problems, warnings)
