"""Structured output: which constraint a call asks for, checked before it reaches the engine.

vLLM constrains decoding itself (``StructuredOutputsParams``, xgrammar first): a reply can only
be text the JSON schema, choice list or regular expression allows, even from a model that
knows nothing of JSON. Here a schema is checked against the JSON Schema meta-schema so a
mistake gets an error that points at it (blocking: the tools run it in a thread, after
admission); a constraint the backend cannot compile comes back
from vLLM as its own error. No vLLM import here (xgrammar, vLLM's grammar library, makes the
compact form of a schema).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from vllm_mcp.errors import RequestError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Constraint:
    """One constraint: ``json`` (a schema object), ``choice`` (strings) or ``regex``.

    ``compact`` (json only): no whitespace outside strings. The grammar vLLM builds from a schema
    allows any amount between tokens, and a small model can spend every token on it.
    """

    kind: Literal["json", "choice", "regex"]
    value: Any
    compact: bool = False


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What is wrong with a JSON Schema, naming where, or None when it is valid."""
    from jsonschema import exceptions, validators

    if not isinstance(schema.get("$schema", ""), str):  # jsonschema would fail on it, not report it
        return "json_schema.$schema: must be a string, a JSON Schema dialect's URI (not a valid JSON Schema)"
    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as e:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path)
        return f"json_schema{where}: {e.message} (not a valid JSON Schema)"
    except RecursionError:
        return "json_schema: nested too deeply to check; flatten it (use $defs and $ref)"
    return None


def constraint(
    json_schema: dict[str, Any] | None, choice: list[str] | None, regex: str | None
) -> Constraint | None:
    """The one constraint asked for; ``ValueError`` if several are, or the schema is invalid."""
    given = [
        k for k, v in (("json_schema", json_schema), ("choice", choice), ("regex", regex)) if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)} cannot be combined: give at most one constraint")
    if json_schema is not None:
        # Not checked here (a pydantic validator, on the event loop, before admission): the
        # tools check it once per call, in a thread, after admission (``schema_problem``).
        return Constraint("json", json_schema)
    if choice is not None:
        return Constraint("choice", list(choice))
    if regex is not None:
        return Constraint("regex", regex)
    return None


GRAMMAR_CACHE_BYTES = 32 * 1024 * 1024
"""Compiled compact grammars kept, by size (key and grammar text): a few hundred usual schemas."""


class _GrammarCache:
    """Grammars by the schema's SHA-256, least recently used dropped past ``limit`` bytes.

    Keyed by a digest, not the schema text, so a large schema is not held twice; thread-safe,
    since compiles run in worker threads.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._items: OrderedDict[str, str | None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _size(key: str, grammar: str | None) -> int:
        return len(key) + len(grammar or "")

    def get(self, key: str) -> tuple[bool, str | None]:
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: str, grammar: str | None) -> None:
        size = self._size(key, grammar)
        if size > self.limit:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = grammar
            self.bytes += size
            while self.bytes > self.limit:
                old, text = self._items.popitem(last=False)
                self.bytes -= self._size(old, text)


_grammars = _GrammarCache(GRAMMAR_CACHE_BYTES)


def _compile(schema_text: str) -> str | None:
    import xgrammar  # vLLM's own structured-output backend

    try:
        grammar = xgrammar.Grammar.from_json_schema(schema_text, any_whitespace=False, separators=(",", ":"))
    except Exception as e:  # a schema xgrammar cannot express: vLLM gets it as is, whitespace allowed
        log.info("json_schema kept as is (xgrammar cannot make it compact)", extra={"reason": str(e)[:200]})
        return None
    return str(grammar)


def compact_json_grammar(schema: dict[str, Any]) -> str | None:
    """The schema as an xgrammar EBNF grammar without free whitespace, or None if it cannot be.

    vLLM 0.32 offers compact JSON only for the whole engine (``disable_any_whitespace``, which
    also rules out the 'auto' backend); a grammar per request does it for one call. Blocking
    (the compile takes as long as the schema is large): call it in a thread.
    """
    text = json.dumps(schema, sort_keys=True)
    key = hashlib.sha256(text.encode()).hexdigest()
    found, grammar = _grammars.get(key)
    if not found:
        grammar = _compile(text)
        _grammars.put(key, grammar)
    return grammar


class IncompleteJson(RequestError, ValueError):
    """The reply ended before the constrained JSON value was complete."""


def parse_reply(text: str, finish_reason: str | None, max_tokens: int) -> Any:
    """The JSON value of a schema-constrained reply.

    Constrained decoding only produces prefixes of valid JSON; a reply stops short of a whole
    value only when something else ended it first (``max_tokens``, a ``stop`` string, an abort).
    """
    try:
        # strict=False: xgrammar's JSON grammar lets a raw control character (U+0000-U+001F)
        # into a string, which strict JSON parsing refuses although the value is complete.
        return json.loads(text, strict=False)
    except ValueError:
        why = {
            "length": f"it reached max_tokens ({max_tokens}); raise max_tokens",
            "stop": "a stop string ended it; drop stop strings the JSON may contain",
        }.get(finish_reason or "", f"it ended early (finish_reason {finish_reason!r})")
        raise IncompleteJson(
            f"the reply is not a complete JSON value: {why}. Partial reply: {text!r}"
        ) from None
