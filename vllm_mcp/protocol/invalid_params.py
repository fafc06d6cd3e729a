"""Invalid-params errors that say what is missing and how to send it.

The SDK answers every malformed request, and every request sent before ``initialize``,
with the same ``{"code": -32602, "message": "Invalid request parameters", "data": ""}``,
which names nothing (its classifier keeps pydantic's text off the wire). A transport
passes each such error through ``explain_invalid_params`` with the request it answers.
"""

from __future__ import annotations

import json
from typing import Any

import mcp_types as types
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

GENERIC_MESSAGE = "Invalid request parameters"

INITIALIZE_PARAMS: dict[str, Any] = {
    "protocolVersion": LATEST_HANDSHAKE_VERSION,
    "capabilities": {},
    "clientInfo": {"name": "my-client", "version": "1.0"},
}
INITIALIZE_LINE = json.dumps(
    {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INITIALIZE_PARAMS}, separators=(",", ":")
)
INITIALIZED_LINE = json.dumps(
    {"jsonrpc": "2.0", "method": "notifications/initialized"}, separators=(",", ":")
)

_PARAMS: dict[str, type[BaseModel]] = {
    "initialize": types.InitializeRequestParams,
    "tools/call": types.CallToolRequestParams,
    "tools/list": types.PaginatedRequestParams,
    "prompts/list": types.PaginatedRequestParams,
    "resources/list": types.PaginatedRequestParams,
    "prompts/get": types.GetPromptRequestParams,
    "resources/read": types.ReadResourceRequestParams,
    "logging/setLevel": types.SetLevelRequestParams,
    "completion/complete": types.CompleteRequestParams,
}

_FIELD_HINTS = {
    "protocolVersion": f'a version string such as "{LATEST_HANDSHAKE_VERSION}"',
    "capabilities": "an object; {} will do",
    "clientInfo": '{"name": ..., "version": ...}',
    "name": 'the tool\'s name, e.g. "chat_completion"',
}


def versions_served() -> str:
    handshake = ", ".join(HANDSHAKE_PROTOCOL_VERSIONS)
    return f"{handshake} (initialize handshake) and {', '.join(MODERN_PROTOCOL_VERSIONS)} (stateless)"


def needs_explaining(error: types.ErrorData) -> bool:
    """The SDK's generic -32602; our own -32602 errors already say what is wrong."""
    return error.code == types.INVALID_PARAMS and (not error.message or error.message == GENERIC_MESSAGE)


def explain_invalid_params(method: str | None, params: Any, initialized: bool) -> types.ErrorData:
    """A -32602 error naming what is wrong with ``method``'s ``params`` and how to fix it."""
    if method == "initialize":
        problems = _problems(method, params) or "params do not match the method"
        return types.ErrorData(
            code=types.INVALID_PARAMS,
            message=f"initialize: {problems}. Send, for example: {INITIALIZE_LINE}",
            data={"example": INITIALIZE_LINE, "protocol_versions": versions_served()},
        )
    meta = params.get("_meta") if isinstance(params, dict) else None
    stateless = isinstance(meta, dict) and types.PROTOCOL_VERSION_META_KEY in meta  # 2026-07-28: no handshake
    if not initialized and not stateless:
        return types.ErrorData(
            code=types.INVALID_PARAMS,
            message=(
                f"send initialize first: {method} is only served after the initialize handshake. "
                f"Send {INITIALIZE_LINE} then {INITIALIZED_LINE} and then your request, one per line"
            ),
            data={"send_first": [INITIALIZE_LINE, INITIALIZED_LINE]},
        )
    problems = _problems(method, params)
    return types.ErrorData(
        code=types.INVALID_PARAMS,
        message=f"invalid params for {method}: {problems or 'they do not match the method'}",
        data=problems or "",
    )


def _problems(method: str | None, params: Any) -> str:
    model = _PARAMS.get(method or "")
    if model is None:
        return ""
    try:
        model.model_validate({} if params is None else params, by_name=False)
    except ValidationError as e:
        found = []
        for err in e.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "missing":
                hint = _FIELD_HINTS.get(str(err["loc"][-1]))
                found.append(f"params.{where} is missing" + (f" ({hint})" if hint else ""))
            else:
                found.append(f"params.{where}: {err['msg']}")
        return "; ".join(found)
    except Exception:  # never let an explanation fail the reply
        return ""
    return ""
