"""End to end: a hostile caller and an honest one share one real server over HTTP (issue 27).

`vllm-mcp serve --transport http` on the tiny model, a token file with two callers and a
SQLite session store. ``mallory`` sends arguments generated from the tools' own input schemas
(``tools/list``; hypothesis with hypothesis-jsonschema, tests/support/schema_inputs.py) and the hostile
cases of issue 27: a session_id carrying the namespace separator or NUL, NUL in content,
oversized stop/regex/choice/json_schema/messages, a 1 MB schema to check, unknown adapters, a
flood of sessions and of MCP sessions. ``alice`` meanwhile holds four conversations and takes
turns in one of them. A thread polls ``/healthz`` throughout.

The figures it must hold (docs/reliability.md quotes the run's, written to
``.cache/reliability/hostile-http.json``): no transport error and no 5xx; every refused input a
specific tool or argument error (never "internal error"); ``/healthz`` p99 under 200 ms and
always 200; every one of alice's turns in the store at the end; the server alive, answering,
and exiting 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings

from tests.support import ROOT
from tests.support.httpserver import ACCEPT, HttpServer, sse_messages, write_tokens
from tests.support.schema_inputs import from_schema

pytestmark = pytest.mark.engine

MAX_SESSIONS = 8
PER_CALLER = 4
MAX_CONTENT_CHARS = 2000
MAX_SCHEMA_BYTES = 1_200_000
ALICE_TURNS = 30
GENERATED = {"chat_completion": 120, "complete": 80, "end_session": 40}
HEALTH_P99_S = 0.2
FIGURES = ROOT / ".cache" / "reliability" / "hostile-http.json"
VERSION = "2025-11-25"


class HealthProbe:
    """GET /healthz every 20 ms on its own thread and connection: latency and status of each."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx2.Client(timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = http.get(self.base + "/healthz").status_code
                except httpx2.HTTPError as e:
                    self.failures.append(type(e).__name__)
                else:
                    self.latencies.append(time.perf_counter() - started)
                    self.statuses[status] += 1
                self._stop.wait(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def since(self, n: int) -> list[float]:
        return self.latencies[n:]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else (values or [0.0])[0]


class Caller:
    """One caller's MCP session over raw HTTP (JSON-RPC by hand: every status code is seen)."""

    def __init__(self, server: HttpServer, token: str, name: str) -> None:
        self.url = server.url
        self.name = name
        self.token = token
        self.http = httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=300))
        self.session = ""
        self.ids = iter(range(1, 10**9))
        self.calls = 0
        self.transport_errors: list[str] = []
        self.statuses: Counter[int] = Counter()

    def headers(self, session: str | None = None) -> dict[str, str]:
        h = {**ACCEPT, "Authorization": f"Bearer {self.token}"}
        if session:
            h |= {"mcp-session-id": session, "mcp-protocol-version": VERSION}
        return h

    async def open(self) -> str:
        """A new MCP session (initialize, then notifications/initialized); its id."""
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": VERSION,
                "capabilities": {},
                "clientInfo": {"name": self.name, "version": "0"},
            },
        }
        r = await self.http.post(self.url, json=init, headers=self.headers())
        assert r.status_code == 200, r.text
        session = str(r.headers["mcp-session-id"])
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await self.http.post(self.url, json=note, headers=self.headers(session))).status_code == 202
        return session

    async def request(self, method: str, params: Any = None, session: str | None = None) -> tuple[int, Any]:
        rid = next(self.ids)
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            body["params"] = params
        self.calls += 1
        try:
            r = await self.http.post(self.url, json=body, headers=self.headers(session or self.session))
        except httpx2.HTTPError as e:
            self.transport_errors.append(f"{method}: {type(e).__name__}: {e}")
            return 0, None
        self.statuses[r.status_code] += 1
        if r.status_code != 200:
            return r.status_code, r.text
        replies = [m for m in sse_messages(r.text) if m.get("id") == rid]
        assert len(replies) == 1, r.text[:500]
        return 200, replies[0]

    async def tool(self, name: str, arguments: Any) -> tuple[int, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments})


