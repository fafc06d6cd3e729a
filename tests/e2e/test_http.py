"""End to end over MCP Streamable HTTP: a real engine, the official SDK client in both eras.

One server (one engine start) serves the module; it has a token file with two callers,
alice and bob. Every test makes the calls it checks and leaves the token file as it found it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from tests.support.httpserver import (
    ACCEPT,
    HttpServer,
    env_without_tokens,
    http_client,
    initialize_body,
    mcp_client,
    metrics_settle,
    sse_messages,
    write_tokens,
)
from tests.support.imagehost import png

pytestmark = pytest.mark.engine

MODES = ["auto", "legacy"]  # auto: the stateless 2026-07-28 era; legacy: the initialize handshake


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    d = tmp_path_factory.mktemp("http")
    tokens = write_tokens(d / "tokens", "alice", "bob")
    server = HttpServer(
        tiny_model,
        VLLM_MCP_HTTP_TOKEN_FILE=str(d / "tokens"),
        VLLM_MCP_METRICS_TEXTFILE=str(d / "metrics.prom"),
        VLLM_MCP_METRICS_INTERVAL="0.3",
        VLLM_MCP_METRICS_CALLER_LABEL="token-file",  # the default, off, would count them all as ""
    )
    try:
        server.wait_ready()
        server.tokens = tokens  # type: ignore[attr-defined]
        server.dir = d  # type: ignore[attr-defined]
        yield server
    finally:
        server.close()


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


async def info(client: Any) -> dict[str, Any]:
    result = await client.call_tool("model_info", {})
    assert not result.is_error, result.content
    return dict(result.structured_content)


# --- the SDK client, both eras ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_tools_list_and_chat_with_progress(served: Any, mode: str) -> None:
    async def main() -> None:
        async with mcp_client(served.url, served.tokens["alice"], mode) as client:
            expected = "2026-07-28" if mode == "auto" else "2025-11-25"
            assert client.session.protocol_version == expected
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"chat_completion", "complete", "model_info", "end_session"}
            events: list[tuple[float, float | None, str | None]] = []

            async def progress(p: float, total: float | None, message: str | None) -> None:
                events.append((p, total, message))

            result = await client.call_tool(
                "chat_completion",
                {"messages": user("stream it"), "max_tokens": 32, "min_tokens": 32},
                progress_callback=progress,
            )
            assert not result.is_error, result.content
            data = result.structured_content
            assert data["usage"]["completion_tokens"] == 32
            assert len(events) >= 1
            assert "".join(m or "" for _, _, m in events) == data["text"]
            assert events[-1][0] == 32 and events[-1][1] == 32

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_sessions_remember_and_end(served: Any, mode: str) -> None:
    sid = f"remember-{mode}"

    async def main() -> None:
        async with mcp_client(served.url, served.tokens["alice"], mode) as client:
            args = {"messages": user("first"), "max_tokens": 4, "min_tokens": 4, "session_id": sid}
            first = (await client.call_tool("chat_completion", args)).structured_content
            args["messages"] = user("second")
            second = (await client.call_tool("chat_completion", args)).structured_content
            assert first["session_id"] == second["session_id"] == sid
            # The second prompt holds the first turn: its prompt and its reply.
            assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"] + 4
            ended = (await client.call_tool("end_session", {"session_id": sid})).structured_content
            assert ended == {"session_id": sid, "ended": True}
            again = (await client.call_tool("end_session", {"session_id": sid})).structured_content
            assert again["ended"] is False

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_cancelling_a_call_aborts_its_engine_request(served: Any, mode: str) -> None:
    """legacy: the SDK sends notifications/cancelled; auto (2026): it closes the response stream."""

    async def main() -> None:
        async with mcp_client(served.url, served.tokens["alice"], mode) as client:
            started = anyio.Event()

            async def progress(p: float, total: float | None, message: str | None) -> None:
                started.set()

            async def long_call() -> None:
                await client.call_tool(
                    "chat_completion",
                    {"messages": user("a long one"), "max_tokens": 1000, "min_tokens": 1000},
                    progress_callback=progress,
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(long_call)
                with anyio.fail_after(120):
                    await started.wait()
                assert (await info(client))["engine_unfinished_requests"] == 1
                tg.cancel_scope.cancel()
            deadline = time.monotonic() + 10
            state = await info(client)
            while state["engine_unfinished_requests"] and time.monotonic() < deadline:
                await anyio.sleep(0.1)
                state = await info(client)
            assert state["engine_unfinished_requests"] == 0
            assert state["in_flight_requests"] == 0

    asyncio.run(main())


def test_a_client_that_disconnects_mid_call_aborts_it(served: Any) -> None:
    """2025 era: the SDK would let the call run on; the transport cancels it."""

    async def main() -> None:
        async with http_client(served.tokens["alice"], **ACCEPT) as http:
            opened = await http.post(served.url, json=initialize_body())
            headers = {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-06-18",
            }
            await http.post(
                served.url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}
            )
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "chat_completion",
                    "arguments": {"messages": user("long"), "max_tokens": 1000, "min_tokens": 1000},
                    "_meta": {"progressToken": "p"},
                },
            }
            async with http.stream("POST", served.url, headers=headers, json=call) as stream:
                async for line in stream.aiter_lines():
                    if "notifications/progress" in line:
                        break  # the call is generating: hang up
            deadline = time.monotonic() + 10
            while True:
                reply = await http.post(
                    served.url,
                    headers=headers,
                    json={
                        "jsonrpc": "2.0",
                        "id": 2,
                        "method": "tools/call",
                        "params": {"name": "model_info"},
                    },
                )
                state = sse_messages(reply.text)[-1]["result"]["structuredContent"]
                if not state["engine_unfinished_requests"] or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.1)
            assert state["engine_unfinished_requests"] == 0
            assert state["in_flight_requests"] == 0

    asyncio.run(main())


# --- many clients ----------------------------------------------------------------------------


def test_sixteen_concurrent_clients_get_their_own_answers(served: Any) -> None:
    names = ["alice", "bob"]

    async def one(i: int, results: dict[int, Any]) -> None:
        mode = MODES[i % 2]
        async with mcp_client(served.url, served.tokens[names[i % 2]], mode) as client:
            streamed: list[str] = []

            async def progress(p: float, total: float | None, message: str | None) -> None:
                streamed.append(message or "")

            n = 16 + i  # each client its own length: a mixed-up answer shows
            result = await client.call_tool(
                "chat_completion",
                {"messages": user(f"client {i}"), "max_tokens": n, "min_tokens": n, "seed": i},
                progress_callback=progress,
            )
            assert not result.is_error, result.content
            results[i] = (n, result.structured_content, "".join(streamed))

    async def main() -> tuple[float, float]:
        single: dict[int, Any] = {}
        t0 = time.monotonic()
        await one(15, single)
        alone = time.monotonic() - t0
        results: dict[int, Any] = {}
        t0 = time.monotonic()
        async with anyio.create_task_group() as tg:
            for i in range(16):
                tg.start_soon(one, i, results)
        together = time.monotonic() - t0
        assert sorted(results) == list(range(16))
        for n, data, streamed in results.values():
            assert data["usage"]["completion_tokens"] == n
            assert streamed == data["text"]
        return alone, together

    alone, together = asyncio.run(main())
    ratio = together / alone
    print(f"\n16 concurrent clients: {together:.2f} s; one client alone: {alone:.2f} s ({ratio:.1f}x)")


# --- access control --------------------------------------------------------------------------


def test_no_or_wrong_token_is_401_and_never_reaches_the_tools(served: Any) -> None:
    before = metrics_settle(served)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "model_info"}}
    for headers in ({}, {"Authorization": "Bearer " + "x" * 43}, {"Authorization": "Basic YWxpY2U6eA=="}):
        for body in (initialize_body(), call):
            r = httpx2.post(served.url, json=body, headers={**ACCEPT, **headers}, timeout=30)
            assert r.status_code == 401, r.text
            challenge = r.headers["www-authenticate"]
            assert challenge.split(" ", 1)[0] == "Bearer", challenge
            # RFC 6750 3.1: a request without a bearer token gets no error code; a bad one does.
            bearer = headers.get("Authorization", "").startswith("Bearer ")
            assert ("error=" in challenge) == bearer, challenge
    # The 2026 era, without a session, is guarded the same way.
    r = httpx2.post(
        served.url, json=call, headers={**ACCEPT, "mcp-protocol-version": "2026-07-28"}, timeout=30
    )
    assert r.status_code == 401
    assert metrics_settle(served) == before


def test_a_foreign_host_or_origin_is_refused(served: Any) -> None:
    auth = {"Authorization": f"Bearer {served.tokens['alice']}", **ACCEPT}
    port = served.url.rsplit(":", 1)[1].split("/")[0]
    r = httpx2.post(served.url, json=initialize_body(), headers={**auth, "Host": f"evil.example:{port}"})
    assert r.status_code == 421
    r = httpx2.post(served.url, json=initialize_body(), headers={**auth, "Origin": "http://evil.example"})
    assert r.status_code == 403
    r = httpx2.post(served.url, json=initialize_body(), headers=auth)
    assert r.status_code == 200


def test_an_oversized_body_is_413(served: Any) -> None:
    auth = {"Authorization": f"Bearer {served.tokens['alice']}", **ACCEPT, "content-type": "application/json"}
    r = httpx2.post(served.url, content=b" " * (4 * 1024 * 1024 + 1), headers=auth, timeout=60)
    assert r.status_code == 413


def test_sessions_are_private_to_their_caller(served: Any) -> None:
    sid = "shared-name"

    async def main() -> None:
        async with (
            mcp_client(served.url, served.tokens["alice"], "legacy") as alice,
            mcp_client(served.url, served.tokens["bob"], "auto") as bob,
        ):
            args = {"messages": user("secret plan"), "max_tokens": 8, "min_tokens": 8, "session_id": sid}
            await alice.call_tool("chat_completion", args)
            await alice.call_tool("chat_completion", args)
            # Bob knows the id, but it names nothing of his: he can neither end nor read Alice's.
            assert (await bob.call_tool("end_session", {"session_id": sid})).structured_content[
                "ended"
            ] is False
            fresh = {"messages": user("hello"), "max_tokens": 2, "min_tokens": 2}
            alone = (await bob.call_tool("chat_completion", fresh)).structured_content
            mine = (await bob.call_tool("chat_completion", {**fresh, "session_id": sid})).structured_content
            assert mine["session_id"] == sid
            assert mine["usage"]["prompt_tokens"] == alone["usage"]["prompt_tokens"]
            assert (await bob.call_tool("end_session", {"session_id": sid})).structured_content[
                "ended"
            ] is True
            assert (await alice.call_tool("end_session", {"session_id": sid})).structured_content[
                "ended"
            ] is True

    asyncio.run(main())


def test_metrics_count_calls_per_caller(served: Any) -> None:
    before = metrics_settle(served)

    async def main() -> None:
        async with mcp_client(served.url, served.tokens["bob"], "legacy") as bob:
            for _ in range(3):
                await bob.call_tool("model_info", {})

    asyncio.run(main())
    after = metrics_settle(served)
    assert after.get("bob", 0) - before.get("bob", 0) == 3
    assert after.get("alice", 0) == before.get("alice", 0)
    assert "" not in after  # every call over HTTP has a caller


def test_a_rotated_token_file_takes_effect_without_a_restart(served: Any) -> None:
    path: Path = served.dir / "tokens"
    original = path.read_text()
    old, new = "carol-token-one-" + "a" * 24, "carol-token-two-" + "b" * 24

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", **ACCEPT}
        return httpx2.post(served.url, json=initialize_body(), headers=headers, timeout=30).status_code

    def replace(text: str) -> None:
        tmp = path.with_name("tokens.new")
        tmp.write_text(text)
        tmp.chmod(0o600)
        os.replace(tmp, path)  # what rotate-token.sh does: an atomic rename

    try:
        assert status(old) == 401
        replace(original + f"carol:{old}\n")
        assert status(old) == 200
        replace(original + f"carol:{new}\n")
        assert status(old) == 401
        assert status(new) == 200
        assert status(served.tokens["alice"]) == 200
    finally:
        replace(original)
    assert status(new) == 401


def test_healthz_is_200_when_ready(served: Any) -> None:
    r = served.health()
    body = r.json()
    assert r.status_code == 200 and body["state"] == body["phase"] == "ready" and body["load_s"] > 0


def test_no_token_in_any_output(served: Any) -> None:
    async def main() -> None:
        async with mcp_client(served.url, served.tokens["alice"], "legacy") as client:
            await client.call_tool("chat_completion", {"messages": user("hi"), "max_tokens": 2})
        r = httpx2.post(
            served.url, json=initialize_body(), headers={"Authorization": "Bearer " + "w" * 40, **ACCEPT}
        )
        assert r.status_code == 401 and "w" * 40 not in r.text

    asyncio.run(main())
    time.sleep(1)
    output = bytes(served.stderr) + bytes(served.stdout)
    for token in [*served.tokens.values(), "w" * 40]:
        assert token.encode() not in output
    assert b"serving MCP over HTTP" in output


# --- vllm-mcp chat --url ---------------------------------------------------------------------


def chat_url(served: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vllm_mcp", "chat", "--url", served.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_without_tokens(),
    )


def test_chat_url_asks_the_running_server_with_streaming(served: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "bob.token"
    token_file.write_text(served.tokens["bob"] + "\n")
    done = chat_url(served, "--token-file", str(token_file), "--max-tokens", "7", "--seed", "3", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the streamed answer
    assert ": 7 tokens, first token after" in done.stderr
    assert served.tokens["bob"] not in done.stdout + done.stderr


def test_chat_url_sends_an_image_file_as_an_image_part(served: Any, tmp_path: Path) -> None:
    """The tiny model is text-only, so the server refuses the image by its place: which shows
    that ``--image`` reached it as an image part (tests/e2e/test_images.py has a model that reads one)."""
    token_file = tmp_path / "bob.token"
    token_file.write_text(served.tokens["bob"] + "\n")
    picture = tmp_path / "red.png"
    picture.write_bytes(png())
    done = chat_url(served, "--token-file", str(token_file), "--image", str(picture), "What is it?")
    assert done.returncode == 1, done.stderr
    assert "messages[0].content[1] is an image" in done.stderr and "text-only model" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_chat_url_without_a_token_says_why_it_failed(served: Any) -> None:
    done = chat_url(served, "hello")
    assert done.returncode == 1
    assert "401 Unauthorized: give --token-file" in done.stderr
    assert "Traceback" not in done.stderr
