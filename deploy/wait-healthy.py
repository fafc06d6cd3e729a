"""Wait until `vllm-mcp serve --transport http` says its model is ready (GET /healthz -> 200).

The ExecStartPost= of systemd/vllm-mcp-http.service: `systemctl start` returns once the
server can answer calls, and a model that fails to load fails the start instead of leaving
a unit that is "active" but answers every call with an error. Reads the address from the
unit's own environment (VLLM_MCP_HTTP_HOST, VLLM_MCP_HTTP_PORT); a wildcard address is
probed on loopback. Standard library only: it runs with the service's Python.

Exit 0 when ready; 1 when the server reports a failed load or the deadline passes
(``--timeout``, default none: the unit's TimeoutStartSec= ends it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time

LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def probe_address(environ: dict[str, str]) -> tuple[str, int]:
    host = environ.get("VLLM_MCP_HTTP_HOST", "127.0.0.1").strip()
    host = LOOPBACK.get(host, host).strip("[]")
    port = int(environ.get("VLLM_MCP_HTTP_PORT", "8000"))
    return host, port


def state_of(body: bytes) -> str:
    """The server's state from a /healthz body: JSON with a state field, or plain text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(data, dict):
        for key in ("state", "server_state", "status"):
            if isinstance(data.get(key), str):
                return data[key]
    return text[:200]


def check(host: str, port: int, timeout: float = 5.0) -> tuple[int | None, str]:
    """(HTTP status, state) of one GET /healthz; (None, reason) when nothing answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/healthz", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, state_of(resp.read(4096))
    except (OSError, http.client.HTTPException) as e:
        return None, type(e).__name__
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between two probes")
    args = parser.parse_args(argv)
    host, port = probe_address(dict(os.environ))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    last = ""
    while True:
        status, state = check(host, port)
        if status == 200:
            print(f"wait-healthy: {host}:{port} ready", file=sys.stderr)
            return 0
        said = f"HTTP {status}: {state}" if status is not None else f"not answering yet ({state})"
        if said != last:
            print(f"wait-healthy: {host}:{port} {said}", file=sys.stderr)
            last = said
        if status is not None and status != 503:
            print(f"wait-healthy: unexpected answer from /healthz: HTTP {status}", file=sys.stderr)
            return 1
        if status == 503 and "fail" in state.lower():
            print("wait-healthy: the model failed to load; see the server's log", file=sys.stderr)
            return 1
        if deadline is not None and time.monotonic() >= deadline:
            print(f"wait-healthy: not ready after {args.timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
