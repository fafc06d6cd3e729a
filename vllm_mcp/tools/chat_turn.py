"""What a chat turn adds around generation for today's models: the template's arguments going
in, the thinking and the tool calls coming out (reasoning.py, tool_calls.py say how each works).

``prepare`` checks what the model can do with the call's arguments before anything runs and
gives the chat template's extra arguments; ``finish`` finds the tool calls in the answer (the thinking
is apart by then: ``Tools._generate``). No vLLM or MCP here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vllm_mcp.engine.parsers import Parsers
from vllm_mcp.engine.types import ImageInput
from vllm_mcp.errors import InvalidArguments
from vllm_mcp.tools import media, prompts, tool_calls


def prepare(args: Any, tokenizer: Any, parsers: Parsers) -> dict[str, Any]:
    """The chat template's extra arguments; ``InvalidArguments`` for what this model cannot do."""
    if not prompts.has_chat_template(tokenizer):
        given = [k for k in ("tools", "chat_template_kwargs", "reasoning_effort") if getattr(args, k)]
        if given:
            raise InvalidArguments(
                f"invalid arguments: {given[0]}: this model has no chat template to pass it to "
                "(a base model); use complete, or serve a chat model"
            )
    tools = args.active_tools()
    if tools and args.choice_name() == "auto" and not parsers.tool_calls:
        raise InvalidArguments(
            "invalid arguments: tools: with tool_choice 'auto' the server needs a tool-call parser "
            "to find the calls in the reply (VLLM_MCP_TOOL_CALL_PARSER, e.g. hermes); or pass "
            "tool_choice 'required' or one function, which need none"
        )
    kwargs = args.template_kwargs()
    if tools is not None:
        kwargs["tools"] = tools
    return kwargs


def fit(
    tokenizer: Any,
    history: list[dict[str, Any]],
    new: list[dict[str, Any]],
    max_model_len: int,
    max_tokens: int,
    kwargs: Mapping[str, Any],
    image_input: ImageInput | None = None,
) -> tuple[prompts.Prompt, list[str]]:
    """``prompts.fit`` on messages as templates want them, and the data URLs of the images of the
    messages it kept, in prompt order; a template's refusal is an argument error."""
    from jinja2 import TemplateError

    history, new = tool_calls.for_template(history), tool_calls.for_template(new)
    by_message: dict[int, list[str]] = {}
    if image_input is not None:
        history, in_history = media.template_messages(history, image_input)
        new, in_new = media.template_messages(new, image_input)
        by_message = in_history | in_new
    try:
        prompt = prompts.fit(tokenizer, history, new, max_model_len, max_tokens, kwargs)
        return prompt, [url for m in prompt.messages for url in by_message.get(id(m), ())]
    except prompts.PromptTooLong as e:
        raise InvalidArguments(str(e)) from None
    except TemplateError as e:  # e.g. a template's raise_exception('...') on roles it does not take
        raise InvalidArguments(f"invalid arguments: the model's chat template refused them: {e}") from None


def finish(args: Any, fields: dict[str, Any], parsers: Parsers) -> dict[str, Any]:
    """``fields`` (the answer's, the thinking apart) with any ``tool_calls`` found in the answer."""
    answer = fields["text"]
    fields = {**fields, "tool_calls": None}
    if not args.active_tools() or fields["finish_reason"] not in ("stop", None):
        return fields
    if args.forced_constraint() is not None:
        try:
            calls = tool_calls.from_forced(args, answer)
        except (ValueError, KeyError, TypeError):
            return fields  # cut short: the text stays as it came
        text = ""
    else:
        content, found = parsers.find_tool_calls(answer, args.active_tools(), args.choice_name())
        if not found:
            return fields
        calls, text = tool_calls.from_found(found), content or ""
    return {**fields, "text": text, "tool_calls": calls, "finish_reason": tool_calls.TOOL_CALLS}