def outcome(status: int, reply: Any) -> tuple[str, str]:
    """('ok' | 'tool_error' | 'rpc_error' | 'http', the error text)."""
    if status != 200:
        return "http", f"{status}: {str(reply)[:200]}"
    if "error" in reply:
        return "rpc_error", f"{reply['error']['code']}: {reply['error']['message']}"
    result = reply["result"]
    if result.get("isError"):
        return "tool_error", result["content"][0]["text"]
    return "ok", ""


def specific(text: str) -> bool:
    """A refusal that says what is wrong (the tools' messages), not a crash."""
    return bool(text.strip()) and not text.startswith("internal error") and "Traceback" not in text


# --- inputs ---------------------------------------------------------------------------------------


def generated_inputs(schemas: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Arguments valid against each tool's input schema; generation kept short (max/min_tokens <= 8)."""
    out: list[tuple[str, dict[str, Any]]] = []

    def collector(tool: str, count: int) -> Any:
        @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(from_schema(schemas[tool]))
        def collect(arguments: dict[str, Any]) -> None:
            for key in ("max_tokens", "min_tokens"):
                if isinstance(arguments.get(key), int) and arguments[key] > 8:
                    arguments[key] = 8
            out.append((tool, arguments))

        return collect

    for tool, count in GENERATED.items():
        collector(tool, count)()
    return out


def big_schema(valid: bool) -> dict[str, Any]:
    """About 1 MB: 2000 properties and a long description; with ``valid=False`` the last is wrong."""
    props: dict[str, Any] = {f"p{i}": {"type": "string", "maxLength": 8} for i in range(2000)}
    if not valid:
        props["p1999"] = {"type": "strng"}
    return {"type": "object", "description": "d" * 900_000, "properties": props}


def chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 4, **extra}


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    (
        "chat_completion",
        chat(session_id="alice\x1falice-main"),
        "session_id: contains the control character U+001F",
    ),
    (
        "end_session",
        {"session_id": "alice\x1falice-main"},
        "session_id: contains the control character U+001F",
    ),
    ("chat_completion", chat(session_id="m\x00"), "control character U+0000"),
    ("chat_completion", chat("nul \x00 inside", session_id="m-nul"), "contains a NUL character"),
    ("chat_completion", chat("x" * (MAX_CONTENT_CHARS + 1)), "VLLM_MCP_MAX_CONTENT_CHARS"),
    ("chat_completion", chat(stop=["s" * 5000]), "VLLM_MCP_MAX_STOP_CHARS"),
    ("chat_completion", chat(regex="a" * 5000), "VLLM_MCP_MAX_REGEX_CHARS"),
    ("chat_completion", chat(choice=["c"] * 1000), "VLLM_MCP_MAX_CHOICES"),
    ("chat_completion", chat(choice=["c" * 5000]), "VLLM_MCP_MAX_CHOICE_CHARS"),
    (
        "complete",
        {"prompt": "x", "json_schema": {"description": "d" * 1_300_000}},
        "VLLM_MCP_MAX_JSON_SCHEMA_BYTES",
    ),
    ("chat_completion", {"messages": [{"role": "user", "content": "m"}] * 300}, "VLLM_MCP_MAX_MESSAGES"),
    ("complete", {"prompt": "x", "json_schema": {"type": "objekt"}}, "not a valid JSON Schema"),
    ("complete", {"prompt": "x", "json_schema": {"$schema": 5}}, "json_schema.$schema: must be a string"),
    ("complete", {"prompt": "x", "json_schema": big_schema(valid=False)}, "not a valid JSON Schema"),
    *[
        ("chat_completion", chat(session_id=f"m-adapter-{i}", adapter="nope"), "unknown adapter")
        for i in range(30)
    ],
]


