"""Unit tests of the structured-output checks (no engine: the e2e tests run the constraints)."""

from __future__ import annotations

import asyncio

import pytest

from vllm_mcp.engine import structured
from vllm_mcp.tools import generation


def test_one_constraint_at_most() -> None:
    assert structured.constraint(None, None, None) is None
    assert structured.constraint({"type": "object"}, None, None) == structured.Constraint(
        "json", {"type": "object"}
    )
    assert structured.constraint(None, ["a"], None) == structured.Constraint("choice", ["a"])
    with pytest.raises(ValueError, match="json_schema and choice and regex cannot be combined"):
        structured.constraint({}, ["a"], "a")


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"type": "objekt"}, "json_schema.type: "),
        ({"properties": {"a": {"type": 5}}}, "json_schema.properties.a.type: "),
        ({"required": "name"}, "json_schema.required: 'name' is not of type 'array'"),
        ({"type": "string", "maxLength": -1}, "json_schema.maxLength: -1 is less than the minimum of 0"),
        ({"$schema": 5}, "json_schema.$schema: must be a string"),  # jsonschema raised AttributeError
        ({"$schema": {}}, "json_schema.$schema: must be a string"),
    ],
)
def test_an_invalid_schema_names_the_place(schema: dict, where: str) -> None:
    problem = structured.schema_problem(schema)
    assert problem is not None and problem.startswith(where), problem
    assert problem.endswith("(not a valid JSON Schema)")


def test_a_schema_nested_too_deeply_to_check_is_named() -> None:
    deep: dict = {"type": "object"}
    for _ in range(2000):
        deep = {"type": "object", "properties": {"a": deep}}
    assert structured.schema_problem(deep) == (
        "json_schema: nested too deeply to check; flatten it (use $defs and $ref)"
    )


def test_a_valid_schema_passes() -> None:
    assert structured.schema_problem({"type": "object", "properties": {"a": {"enum": [1, 2]}}}) is None


def test_a_cut_reply_says_why() -> None:
    assert structured.parse_reply('{"a": 1}', "stop", 10) == {"a": 1}
    with pytest.raises(structured.IncompleteJson, match=r"reached max_tokens \(10\); raise max_tokens"):
        structured.parse_reply('{"a": ', "length", 10)
    with pytest.raises(structured.IncompleteJson, match="a stop string ended it"):
        structured.parse_reply('{"a": ', "stop", 10)


def test_a_complete_reply_with_a_raw_control_character_in_a_string_is_json() -> None:
    # Seen on the tiny model: the grammar allowed U+0013 inside a string.
    assert structured.parse_reply('{"name":"]npld\x13","admin":false}', "stop", 40) == {
        "name": "]npld\x13",
        "admin": False,
    }


SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "array", "items": {"type": "string"}}},
    "required": ["a", "b"],
}


def test_the_compact_grammar_takes_json_without_free_whitespace_only() -> None:
    from xgrammar.testing import _is_grammar_accept_string as accepts

    grammar = structured.compact_json_grammar(SCHEMA)
    assert grammar is not None
    assert accepts(grammar, '{"a":1,"b":["x y","z"]}')  # whitespace inside a string is text
    assert not accepts(grammar, '{"a": 1,"b":[]}')
    assert not accepts(grammar, '{\n"a":1,"b":[]}')
    assert not accepts(grammar, '{"a":1,"b":["x"]}  ')


def test_json_schema_is_compact_unless_json_whitespace_is_asked_for() -> None:
    def parsed(**extra: object) -> generation.GenerationArguments:
        return generation.GenerationArguments.model_validate({"json_schema": SCHEMA, **extra})

    assert parsed().constraint() == structured.Constraint("json", SCHEMA, compact=True)
    assert parsed(json_whitespace=False).constraint() == structured.Constraint("json", SCHEMA, compact=True)
    assert parsed(json_whitespace=True).constraint() == structured.Constraint("json", SCHEMA)
    regex = generation.GenerationArguments.model_validate({"regex": "a+"}).constraint()
    assert regex == structured.Constraint("regex", "a+")
    with pytest.raises(ValueError, match="json_whitespace: applies only with json_schema"):
        generation.GenerationArguments.model_validate({"regex": "a+", "json_whitespace": True})


@pytest.mark.engine  # builds vLLM's StructuredOutputsParams, so imports vLLM (2 s)
def test_the_engine_sends_the_compact_grammar_and_the_schema_itself_when_whitespace_is_allowed() -> None:
    from vllm_mcp.engine import core as engine

    compact = asyncio.run(engine._structured_outputs(structured.Constraint("json", SCHEMA, compact=True)))
    assert compact.json is None and compact.grammar == structured.compact_json_grammar(SCHEMA)
    free = asyncio.run(engine._structured_outputs(structured.Constraint("json", SCHEMA)))
    assert free.json == SCHEMA and free.grammar is None


def test_the_grammar_cache_is_bounded_in_bytes_and_keyed_by_digest() -> None:
    """Issue 27, finding 1: main's ``lru_cache(256)`` kept 256 grammars and their full schema
    texts whatever their size (over 1 GiB with large schemas); this cache holds bytes, not
    entries. (Fails on main: there is no ``_GrammarCache``.)"""
    cache = structured._GrammarCache(limit=1000)
    for i in range(20):
        cache.put(f"k{i}", "g" * 98)
    assert cache.bytes <= 1000
    assert cache.get("k0") == (False, None)  # the oldest went first
    assert cache.get("k19") == (True, "g" * 98)
    cache.put("huge", "g" * 5000)  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get("huge") == (False, None) and cache.get("k19")[0]
    cache.put("none", None)  # a schema xgrammar cannot make compact is remembered too
    assert cache.get("none") == (True, None)


def test_a_schema_is_not_checked_against_the_meta_schema_while_arguments_are_parsed() -> None:
    """Issue 27, finding 1: main checked it in the arguments' validator, on the event loop, before
    admission (and again when building the sampling parameters); now the tools check it once,
    in a thread, after admission. (Fails on main: the validator raised here.)"""
    args = generation.GenerationArguments.model_validate({"json_schema": {"type": "objekt"}})
    assert args.constraint() == structured.Constraint("json", {"type": "objekt"}, compact=True)
