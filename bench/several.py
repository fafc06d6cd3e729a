"""``python -m bench --several``: several models behind one server (``VLLM_MCP_MODELS``).

Two measurements on the tiny models (tests/support/models.py):

- two generative models in one server against two servers of one model each: output tokens/s
  of each model with ``concurrency`` calls in flight to each at once (both models busy), and the
  resident memory of all the processes (servers and their vLLM engine processes);
- ``embed`` throughput, inputs/s with batch 1 (one input per call, one call at a time) and 32
  (32 inputs per call), against the engine's own ``AsyncLLM.encode`` driven in this process.

Every figure comes with the machine and ``kernel.sched_autogroup_enabled``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from pathlib import Path
from typing import Any

import psutil

from tests.support.models import make_tiny_embedding_model, make_tiny_model, serve_env
from tests.support.servers import McpClient

MODELS = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
TEXT = "word{i} number {i} the quick brown fox jumps over the lazy dog"


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and every descendant (its vLLM engine core and workers)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def _server_pids() -> list[int]:
    """This process's children that are ``vllm-mcp serve``."""
    return [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "serve" in " ".join(p.cmdline()) and "vllm_mcp" in " ".join(p.cmdline())
    ]


def _load(clients: list[tuple[McpClient, str | None]], calls: int, concurrency: int, max_tokens: int) -> Any:
    """``calls`` completions per (client, model) pair, ``concurrency`` of each in flight at once;
    all pairs at the same time. Returns output tokens/s per pair."""

    def one_pair(client: McpClient, model: str | None) -> float:
        started = time.perf_counter()
        tokens = 0
        pending: list[concurrent.futures.Future[Any]] = []
        sent = 0
        while sent < calls or pending:
            while sent < calls and len(pending) < concurrency:
                arguments: dict[str, Any] = {
                    "prompt": TEXT.format(i=sent),
                    "max_tokens": max_tokens,
                    "min_tokens": max_tokens,
                    "temperature": 0,
                }
                if model is not None:
                    arguments["model"] = model
                pending.append(client.call_async("complete", arguments, timeout=600))
                sent += 1
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                pending.remove(future)
                result = future.result()
                assert not result.is_error, result.content[0].text
                tokens += result.structured_content["usage"]["completion_tokens"]
        return tokens / (time.perf_counter() - started)

    with concurrent.futures.ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(lambda pair: one_pair(*pair), clients))


def two_models(directory: Path, calls: int, concurrency: int, max_tokens: int) -> dict[str, Any]:
    model = make_tiny_model(MODELS / "tiny-llama")
    path = directory / "two.toml"
    path.write_text(f'[[models]]\nname = "a"\nmodel = "{model}"\n[[models]]\nname = "b"\nmodel = "{model}"\n')
    out: dict[str, Any] = {}
    one = McpClient(serve_env(model, VLLM_MCP_MODELS=str(path)))
    try:
        one.wait_ready(timeout=900)
        _load([(one, "a"), (one, "b")], 8, 4, 8)  # warm-up
        rates = _load([(one, "a"), (one, "b")], calls, concurrency, max_tokens)
        out["one_server"] = {
            "tokens_per_s": [round(r, 1) for r in rates],
            "rss_mib": round(sum(_tree_rss(p) for p in _server_pids()) / 2**20),
        }
    finally:
        one.close()
    first, second = McpClient(serve_env(model)), McpClient(serve_env(model))
    try:
        first.wait_ready(timeout=900)
        second.wait_ready(timeout=900)
        _load([(first, None), (second, None)], 8, 4, 8)
        rates = _load([(first, None), (second, None)], calls, concurrency, max_tokens)
        out["two_servers"] = {
            "tokens_per_s": [round(r, 1) for r in rates],
            "rss_mib": round(sum(_tree_rss(p) for p in _server_pids()) / 2**20),
        }
    finally:
        first.close()
        second.close()
    return out


def _inputs(n: int) -> list[str]:
    return [TEXT.format(i=i) for i in range(n)]


