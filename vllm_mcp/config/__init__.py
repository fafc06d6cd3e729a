"""Configuration: the one typed ``Settings``, how it is loaded, and every rule about its values.

Owns ``Settings`` (settings.py), its layered loading and error wording (load.py), the value and
combination rules that are more than a field constraint (rules.py, with the one count of GPUs
per node; oauth.py for the OAuth resource server, multinode.py for vLLM's multi-node settings,
store_location.py for ``VLLM_MCP_SESSION_STORE``, parsers.py for the reasoning and tool-call
parser names), ``config validate``'s findings
(check.py) and the deployment files it reads (files.py: env files, FluidMCP config).

May import: ``vllm_mcp.errors`` and the standard library, pydantic. Nothing else in
``vllm_mcp``: every other family receives a ``Settings`` and depends on this one.
"""
