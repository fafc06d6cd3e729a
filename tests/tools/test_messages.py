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
            [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}],
            "messages[0].content: part [0] has type 'image_url': this model takes text only",
        ),
        ([{"type": "text", "text": "a"}, {"text": "b"}], "part [1] has type None: this model takes text"),
        (["hi"], "part [0] must be an object {'type': 'text', 'text': ...}, got str"),
        ([{"type": "text"}], "part [0] (type 'text') needs 'text', a string"),
        ([{"type": "text", "text": "a", "cache": 1}], "part [0]: unknown key 'cache'"),
    ],
)
def test_content_parts_other_than_text_are_refused_by_name(content: Any, expected: str) -> None:
    with pytest.raises(tools.InvalidArguments) as e:
        tools.parse_arguments(tools.ChatArguments, {"messages": [{"role": "user", "content": content}]})
    assert expected in str(e.value)


def test_the_schema_declares_both_content_forms() -> None:
    message = tools.schema(tools.ChatArguments, "validation")["properties"]["messages"]["items"]
    forms = message["properties"]["content"]["anyOf"]
    assert forms[0] == {"type": "string"}
    assert forms[1]["items"]["properties"]["type"]["const"] == "text"