# --- the run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("hostile-http")
    tokens = write_tokens(d / "tokens", "alice", "mallory")
    server = HttpServer(
        tiny_model,
        VLLM_MCP_HTTP_TOKEN_FILE=str(d / "tokens"),
        VLLM_MCP_SESSION_STORE=str(d / "sessions.db"),
        VLLM_MAX_SESSIONS=str(MAX_SESSIONS),
        VLLM_MCP_MAX_SESSIONS_PER_CALLER=str(PER_CALLER),
        VLLM_MAX_SESSION_MESSAGES="100",
        VLLM_MCP_MAX_CONTENT_CHARS=str(MAX_CONTENT_CHARS),
        VLLM_MCP_MAX_JSON_SCHEMA_BYTES=str(MAX_SCHEMA_BYTES),
        VLLM_MCP_MAX_CALL_SECONDS="20",
        VLLM_DEFAULT_MAX_TOKENS="4",
        VLLM_DEFAULT_TEMPERATURE="0",
    )
    try:
        # The inputs are generated while the model loads (tens of seconds either way).
        schemas = {t["name"]: t["inputSchema"] for t in tools_list(server, tokens["mallory"])}
        inputs = generated_inputs(schemas)
        server.wait_ready()
        yield server, tokens, inputs, d / "sessions.db"
    finally:
        code = server.close()
        FIGURES.with_suffix(".stderr").write_bytes(bytes(server.stderr))
        assert code == 0, bytes(server.stderr[-3000:])


def tools_list(server: HttpServer, token: str) -> list[dict[str, Any]]:
    """tools/list answers while the model loads."""

    async def main() -> list[dict[str, Any]]:
        c = Caller(server, token, "lister")
        c.session = await c.open()
        status, reply = await c.request("tools/list")
        assert status == 200, reply
        await c.http.aclose()
        return list(reply["result"]["tools"])

    return asyncio.run(main())


def stored(db: Path, caller: str) -> dict[str, int]:
    """Messages per session of ``caller`` in the SQLite store, read as any tool would."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT id, messages FROM sessions").fetchall()
    prefix = caller + "\x1f"
    return {k.removeprefix(prefix): len(json.loads(m)) for k, m in rows if k.startswith(prefix)}


def test_a_hostile_caller_stalls_no_one_and_reaches_nothing_of_another(served: Any) -> None:
    """Each figure here failed on main (5c4395e): the 1 MB schema's check froze /healthz, the
    separator in session_id and NUL in content were not refused, mallory's sessions evicted
    alice's (FIFO over all callers), and her MCP sessions were capped only globally."""
    server, tokens, inputs, db = served
    figures: dict[str, Any] = {}
    with HealthProbe(server.base) as probe:
        figures |= asyncio.run(attack(server, tokens, inputs, probe))
    lat = probe.latencies
    figures |= {
        "healthz_polls": len(lat),
        "healthz_p50_ms": round(statistics.median(lat) * 1000, 1),
        "healthz_p99_ms": round(p99(lat) * 1000, 1),
        "healthz_max_ms": round(max(lat) * 1000, 1),
        "healthz_statuses": dict(probe.statuses),
    }
    kept = stored(db, "alice")
    figures["alice_stored_messages"] = kept
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps(figures, indent=1, sort_keys=True))
    print("\nhostile HTTP:", json.dumps(figures, sort_keys=True))

    assert figures["transport_errors"] == [] and probe.failures == []
    assert not [s for s in figures["statuses"] if int(s) >= 500], figures["statuses"]
    assert figures["unexpected"] == [], figures["unexpected"][:10]
    assert figures["unspecific"] == [], figures["unspecific"][:10]
    assert dict(probe.statuses) == {200: len(lat)}
    assert figures["healthz_p99_ms"] < HEALTH_P99_S * 1000, figures
    # Throughout: also while the 1 MB schema is checked (on main a poll then waited seconds).
    assert figures["big_schema"]["p99_ms"] < HEALTH_P99_S * 1000, figures["big_schema"]
    assert kept == {"alice-main": 2 * ALICE_TURNS, "alice-2": 2, "alice-3": 2, "alice-4": 2}
    assert figures["alice_failures"] == []
    assert server.running() and server.health().status_code == 200