def embed_over_mcp(directory: Path, inputs: int) -> dict[str, Any]:
    chat, vectors = (
        make_tiny_model(MODELS / "tiny-llama"),
        make_tiny_embedding_model(MODELS / "tiny-llama-embed"),
    )
    path = directory / "embed.toml"
    path.write_text(
        f'[[models]]\nname = "chat"\nmodel = "{chat}"\n'
        f'[[models]]\nname = "vectors"\nmodel = "{vectors}"\nkind = "embed"\nmax_model_len = 256\n'
    )
    client = McpClient(serve_env(chat, VLLM_MCP_MODELS=str(path)))
    try:
        client.wait_ready(timeout=900)
        texts = _inputs(inputs)
        client.call("embed", {"input": texts[:4]})  # warm-up
        started = time.perf_counter()
        for text in texts:
            assert not client.call("embed", {"input": text}).is_error
        single = inputs / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, inputs, 32):
            assert not client.call("embed", {"input": texts[i : i + 32]}).is_error
        batched = inputs / (time.perf_counter() - started)
    finally:
        client.close()
    return {"batch_1": round(single, 1), "batch_32": round(batched, 1)}


async def _embed_engine(inputs: int) -> dict[str, Any]:
    from vllm import PoolingParams, TokensPrompt
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    vectors = make_tiny_embedding_model(MODELS / "tiny-llama-embed")
    args = AsyncEngineArgs(
        model=str(vectors), dtype="float32", max_model_len=256, enforce_eager=True, runner="pooling"
    )
    llm = AsyncLLM.from_engine_args(args)
    try:
        tokenizer = llm.get_tokenizer()
        if asyncio.iscoroutine(tokenizer):
            tokenizer = await tokenizer
        ids = [tokenizer.encode(t) for t in _inputs(inputs)]
        counter = iter(range(10**9))

        async def one(tokens: list[int]) -> None:
            async for _ in llm.encode(
                TokensPrompt(prompt_token_ids=tokens), PoolingParams(task="embed"), f"b{next(counter)}"
            ):
                pass

        await asyncio.gather(*(one(t) for t in ids[:4]))  # warm-up
        started = time.perf_counter()
        for tokens in ids:
            await one(tokens)
        single = inputs / (time.perf_counter() - started)
        started = time.perf_counter()
        for i in range(0, inputs, 32):
            await asyncio.gather(*(one(t) for t in ids[i : i + 32]))
        batched = inputs / (time.perf_counter() - started)
    finally:
        llm.shutdown()
    return {"batch_1": round(single, 1), "batch_32": round(batched, 1)}


def run(directory: Path, calls: int, concurrency: int, max_tokens: int, inputs: int) -> dict[str, Any]:
    import os

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return {
        "two_generative_models": two_models(directory, calls, concurrency, max_tokens),
        "embed_inputs_per_s": {
            "vllm-mcp": embed_over_mcp(directory, inputs),
            "engine": asyncio.run(_embed_engine(inputs)),
        },
        "workload": {"calls": calls, "concurrency": concurrency, "max_tokens": max_tokens, "inputs": inputs},
    }


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    two = results["two_generative_models"]
    emb = results["embed_inputs_per_s"]
    w = results["workload"]
    lines = [
        f"# Several models behind one server ({meta['cpu']}, {meta['cpus']} CPUs, "
        f"autogroup {meta['autogroup']}, vLLM {meta['vllm']}, {meta['started']})",
        "",
        f"Two tiny generative models, {w['calls']} calls of {w['max_tokens']} tokens to each, "
        f"{w['concurrency']} in flight to each at once:",
        "",
        "| layout | tokens/s model 1 | tokens/s model 2 | resident memory (MiB, all processes) |",
        "|---|---|---|---|",
    ]
    for name, label in (("one_server", "one server, two models"), ("two_servers", "two servers")):
        r = two[name]
        lines.append(f"| {label} | {r['tokens_per_s'][0]} | {r['tokens_per_s'][1]} | {r['rss_mib']} |")
    lines += [
        "",
        f"`embed`, {w['inputs']} inputs of ~12 tokens, the tiny embedding model (192 dimensions):",
        "",
        "| | inputs/s, batch 1 | inputs/s, batch 32 |",
        "|---|---|---|",
        f"| vllm-mcp `embed` (stdio, SDK client) | {emb['vllm-mcp']['batch_1']} "
        f"| {emb['vllm-mcp']['batch_32']} |",
        f"| the engine's own `AsyncLLM.encode` | {emb['engine']['batch_1']} | {emb['engine']['batch_32']} |",
        "",
    ]
    return "\n".join(lines)
