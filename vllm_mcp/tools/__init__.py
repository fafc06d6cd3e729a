"""The tools, free of any protocol: what ``chat_completion``, ``complete``, ``model_info`` and
``end_session`` do.

Owns the handlers (handlers.py: ``Tools``), what generating tools share (generation.py: the
arguments, the result, the stream loop), prompts and the context window (prompts.py), chat
messages (messages.py), admission and progress pacing (admission.py), the bounds a call is held to
before admission and session namespaces (limits.py), argument parsing (arguments.py), and what
today's models add to a chat turn (chat_turn.py: the thinking apart in reasoning.py, tool calls
in tool_calls.py, image parts recognised in media.py).

May import: ``vllm_mcp.engine`` (its types and ``Engine``), ``vllm_mcp.sessions``,
``vllm_mcp.config``, ``vllm_mcp.metrics``, ``vllm_mcp.errors``; never MCP (the protocol package
maps these tools onto it) nor vLLM directly.
"""
