"""End to end: hostile and broken input fed to one running server over stdin.

Hand-made cases and hypothesis-generated ones go to the same `vllm-mcp serve`.
After each batch: the server is alive and answers correctly, every request that
had a usable id got exactly one response with that id, stdout held nothing but
JSON-RPC lines, and errors used the right codes. The number of cases tried is
written to ``.cache/reliability/hostile-cases.json`` (docs/reliability.md quotes it).

The server runs with small limits so that abuse reaches them quickly: 64 KiB
lines, 2000-character messages, 3 sessions of 4 messages, 2 generations and 2
waiting calls, one progress notification per 0.25 s.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ROOT
from tests.support.models import serve_env
from tests.support.servers import RawServer

pytestmark = pytest.mark.engine

MAX_MESSAGE_BYTES = 65536
MAX_CONTENT_CHARS = 2000
MAX_SESSIONS = 3
MAX_SESSION_MESSAGES = 4
MAX_CONCURRENCY = 2
MAX_QUEUE = 2
PROGRESS_INTERVAL = 0.25

PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
KNOWN_CODES = {PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS}

COUNT_FILE = ROOT / ".cache" / "reliability" / "hostile-cases.json"


class Ledger:
    """What was sent, and what each request must get back."""

    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.expected: dict[Any, Any] = {}  # id -> "error code" | "result" | "tool_error" | None (any)
        self.anonymous = 0  # lines that may get one response with a null id
        self.cases = 0
        self.sent: dict[Any, bytes] = {}
        self._ids = itertools.count(1)
        self._parsed: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._replies: dict[Any, list[dict[str, Any]]] = {}

    def new_id(self, kind: str = "int") -> Any:
        n = next(self._ids)
        return {"int": 10_000 + n, "str": f"h-{n}", "big": 10**20 + n, "neg": -n}[kind]

    def send(self, line: bytes | str | dict[str, Any], rid: Any = None, expect: Any = None) -> None:
        """One case; ``rid`` is the id the server must answer exactly once."""
        self.cases += 1
        if rid is not None:
            assert rid not in self.expected
            self.expected[rid] = expect
            self.sent[rid] = (line if not isinstance(line, dict) else json.dumps(line))[:300]
        else:
            self.anonymous += 1
        self.server.send(line if not isinstance(line, dict) else json.dumps(line))

    def request(self, method: str, params: Any = None, expect: Any = None, kind: str = "int") -> Any:
        rid = self.new_id(kind)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg, rid, expect)
        return rid

    def tool(self, name: str, arguments: Any, expect: Any = "tool_error") -> Any:
        return self.request("tools/call", {"name": name, "arguments": arguments}, expect)

    def settle(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Wait for every expected response, then check the invariants over all of stdout."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [rid for rid in self.expected if rid not in self._by_id()]
            if not missing:
                break
            assert time.monotonic() < deadline and self.server.running(), (
                f"no response for {[self.sent.get(r, r) for r in missing[:5]]}; server exit code "
                f"{self.server.proc.poll()}, stderr tail: {bytes(self.server.stderr[-3000:])!r}"
            )
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate would arrive now
        by_id = self._by_id()
        for rid, want in self.expected.items():
            replies = by_id.get(rid, [])
            assert len(replies) == 1, f"id {rid!r} answered {len(replies)} times"
            check(replies[0], want)
        nulls = len(by_id.get(None, []))
        assert nulls <= self.anonymous, f"{nulls} null-id responses for {self.anonymous} id-less lines"
        assert set(by_id) - {None} <= set(self.expected) | set(self.server_ids)
        return self.responses()

    server_ids: ClassVar[set[Any]] = set()  # ids the test itself used outside the ledger

    def responses(self) -> list[dict[str, Any]]:
        """Every response so far; each stdout line is parsed once (thousands by the end)."""
        lines = self.server.lines
        for line in lines[len(self._parsed) : len(lines)]:
            msg = json.loads(line)  # stdout is nothing but JSON
            assert msg.get("jsonrpc") == "2.0", line
            self._parsed.append(msg)
            if "method" not in msg:
                self._responses.append(msg)
                self._replies.setdefault(msg.get("id"), []).append(msg)
        return list(self._responses)

    def _by_id(self) -> dict[Any, list[dict[str, Any]]]:
        """The responses by id (a dict compares ids as the former ``==`` scan did)."""
        self.responses()
        return self._replies


def check(reply: dict[str, Any], want: Any) -> None:
    if "error" in reply:
        code = reply["error"]["code"]
        assert code in KNOWN_CODES, reply
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"], reply
    if want is None:
        return
    if isinstance(want, int):
        assert reply.get("error", {}).get("code") == want, reply
    elif want == "result":
        assert "result" in reply and not reply["result"].get("isError"), reply
    elif want == "tool_error":
        assert reply.get("result", {}).get("isError") is True, reply
    elif isinstance(want, tuple):  # ("tool_error", "text the message must contain")
        assert reply.get("result", {}).get("isError") is True, reply
        assert want[1] in reply["result"]["content"][0]["text"], reply


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Any:
    env = serve_env(
        tiny_model,
        VLLM_MCP_MAX_MESSAGE_BYTES=str(MAX_MESSAGE_BYTES),
        VLLM_MCP_MAX_CONTENT_CHARS=str(MAX_CONTENT_CHARS),
        VLLM_MAX_SESSIONS=str(MAX_SESSIONS),
        VLLM_MAX_SESSION_MESSAGES=str(MAX_SESSION_MESSAGES),
        VLLM_MCP_MAX_CONCURRENCY=str(MAX_CONCURRENCY),
        VLLM_MCP_MAX_QUEUE=str(MAX_QUEUE),
        VLLM_MCP_PROGRESS_INTERVAL=str(PROGRESS_INTERVAL),
        VLLM_DEFAULT_MAX_TOKENS="4",
        VLLM_DEFAULT_TEMPERATURE="0",
    )
    s = RawServer(env)
    yield s
    code = s.close(timeout=120)
    assert code == 0, bytes(s.stderr[-3000:])


@pytest.fixture(scope="module")
def ledger(server: RawServer) -> Any:
    """The server's ledger, after ``initialize`` and with the model loaded: every test starts here."""
    book = Ledger(server)
    reply = server.initialize()
    Ledger.server_ids.add(0)
    assert reply["result"]["serverInfo"]["name"] == "vllm-mcp"
    ready(book)
    yield book
    COUNT_FILE.parent.mkdir(parents=True, exist_ok=True)
    COUNT_FILE.write_text(json.dumps({"cases": book.cases, "requests_with_id": len(book.expected)}))
    print(f"\nhostile input: {book.cases} cases, {len(book.expected)} of them requests with an id")


