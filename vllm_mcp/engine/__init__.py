"""The engine: the only package that imports vLLM.

Owns ``Engine`` and the ways to start vLLM (core.py: ``AsyncLLM`` in-process, engine arguments,
the multi-node worker), what the engine takes and gives without vLLM (types.py, structured.py
for structured-output constraints, lora.py for adapters, parsers.py for vLLM's reasoning and
tool-call parsers behind a vLLM-free interface), its threads and processes (process.py;
lifeline.py makes the processes vLLM spawns die with the server), load phases
(load_phase.py), where a model comes from and how it is fetched (source.py, embedded.py for the
default model on PyPI, prefetch.py). vLLM itself is imported lazily, inside functions, so
importing this package is cheap.

May import: ``vllm_mcp.config``, ``vllm_mcp.errors``, ``vllm_mcp.logging``,
``vllm_mcp.metrics``; never the tools, the protocol, sessions or the server (checked by
``lint-imports``, pyproject.toml).
"""
