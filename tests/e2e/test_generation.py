"""End to end: structured output, stop strings, LoRA adapters, logprobs and ``complete``.

One real `vllm-mcp serve` (the tiny random model, two random LoRA adapters) through the official
MCP client. The model knows nothing, so whatever the constraint guarantees is vLLM's doing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.models import serve_env
from tests.support.servers import McpClient

pytestmark = pytest.mark.engine

# Small enough for a random model to close within max_tokens: bounded strings, no free numbers.
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 6},
        "admin": {"type": "boolean"},
        "role": {"enum": ["dev", "ops"]},
    },
    "required": ["name", "admin", "role"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def client(tiny_model: Path, tiny_adapters: dict[str, Path]) -> Any:
    modules = " ".join(f"{name}={path}" for name, path in tiny_adapters.items())
    # No structured-output engine arguments: json_schema replies are compact by default.
    env = serve_env(tiny_model, VLLM_MCP_LORA_MODULES=modules, VLLM_DEFAULT_MAX_TOKENS="16")
    c = McpClient(env)
    c.wait_ready(timeout=600)
    yield c
    c.close()


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def call(client: McpClient, tool: str, **arguments: Any) -> dict[str, Any]:
    result = client.call(tool, arguments)
    assert not result.is_error, result.content[0].text
    assert result.content[0].text == result.structured_content["text"]
    return dict(result.structured_content)


def error(client: McpClient, tool: str, **arguments: Any) -> str:
    result = client.call(tool, arguments)
    assert result.is_error, result.structured_content
    return str(result.content[0].text)


def test_tools_list_declares_complete_and_the_new_arguments(client: McpClient) -> None:
    listed = client.submit(client.session.list_tools()).result(60)
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"chat_completion", "complete", "model_info", "end_session"}
    shared = {"stop", "json_schema", "choice", "regex", "adapter", "logprobs", "temperature", "seed"}
    for name in ("chat_completion", "complete"):
        assert shared <= set(tools[name].input_schema["properties"]), name
        assert {"json", "logprobs", "stop_reason", "adapter"} <= set(tools[name].output_schema["properties"])
    assert tools["complete"].input_schema["required"] == ["prompt"]
    assert client.info()["adapters"] == ["alpha", "beta"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_validates(client: McpClient, seed: int) -> None:
    out = call(
        client,
        "chat_completion",
        messages=user("who?"),
        json_schema=PERSON,
        seed=seed,
        temperature=1.0,
        max_tokens=120,
    )
    assert out["finish_reason"] == "stop"
    assert json.loads(out["text"]) == out["json"]
    jsonschema.validate(out["json"], PERSON)


def test_json_schema_replies_are_compact_and_end_well_inside_max_tokens(client: McpClient) -> None:
    """A random model left free to put whitespace between JSON tokens spends every token on it."""
    lengths = []
    for seed in range(4):
        out = call(
            client, "complete", prompt="{", json_schema=PERSON, seed=seed, temperature=1.0, max_tokens=200
        )
        assert out["finish_reason"] == "stop", out
        jsonschema.validate(out["json"], PERSON)
        outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out["text"])
        assert not re.search(r"\s", outside_strings), out["text"]
        lengths.append(out["usage"]["completion_tokens"])
    assert max(lengths) < 100, lengths


def test_choice_and_regex_constrain_the_reply(client: McpClient) -> None:
    choices = ["yes", "no", "maybe later"]
    seen = set()
    for seed in range(6):
        out = call(
            client, "chat_completion", messages=user("ok?"), choice=choices, seed=seed, temperature=1.0
        )
        assert out["text"] in choices
        assert out["json"] is None
        seen.add(out["text"])
        out = call(client, "complete", prompt="id:", regex=r"[a-z]{3}-[0-9]{2}", seed=seed, max_tokens=20)
        assert re.fullmatch(r"[a-z]{3}-[0-9]{2}", out["text"]), out["text"]
    assert len(seen) > 1  # sampling still picks among the choices


def test_bad_constraints_are_argument_errors(client: McpClient) -> None:
    message = error(client, "chat_completion", messages=user("x"), json_schema={"type": "objekt"})
    assert message.startswith("invalid arguments: json_schema.type: ") and "objekt" in message
    message = error(client, "complete", prompt="x", choice=["a"], regex="a")
    assert "choice and regex cannot be combined" in message
    message = error(client, "complete", prompt="x", choice=[])
    assert "choice: List should have at least 1 item" in message
    # A regular expression the grammar backend cannot compile: vLLM's own error.
    message = error(client, "complete", prompt="x", regex="(unclosed")
    assert message.startswith("vLLM rejected the request: ")


def test_json_cut_short_by_max_tokens_says_so(client: McpClient) -> None:
    message = error(client, "chat_completion", messages=user("x"), json_schema=PERSON, max_tokens=3, seed=1)
    assert "not a complete JSON value" in message and "max_tokens (3)" in message


def test_stop_string_ends_the_reply_and_is_named(client: McpClient) -> None:
    base = {"prompt": "The quick brown fox", "seed": 7, "temperature": 1.0, "max_tokens": 40}
    full = call(client, "complete", **base)["text"]
    # Three characters the model does generate with this seed, without whitespace, from the middle on.
    starts = [i for i in range(len(full) // 2, len(full) - 2) if not re.search(r"\s", full[i : i + 3])]
    assert starts, full
    stop = full[starts[0] : starts[0] + 3]
    out = call(client, "complete", **base, stop=["never-generated", stop])
    assert out["text"] == full[: full.index(stop)]
    assert (out["finish_reason"], out["stop_reason"]) == ("stop", stop)
    out = call(client, "complete", **base, stop="never-generated")
    assert out["text"] == full and out["stop_reason"] is None
    message = error(client, "complete", prompt="x", stop=["a", "b", "c", "d", "e"])
    assert "stop: at most 4 stop strings, got 5" in message
    assert "stop: a stop string cannot be empty" in error(client, "complete", prompt="x", stop=[""])


def test_logprobs_per_generated_token(client: McpClient) -> None:
    out = call(client, "complete", prompt="word1 number", logprobs=3, seed=1, max_tokens=8, min_tokens=8)
    entries = out["logprobs"]
    assert len(entries) == out["usage"]["completion_tokens"] == 8
    assert "".join(e["token"] for e in entries) == out["text"]
    for e in entries:
        assert e["logprob"] <= 0
        assert len(e["top"]) == 3
        top = [alt["logprob"] for alt in e["top"]]
        assert top == sorted(top, reverse=True) and e["logprob"] <= top[0] + 1e-6
        for alt in e["top"]:
            if alt["token_id"] == e["token_id"]:
                assert alt["logprob"] == pytest.approx(e["logprob"])
    assert call(client, "complete", prompt="x", max_tokens=2)["logprobs"] is None
    assert "logprobs: Input should be less than or equal to 20" in error(
        client, "complete", prompt="x", logprobs=21
    )


def test_adapters_change_the_output_and_are_deterministic(client: McpClient) -> None:
    def reply(adapter: str | None) -> str:
        args = {"adapter": adapter} if adapter else {}
        out = call(
            client, "chat_completion", messages=user("hello"), seed=5, temperature=1.0, max_tokens=24, **args
        )
        assert out["adapter"] == adapter
        return str(out["text"])

    alpha, beta, base = reply("alpha"), reply("beta"), reply(None)
    assert alpha != beta
    assert base not in (alpha, beta)
    assert reply("alpha") == alpha and reply("beta") == beta
    message = error(client, "chat_completion", messages=user("x"), adapter="gamma")
    assert message == "invalid arguments: adapter: unknown adapter 'gamma'; known adapters: alpha, beta"


def test_complete_uses_the_raw_prompt_and_streams(client: McpClient, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    prompt = "def add(a, b):\n    return"
    expected_prompt_tokens = len(AutoTokenizer.from_pretrained(tiny_model).encode(prompt))
    chunks: list[str] = []
    result = client.call(
        "complete",
        {"prompt": prompt, "seed": 3, "max_tokens": 12, "min_tokens": 12},
        progress=lambda _p, _t, message: chunks.append(message or ""),
    )
    assert not result.is_error, result.content[0].text
    out = result.structured_content
    assert out["usage"] == {"prompt_tokens": expected_prompt_tokens, "completion_tokens": 12}
    assert chunks and "".join(chunks) == out["text"]
    assert "session_id" not in out
    json_out = call(client, "complete", prompt="{", json_schema=PERSON, seed=2, max_tokens=120)
    jsonschema.validate(json_out["json"], PERSON)


def test_everything_at_once_in_one_engine(client: McpClient) -> None:
    futures = {
        "json": client.call_async(
            "chat_completion", {"messages": user("a"), "json_schema": PERSON, "seed": 1, "max_tokens": 120}
        ),
        "alpha": client.call_async("chat_completion", {"messages": user("b"), "adapter": "alpha", "seed": 2}),
        "beta": client.call_async("complete", {"prompt": "c", "adapter": "beta", "seed": 3, "logprobs": 2}),
        "choice": client.call_async("complete", {"prompt": "d", "choice": ["x", "y"], "adapter": "alpha"}),
        "stop": client.call_async("complete", {"prompt": "e", "stop": ["the"], "max_tokens": 30}),
    }
    results = {name: f.result(300) for name, f in futures.items()}
    for name, result in results.items():
        assert not result.is_error, (name, result.content[0].text)
    out = {name: r.structured_content for name, r in results.items()}
    jsonschema.validate(out["json"]["json"], PERSON)
    assert out["alpha"]["adapter"] == "alpha" and out["beta"]["adapter"] == "beta"
    assert len(out["beta"]["logprobs"]) == out["beta"]["usage"]["completion_tokens"]
    assert out["choice"]["text"] in ("x", "y")
    assert "the" not in out["stop"]["text"]


def test_calls_on_different_adapters_generate_in_the_same_batch(client: McpClient) -> None:
    # With one LoRA slot (max_loras=1) vLLM would run the second adapter's request only after
    # the first finished; with a slot per adapter each starts before the other ends.
    args = {"prompt": "batch", "max_tokens": 48, "min_tokens": 48, "seed": 1}
    futures = [client.call_async("complete", {**args, "adapter": name}) for name in ("alpha", "beta")]
    alpha, beta = (f.result(300).structured_content for f in futures)
    assert alpha["timings"]["time_to_first_token_s"] < beta["timings"]["total_s"]
    assert beta["timings"]["time_to_first_token_s"] < alpha["timings"]["total_s"]


def test_a_reply_is_the_same_whether_vllm_coalesces_its_deltas_or_not(client: McpClient) -> None:
    # Without progress and time budget the server asks vLLM for one delta per 64 tokens;
    # with progress (or a budget) for one per step. Same seed: the same reply, token for token.
    base = {"prompt": "Once upon a time", "seed": 3, "temperature": 1.0, "max_tokens": 150, "logprobs": 1}
    coalesced = call(client, "complete", **base, min_tokens=150)
    chunks: list[str] = []
    result = client.call(
        "complete", {**base, "min_tokens": 150}, progress=lambda _p, _t, message: chunks.append(message or "")
    )
    streamed = dict(result.structured_content)
    budgeted = call(client, "complete", **base, min_tokens=150, timeout_s=600)
    for out in (streamed, budgeted):
        assert out["text"] == coalesced["text"]
        assert out["usage"] == coalesced["usage"] and out["usage"]["completion_tokens"] == 150
        assert [e["token_id"] for e in out["logprobs"]] == [e["token_id"] for e in coalesced["logprobs"]]
    assert "".join(chunks) == coalesced["text"]
    assert coalesced["timings"]["time_to_first_token_s"] is not None
    # (Stop strings under coalescing: test_stop_string_ends_the_reply_and_is_named, no progress.)
