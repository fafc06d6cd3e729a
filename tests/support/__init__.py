"""What the tests share, and nothing a test collects: every helper a test module imports.

A test module imports from here, never from another test module (and never from ``bench/``:
the benchmark's own tests live in bench/tests/). The modules, by what they stand up:

- ``models``: the tiny real model, its LoRA adapters and a server's offline environment
  (the benchmark's ``--model tiny`` uses it too);
- ``servers``: a real ``vllm-mcp serve`` over stdio (the SDK client, or raw lines);
- ``httpserver``: a real ``vllm-mcp serve --transport http`` and SDK clients for it;
- ``served``: the HTTP transport in process around a bare SDK server (no engine);
- ``life``: one server shared by a module's tests through its life; ``proctree``: its processes;
- ``doubles``: the named test doubles (``Fake*``); ``pipes``: the stdio transport over real pipes;
- ``postgres``, ``haproxy``, ``oauthserver``, ``fakehub``, ``nodetools``: real third-party
  servers and tools on loopback ports (the hub: a stand-in, as it cannot be reached);
- ``units``: systemd units relocated into a temporary root, and private network namespaces;
- ``cli``, ``doctor``: the command line in process, and the doctor's recorded GPU output;
- ``environment``: the caller's variables that no test may see.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout
