"""``python -m bench --sessions``: what one session turn costs in each store (no engine).

A turn is what ``chat_completion`` does with a session around the generation: read the
history, then ``append_turn`` (one transaction). Each store gets the same turns, round robin
over ``sessions`` sessions whose histories grow to ``VLLM_MAX_SESSION_MESSAGES``; one caller
at a time, then ``concurrency`` at once. PostgreSQL is a real server: ``--store-url``, or one
started for the run in a temporary directory (tests/support/postgres.py, Debian's postgresql).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.stats import distribution
from vllm_mcp.sessions import MemorySessionStore, SessionStore, SqliteSessionStore

TEXT = "a sentence of about sixty characters, as a short chat turn is. " * 3


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    from tests.support.postgres import running_postgres

    with running_postgres(fsync=True) as server:  # durable commits, as SQLite's synchronous=FULL
        yield server.new_database()


async def measure(store: SessionStore, turns: int, sessions: int, concurrency: int) -> dict[str, Any]:
    await store.open()
    try:
        latencies: list[float] = []
        queue = iter(range(turns))

        async def caller() -> None:
            for i in queue:
                key = f"bench-{i % sessions}"
                t0 = time.perf_counter()
                async with store.lock(key):
                    await store.history(key)
                    await store.append_turn(
                        key, [{"role": "user", "content": TEXT}], {"role": "assistant", "content": TEXT}
                    )
                latencies.append((time.perf_counter() - t0) * 1000)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await store.aclose()
    spread = distribution(latencies, scale=1.0)
    return {
        "turns": turns,
        "concurrency": concurrency,
        "p50_ms": round(spread["p50"] or 0.0, 3),
        "p99_ms": round(spread["p99"] or 0.0, 3),
        "turns_per_s": round(turns / wall, 1),
        "client_cpu_ms_per_turn": round(cpu / turns * 1000, 3),
    }


def run_sessions_bench(turns: int, sessions: int, concurrency: int, store_url: str | None) -> dict[str, Any]:
    limits = (sessions, 50)
    results: dict[str, Any] = {}
    with TemporaryDirectory() as tmp, postgres(store_url) as url:
        from vllm_mcp.sessions.postgres import PostgresSessionStore

        for level in (1, concurrency):
            for name in ("memory", "sqlite", "postgres"):
                store: SessionStore
                if name == "memory":
                    store = MemorySessionStore(*limits)
                elif name == "sqlite":
                    store = SqliteSessionStore(Path(tmp) / f"{name}-{level}.db", *limits)
                else:
                    store = PostgresSessionStore(url, None, *limits)
                if name == "postgres":  # each level starts from an empty table, as the others do
                    asyncio.run(_empty(url))
                results[f"{name} c={level}"] = asyncio.run(measure(store, turns, sessions, level))
    return results


async def _empty(url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS vllm_mcp_sessions, vllm_mcp_schema")


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"Session store cost per turn (history + append_turn), {meta['turns']} turns over "
        f"{meta['sessions']} sessions of up to 50 messages; {meta['cpus']} CPUs, load average "
        f"{meta['loadavg'][0]:.1f} at start, {meta['started']}. SQLite synchronous=FULL; PostgreSQL 15 on "
        "this host over loopback TCP (fsync on when the bench starts it); latency includes waiting for "
        "the session's in-process lock.",
        "",
        "| store | callers | p50 ms | p99 ms | turns/s | client CPU ms/turn |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        store = name.split(" ")[0]
        lines.append(
            f"| {store} | {r['concurrency']} | {r['p50_ms']} | {r['p99_ms']} | {r['turns_per_s']} | "
            f"{r['client_cpu_ms_per_turn']} |"
        )
    return "\n".join(lines) + "\n"