def chat(content: str = "hi", **arguments: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **arguments}


def ready(ledger: Ledger) -> None:
    """The model has loaded (the chat cases need it)."""
    deadline = time.monotonic() + 400  # generous: CI machines are shared
    while time.monotonic() < deadline:
        rid = ledger.tool("model_info", {}, expect="result")
        reply = ledger.server.response(rid)
        if reply["result"]["structuredContent"]["server_state"] == "ready":
            return
        time.sleep(0.5)
    raise TimeoutError("model did not load")


# --- the cases --------------------------------------------------------------------------


def test_requests_before_initialize_are_refused_but_answered(tmp_path: Path) -> None:
    # A server of its own, still uninitialised; its model is never loaded (the answers before
    # initialize do not need it), so no engine starts.
    server = RawServer(serve_env(tmp_path / "no-model"))
    try:
        book = Ledger(server)
        book.tool("model_info", {}, expect=INVALID_PARAMS)
        book.request("tools/list", expect=INVALID_PARAMS)
        book.request("ping", expect="result")  # ping is allowed at any time
        book.request("no/such/method", expect=NO_METHOD)
        book.settle()
        reply = server.initialize()
        assert reply["result"]["serverInfo"]["name"] == "vllm-mcp"
    finally:
        server.close(timeout=60)


