"""Unit tests of chat messages: content as a string or text parts, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from vllm_mcp.tools import handlers as tools
from vllm_mcp.tools.messages import ChatMessage


def test_text_parts_become_one_string() -> None:
    parts = [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}, {"type": "text", "text": ""}]
    message = ChatMessage.model_validate({"role": "user", "content": parts})
    assert message.content == "Hello" and message.as_dict() == {"role": "user", "content": "Hello"}
    assert ChatMessage.model_validate({"role": "user", "content": []}).content == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}],
            "messages[0].content: part [0] has type 'input_audio', which this server does not take; "
            "send text parts {'type': 'text', 'text': ...} or images {'type': 'image_url'",
        ),
        (
            [{"type": "text", "text": "a"}, {"text": "b"}],
            "part [1] has type None, which this server does not",
        ),
        (
            [{"type": "image_url", "image_url": "data:image/png;base64,AAAA"}],
            "part [0] (type 'image_url'): image_url: Input should be a valid dictionary or instance of "
            "ImageUrl; an image part is {'type': 'image_url', 'image_url': {'url': ",
        ),
        (
            [{"type": "image", "data": "AAAA"}],
            "part [0] (type 'image'): mimeType: required; an image part is",
        ),
        (
            [{"type": "image", "data": "AAAA", "mimeType": "image/png", "uri": "x"}],
            "part [0] (type 'image'): uri: unknown key",
        ),
        (["hi"], "part [0] must be an object {'type': 'text', 'text': ...}, got str"),
        ([{"type": "text"}], "part [0] (type 'text') needs 'text', a string"),
        ([{"type": "text", "text": "a", "cache": 1}], "part [0]: unknown key 'cache'"),
    ],
)
def test_parts_neither_text_nor_an_image_and_malformed_ones_are_refused_by_name(
    content: Any, expected: str
) -> None:
    with pytest.raises(tools.InvalidArguments) as e:
        tools.parse_arguments(tools.ChatArguments, {"messages": [{"role": "user", "content": content}]})
    assert expected in str(e.value)


def test_the_schema_declares_both_content_forms() -> None:
    message = tools.schema(tools.ChatArguments, "validation")["properties"]["messages"]["items"]
    forms = message["properties"]["content"]["anyOf"]
    assert forms[0] == {"type": "string"}
    kinds = [part["properties"]["type"]["const"] for part in forms[1]["items"]["anyOf"]]
    assert kinds == ["text", "image_url", "image"]


def test_image_parts_keep_the_content_a_list_in_order_and_only_text_counts_as_content() -> None:
    image = {"type": "image", "data": "AAAA", "mimeType": "image/png"}
    content = [{"type": "text", "text": "what is "}, image, {"type": "text", "text": "this?"}]
    message = ChatMessage.model_validate({"role": "user", "content": content})
    assert message.text() == "what is this?"
    assert message.as_dict() == {"role": "user", "content": content}