async def attack(
    server: HttpServer, tokens: dict[str, str], inputs: list[Any], probe: HealthProbe
) -> dict[str, Any]:
    alice = Caller(server, tokens["alice"], "alice")
    mallory = Caller(server, tokens["mallory"], "mallory")
    alice.session, mallory.session = await alice.open(), await mallory.open()
    unexpected: list[str] = []
    unspecific: list[str] = []
    kinds: Counter[str] = Counter()
    alice_failures: list[str] = []
    alice_seconds: list[tuple[float, float]] = []  # (when the turn began, how long it took)
    big: dict[str, Any] = {}

    async def alice_turns() -> None:
        for sid in ("alice-2", "alice-3", "alice-4"):
            kind, text = outcome(*await alice.tool("chat_completion", chat("keep me", session_id=sid)))
            if kind != "ok":
                alice_failures.append(f"{sid}: {text}")
        for i in range(ALICE_TURNS):
            began = time.monotonic()
            kind, text = outcome(
                *await alice.tool("chat_completion", chat(f"turn {i}", session_id="alice-main"))
            )
            alice_seconds.append((round(began - started, 1), round(time.monotonic() - began, 2)))
            if kind != "ok":
                alice_failures.append(f"alice-main turn {i}: {text}")

    async def one(tool: str, arguments: Any, expect: str | None, gate: asyncio.Semaphore) -> None:
        async with gate:
            kind, text = outcome(*await mallory.tool(tool, arguments))
        kinds[kind] += 1
        if kind in ("tool_error", "rpc_error") and not specific(text):
            unspecific.append(f"{tool} {json.dumps(arguments)[:200]}: {text[:300]}")
        if expect is not None and (kind != "tool_error" or expect not in text):
            unexpected.append(f"{tool} wanted {expect!r}: {kind} {text[:300]}")
        if kind == "http":
            unexpected.append(f"{tool} {json.dumps(arguments)[:200]}: HTTP {text}")

    async def schema_while_probed() -> None:
        """The 1 MB schema: checked and compiled off the loop while /healthz keeps answering."""
        start = len(probe.latencies)
        kind, text = outcome(
            *await mallory.tool("complete", {"prompt": "{", "json_schema": big_schema(valid=True)})
        )
        during = probe.since(start)
        big.update(
            outcome=kind,
            text=text[:200],
            polls=len(during),
            p99_ms=round(p99(during) * 1000, 1),
            max_ms=round(max(during or [0]) * 1000, 1),
        )
        if kind not in ("ok", "tool_error") or (kind == "tool_error" and not specific(text)):
            unexpected.append(f"the 1 MB schema: {kind} {text[:300]}")

    gate = asyncio.Semaphore(4)
    started = time.monotonic()
    await asyncio.gather(
        alice_turns(),
        schema_while_probed(),
        *(one(tool, args, expect, gate) for tool, args, expect in HOSTILE),
        *(one(tool, args, None, gate) for tool, args in inputs),
        *(one("chat_completion", chat(session_id=f"m-flood-{i}"), None, gate) for i in range(20)),
    )
    # Mallory opens MCP sessions past VLLM_MCP_MAX_SESSIONS_PER_CALLER: her own oldest end,
    # alice's goes on.
    for _ in range(PER_CALLER + 2):
        await mallory.open()
    gone, _ = await mallory.request("ping")
    status, _ = await alice.request("ping")
    kind, text = outcome(*await alice.tool("model_info", {}))
    if (gone, status, kind) != (404, 200, "ok"):
        unexpected.append(f"MCP sessions: mallory's first {gone} (want 404), alice's {status}/{kind} {text}")
    figures = {
        "seconds": round(time.monotonic() - started, 1),
        "calls": alice.calls + mallory.calls,
        "alice_calls": alice.calls,
        "mallory_calls": mallory.calls,
        "generated_inputs": len(inputs),
        "hostile_cases": len(HOSTILE),
        "mallory_outcomes": dict(kinds),
        "statuses": {str(k): v for k, v in (alice.statuses + mallory.statuses).items()},
        "transport_errors": alice.transport_errors + mallory.transport_errors,
        "unexpected": unexpected,
        "unspecific": unspecific,
        "alice_failures": alice_failures,
        "alice_turn_seconds": alice_seconds,
        "big_schema": big,
    }
    await alice.http.aclose()
    await mallory.http.aclose()
    return figures