def test_broken_lines_and_odd_ids(ledger: Ledger) -> None:
    L = ledger
    for raw in [
        b"{not json",
        b"{",
        b'{"jsonrpc": "2.0", "id": 1',
        b"\xff\xfe\xfd",
        b'{"jsonrpc":"2.0","method":"ping","id":"\xc3\x28"}',  # invalid UTF-8 inside a string
        b'{"jsonrpc":"2.0","id":5,"method":"ping"} trailing',
        b"[" * 60_000,  # deep nesting, just under the line limit
        b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
        b"\x00",  # a NUL first byte (one such line ended the server)
        b"\x0042",
        b"\x00\xc3\xaa\xc2\xb2>",
        b'"just a string"',
        b"42",
        b"null",
        b"true",
        b"[]",
        b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]',  # a batch: not in MCP
        b'{"jsonrpc":"2.0","method":"ping","id":1.5}',
        b'{"jsonrpc":"2.0","method":"ping","id":null}',
        b'{"jsonrpc":"2.0","method":"ping","id":true}',
        b'{"jsonrpc":"2.0","method":"ping","id":{"a":1}}',
        b'{"jsonrpc":"2.0","method":"ping","id":[1]}',
        b'{"jsonrpc":"2.0","method":"ping","id":1e400}',
        b'{"jsonrpc":"2.0","method":"ping","id":NaN}',
        b'{"jsonrpc":"2.0","id":"lost"}',  # neither request nor response: -32600 for its id
    ]:
        if raw == b'{"jsonrpc":"2.0","id":"lost"}':
            L.send(raw, "lost", INVALID_REQUEST)
        else:
            L.send(raw)
    # Empty lines, blank lines and lines with only \r are skipped.
    for raw in [b"", b"   ", b"\r", b"\t\t"]:
        L.send(raw)
    # A string with a raw newline is two broken lines, each answered with -32700.
    L.send(b'{"jsonrpc":"2.0","id":"nl","method":"ping","params":{"x":"a\nb"}}')
    L.anonymous += 1
    # Escaped newlines, CRLF endings and odd but valid ids are fine.
    L.send(b'{"jsonrpc":"2.0","id":"crlf","method":"ping"}\r\n', "crlf", "result")
    for kind in ("int", "str", "big", "neg"):
        L.request("ping", expect="result", kind=kind)
    L.send(b'{"jsonrpc":"2.0","id":"","method":"ping"}', "", "result")
    big = 2**200
    L.send(b'{"jsonrpc":"2.0","id":%d,"method":"ping"}' % big, big, "result")
    # Wrong envelope: -32600 naming the problem, with the id when it had one.
    L.send({"jsonrpc": "1.0", "id": "v1", "method": "ping"}, "v1", INVALID_REQUEST)
    L.send({"id": "nov", "method": "ping"}, "nov", INVALID_REQUEST)
    L.send({"jsonrpc": 2.0, "id": "num", "method": "ping"}, "num", INVALID_REQUEST)
    L.send({"jsonrpc": "2.0", "id": "m", "method": 42}, "m", INVALID_REQUEST)
    L.send({"jsonrpc": "2.0", "id": "p", "method": "ping", "params": [1, 2]}, "p", INVALID_REQUEST)
    # A request that also looks like a response must not pass as a response to nothing.
    L.send({"jsonrpc": "2.0", "id": "mr", "method": "ping", "result": {}}, "mr", INVALID_REQUEST)
    L.send(
        {"jsonrpc": "2.0", "id": "me", "method": "ping", "error": {"code": 1, "message": "m"}},
        "me",
        INVALID_REQUEST,
    )
    # Lone surrogates, escaped: -32700 with the id.
    L.send(b'{"jsonrpc":"2.0","id":"sur","method":"ping","params":{"s":"\\ud800"}}', "sur", PARSE)
    L.send(b'{"jsonrpc":"2.0","id":"sur2","method":"ping","params":{"s":"\\udfff x"}}', "sur2", PARSE)
    L.send(b'{"jsonrpc":"2.0","id":"pair","method":"ping","params":{"s":"\\ud83d\\ude00"}}', "pair", "result")
    # Unknown methods and notifications; responses to requests never made.
    L.request("no/such/method", expect=NO_METHOD)
    L.request("tools/unknown", expect=NO_METHOD)
    L.request("", expect=NO_METHOD)
    L.send({"jsonrpc": "2.0", "method": "notifications/unknown", "params": {}})
    L.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 123456}})
    L.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})
    L.send(
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "progress": 1}}
    )
    L.send({"jsonrpc": "2.0", "id": 987654, "result": {}})
    L.send({"jsonrpc": "2.0", "id": 987655, "error": {"code": 1, "message": "x"}})
    # Deep but parseable nesting inside params.
    deep: Any = 1
    for _ in range(500):
        deep = {"a": deep}
    L.request("ping", {"deep": deep}, expect="result")
    L.tool("model_info", deep, expect="tool_error")
    L.request("initialize", {}, expect=INVALID_PARAMS)
    L.settle()


