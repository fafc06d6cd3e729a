"""Tool arguments in and schemas out: what ``tools/list`` declares and how a bad argument is named."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from vllm_mcp.errors import InvalidArguments


def schema(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> dict[str, Any]:
    """A model's JSON schema with ``$ref``s inlined: some MCP clients do not follow them."""
    raw = model.model_json_schema(mode=mode)
    defs = raw.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].split("/")[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(raw)


def parse_arguments(model: type[BaseModel], arguments: dict[str, Any] | None) -> Any:
    """Validate tool arguments, or raise ``InvalidArguments`` naming each bad one."""
    try:
        return model.model_validate(arguments or {})
    except ValidationError as e:
        problems = []
        for err in e.errors(include_url=False):
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
            where = where.lstrip(".") or "arguments"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown argument"
            elif err["type"] == "missing":
                msg = "required argument is missing"
            # A check across arguments (model validator) names them in its message already.
            problems.append(f"{where}: {msg}" if err["loc"] else msg)
        raise InvalidArguments("invalid arguments: " + "; ".join(problems)) from None
