"""The process: one server from start to exit, its HTTP front-end processes, and a worker node.

Owns the server life cycle (app.py's ``Server``: start up, load the engine in the
background, serve a transport, shut down one way whatever the trigger), the
``VLLM_MCP_HTTP_WORKERS`` front-end processes (frontends.py, which run app.py's ``Server``
each; app.py does not import them), and the multi-node worker node that runs only vLLM
workers (worker_node.py). (That vLLM's spawned processes die with the server is the engine's:
``engine/lifeline.py``.)

May import every family below it: ``protocol``, ``tools``, ``sessions``, ``engine``,
``config``, and the shared modules. Only the CLI imports this package.
"""