BAD_ARGUMENTS: list[tuple[str, Any]] = [
    ("messages", "hi"),
    ("messages", []),
    ("messages", [1]),
    ("messages", [{"role": "user"}]),
    ("messages", [{"role": "robot", "content": "x"}]),
    ("messages", [{"role": "user", "content": 5}]),
    ("messages", [{"role": "user", "content": "x", "name": "n"}]),
    ("session_id", ""),
    ("session_id", "s" * 257),
    ("session_id", 5),
    ("session_id", "alice\x1fs"),  # the namespace separator (issue 27)
    ("messages", [{"role": "user", "content": "nul \x00"}]),
    ("temperature", -0.1),
    ("temperature", 2.5),
    ("temperature", "hot"),
    ("temperature", True),
    ("max_tokens", 0),
    ("max_tokens", -5),
    ("max_tokens", 1.5),
    ("max_tokens", "10"),
    ("top_p", 0),
    ("top_p", 1.5),
    ("top_k", 0),
    ("top_k", -2),
    ("seed", -1),
    ("seed", 2**64),
    ("min_tokens", -1),
    ("stream", True),
]


def test_every_argument_of_wrong_type_or_range(ledger: Ledger) -> None:
    L = ledger
    ready(L)
    for field, value in BAD_ARGUMENTS:
        args = chat()
        args[field] = value
        L.tool("chat_completion", args, expect=("tool_error", field))
    L.tool("chat_completion", {}, expect=("tool_error", "messages: required argument is missing"))
    L.tool("chat_completion", None, expect=("tool_error", "messages"))
    L.tool("chat_completion", [1, 2], expect=INVALID_PARAMS)
    L.tool("chat_completion", "text", expect=INVALID_PARAMS)
    L.tool("chat_completion", chat("x" * (MAX_CONTENT_CHARS + 1)), expect=("tool_error", "MAX_CONTENT_CHARS"))
    L.tool("end_session", {}, expect=("tool_error", "session_id"))
    L.tool("end_session", {"session_id": 7}, expect=("tool_error", "session_id"))
    L.tool("model_info", {"verbose": True}, expect=("tool_error", "unknown argument"))
    L.tool("no_such_tool", {}, expect=INVALID_PARAMS)
    L.request("tools/call", {"arguments": {}}, expect=INVALID_PARAMS)
    L.request("tools/call", {"name": 5}, expect=INVALID_PARAMS)
    L.request("tools/call", expect=INVALID_PARAMS)
    # Valid extremes are served, not refused. max_tokens=10**30 generates to the end of the
    # context (~1000 tokens): 3.5 s idle, over 120 s in CI beside other engines, whose
    # busy-polling processes run at nice 0 where this server's workers have 10 (with two busy
    # loops beside it: 30 s). The time budget bounds it; a reply cut by it is still a result.
    L.tool("chat_completion", chat("x", max_tokens=10**30, min_tokens=0, timeout_s=20), expect="result")
    L.tool("chat_completion", chat("é☃\U0001f600\\n\"'<>&" * 20, seed=2**63 - 1), expect="result")
    L.tool("chat_completion", chat("a" * MAX_CONTENT_CHARS, max_tokens=1), expect=None)  # may not fit
    L.settle()


