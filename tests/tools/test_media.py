"""Image parts are recognised by shape and refused naming the model (the FakeEngine double)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.doubles import FakeEngine, tools_over
from vllm_mcp.tools import handlers as tools

OPENAI = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
MCP = {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}


@pytest.mark.parametrize("part", [OPENAI, MCP])
def test_a_text_only_model_refuses_an_image_by_name(part: dict[str, Any]) -> None:
    t = tools_over(FakeEngine(loaded=True, model_name="tiny-llama"))
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "x"}, part]},
    ]
    with pytest.raises(tools.InvalidArguments) as e:
        asyncio.run(t.chat_completion({"messages": messages}))
    assert str(e.value) == (
        "invalid arguments: messages[1].content[1] is an image, and tiny-llama is a text-only model "
        "(model_info's input_modalities: text); send text, or serve a multimodal model"
    )


def test_model_info_says_what_a_call_can_send() -> None:
    info = asyncio.run(tools_over(FakeEngine(loaded=True)).model_info())
    assert info.input_modalities == ["text"] and info.multimodal is False


@pytest.mark.parametrize("arguments", [None, [], {"messages": "x"}, {"messages": [1, {"content": 5}]}])
def test_any_other_shape_has_no_image_part(arguments: Any) -> None:
    from vllm_mcp.tools import media

    assert media.first_image_part(arguments) is None
