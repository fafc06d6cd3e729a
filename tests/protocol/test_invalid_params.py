"""-32602 errors that say what is missing and how to send it (the seed's direct commands)."""

from __future__ import annotations

import json

import mcp_types as types

from vllm_mcp.protocol.invalid_params import (
    INITIALIZE_LINE,
    INITIALIZED_LINE,
    explain_invalid_params,
    needs_explaining,
)


def test_an_empty_initialize_names_each_missing_field_and_the_line_to_send() -> None:
    error = explain_invalid_params("initialize", {}, initialized=False)
    assert error.code == -32602
    for field in ("protocolVersion", "capabilities", "clientInfo"):
        assert f"params.{field} is missing" in error.message
    assert '"2025-11-25"' in error.message and INITIALIZE_LINE in error.message
    # The example is itself a valid initialize.
    example = json.loads(error.data["example"])
    types.InitializeRequestParams.model_validate(example["params"], by_name=False)
    assert "2026-07-28" in error.data["protocol_versions"]


def test_a_request_before_initialize_says_send_initialize_first() -> None:
    error = explain_invalid_params("tools/list", None, initialized=False)
    assert error.message.startswith("send initialize first: tools/list")
    assert error.data == {"send_first": [INITIALIZE_LINE, INITIALIZED_LINE]}


def test_after_initialize_the_bad_param_is_named() -> None:
    error = explain_invalid_params("tools/call", {"arguments": {}}, initialized=True)
    assert error.message.startswith("invalid params for tools/call: params.name is missing")
    error = explain_invalid_params("tools/call", {"name": 5}, initialized=True)
    assert "params.name:" in error.message and "string" in error.message


def test_a_stateless_request_is_not_told_to_initialize() -> None:
    params = {"_meta": {types.PROTOCOL_VERSION_META_KEY: "2026-07-28"}, "arguments": {}}
    error = explain_invalid_params("tools/call", params, initialized=False)
    assert error.message.startswith("invalid params for tools/call: params.name is missing")


def test_only_the_sdks_nameless_error_is_replaced() -> None:
    assert needs_explaining(types.ErrorData(code=-32602, message="Invalid request parameters", data=""))
    assert not needs_explaining(types.ErrorData(code=-32602, message="Unknown tool: 'x'"))
    assert not needs_explaining(types.ErrorData(code=-32601, message="Invalid request parameters"))