def test_over_long_line_is_refused_without_being_read_into_memory(ledger: Ledger) -> None:
    server = ledger.server
    proc = psutil.Process(server.proc.pid)
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunk = b'{"jsonrpc":"2.0","id":"huge","method":"ping","params":{"s":"' + b"x" * (1 << 20)
    size = 0
    assert server.proc.stdin is not None
    try:
        server.proc.stdin.write(chunk)
        size += len(chunk)
        filler = b"y" * (1 << 20)
        for _ in range(199):
            server.proc.stdin.write(filler)
            size += len(filler)
        server.proc.stdin.write(b'"}}\n')
        server.proc.stdin.flush()
        size += 3  # the message, without its newline, is what VLLM_MCP_MAX_MESSAGE_BYTES counts
        ledger.cases += 1
        ledger.anonymous += 1
        reply = server.wait_for(lambda m: f"message of {size} bytes" in json.dumps(m), timeout=120)
    finally:
        stop.set()
        sampler.join()
    assert reply["error"]["code"] == INVALID_REQUEST
    assert f"message of {size} bytes" in reply["error"]["message"]
    growth = peak[0] - base
    assert growth < 32 * 2**20, f"RSS grew by {growth / 2**20:.0f} MiB reading a {size / 2**20:.0f} MiB line"
    # The line after it is read normally.
    ledger.request("ping", expect="result")
    ledger.settle()


def test_flood_of_requests(ledger: Ledger) -> None:
    L = ledger
    lines = []
    for i in range(3000):
        rid = L.new_id("str" if i % 2 else "int")
        method = ("ping", "tools/list", "tools/call")[i % 3]
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if method == "tools/call":
            msg["params"] = {"name": "model_info", "arguments": {}}
        L.expected[rid] = "result"
        L.cases += 1
        lines.append(json.dumps(msg).encode() + b"\n")
        if i % 10 == 0:  # garbage mixed in
            lines.append(b"{garbage\n")
            L.cases += 1
            L.anonymous += 1
    assert L.server.proc.stdin is not None
    L.server.proc.stdin.write(b"".join(lines))  # one write: no pacing at all
    L.server.proc.stdin.flush()
    L.settle(timeout=180)


def test_queue_bound_answers_server_busy(ledger: Ledger) -> None:
    L = ledger
    ids = [
        # Long enough that all twelve have arrived before the first two end (the lines are read
        # in milliseconds); longer only costs time on a loaded machine.
        L.tool("chat_completion", chat(f"busy {i}", max_tokens=100, min_tokens=100), expect=None)
        for i in range(12)
    ]
    responses = {m["id"]: m for m in L.settle() if m.get("id") in ids}
    busy = [r for r in responses.values() if r["result"].get("isError")]
    served = [r for r in responses.values() if not r["result"].get("isError")]
    assert len(served) == MAX_CONCURRENCY + MAX_QUEUE
    assert len(busy) == 12 - MAX_CONCURRENCY - MAX_QUEUE
    for r in busy:
        text = r["result"]["content"][0]["text"]
        assert text.startswith("server busy") and "VLLM_MCP_MAX_QUEUE=2" in text
    for r in served:
        assert r["result"]["structuredContent"]["usage"]["completion_tokens"] == 100


def test_progress_notifications_are_rate_limited(ledger: Ledger) -> None:
    L = ledger
    rid = L.new_id()
    params = {"name": "chat_completion", "arguments": chat("stream", max_tokens=300, min_tokens=300)}
    params["_meta"] = {"progressToken": "rate"}
    L.send({"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}, rid, "result")
    L.settle()
    reply = L.server.response(rid)["result"]["structuredContent"]
    notes = [
        m["params"]
        for m in L.server.messages()
        if m.get("method") == "notifications/progress" and m["params"]["progressToken"] == "rate"
    ]
    assert "".join(n["message"] for n in notes) == reply["text"]
    assert notes[-1]["progress"] == 300
    duration = reply["timings"]["total_s"]
    assert len(notes) <= duration / PROGRESS_INTERVAL + 2, (len(notes), duration)
    progress = [n["progress"] for n in notes]
    assert progress == sorted(progress)


def test_sessions_stay_within_their_bounds(ledger: Ledger) -> None:
    L = ledger
    prompt_tokens = []
    for _ in range(6):
        rid = L.tool(
            "chat_completion", chat("again", session_id="bounded", max_tokens=4, min_tokens=4), "result"
        )
        L.settle()
        prompt_tokens.append(L.server.response(rid)["result"]["structuredContent"]["usage"]["prompt_tokens"])
    # Four messages kept: the history stops growing after two turns.
    assert prompt_tokens[1] > prompt_tokens[0]
    assert max(prompt_tokens[2:]) - min(prompt_tokens[2:]) <= 4, prompt_tokens
    for i in range(10):
        L.tool("chat_completion", chat("x", session_id=f"many-{i}", max_tokens=1), "result")
        L.settle()
    rid = L.tool("model_info", {}, expect="result")
    L.settle()
    info = L.server.response(rid)["result"]["structuredContent"]
    assert info["active_sessions"] == MAX_SESSIONS


# --- generated cases ---------------------------------------------------------------------------

JSON = st.recursive(
    # Only values JSON has: NaN and Infinity make the whole line a parse error (-32700, null id),
    # which the explicit cases above cover; here each request must get a reply with its own id.
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CHAT_KEYS = ["messages", "session_id", "temperature", "max_tokens", "top_p", "top_k", "seed", "min_tokens"]
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "tool", ""]) | JSON,
        "content": st.text(max_size=30) | JSON,
    }
)
CHAT_ARGS = st.dictionaries(
    st.sampled_from([*CHAT_KEYS, "extra"]),
    st.lists(MESSAGE, max_size=3) | JSON | st.integers(-5, 50) | st.floats(-1, 3),
    max_size=6,
)
PARAMS = st.one_of(
    st.none(),
    JSON,
    st.fixed_dictionaries(
        {"name": st.sampled_from(["chat_completion", "model_info", "end_session", "nope"]) | JSON},
        optional={"arguments": CHAT_ARGS | JSON, "_meta": JSON},
    ),
)
METHOD = st.sampled_from(["ping", "tools/call", "tools/list", "initialize", "resources/list", "x"]) | st.text(
    max_size=10
)


def test_generated_messages(ledger: Ledger) -> None:
    L = ledger

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        shape=st.sampled_from(["request", "notification", "object", "bytes", "text"]),
        method=METHOD,
        params=PARAMS,
        extra=st.dictionaries(st.sampled_from(["jsonrpc", "result", "error", "x"]), JSON, max_size=2),
        raw=st.binary(max_size=64),
        text=st.text(max_size=64),
    )
    def send(shape: str, method: Any, params: Any, extra: dict[str, Any], raw: bytes, text: str) -> None:
        if shape in ("request", "notification"):
            msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **extra}
            if params is not None:
                msg["params"] = params
            if shape == "request":
                rid = L.new_id("str")
                msg["id"] = rid
                L.send(msg, rid, None)
            else:
                msg.pop("id", None)
                L.send(msg)
        elif shape == "object":
            L.send(json.dumps({"method": method, "params": params, **extra}))
        elif shape == "bytes":
            L.send(raw.replace(b"\n", b" "))
        else:
            L.send(text.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogatepass"))

    before = L.cases
    send()
    assert L.cases - before >= 100  # hypothesis did generate cases
    L.settle(timeout=180)  # each generated request answered exactly once, stdout nothing but JSON-RPC
    assert L.server.proc.poll() is None


def test_after_all_that_the_server_still_answers_correctly(ledger: Ledger) -> None:
    L = ledger
    rid = L.tool("chat_completion", chat("still there?", max_tokens=5, min_tokens=5, seed=3), "result")
    L.request("tools/list", expect="result")
    L.settle()
    result = L.server.response(rid)["result"]["structuredContent"]
    assert result["usage"]["completion_tokens"] == 5
    assert L.server.proc.poll() is None
