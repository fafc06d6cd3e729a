"""``vllm-mcp-replicas``: two ``vllm-mcp serve --transport http`` replicas (stateless) behind
the real HAProxy, configured from deploy/haproxy/vllm-mcp.cfg as deploy/install.sh renders it,
driven exactly like ``vllm-mcp-http`` (one replica, no balancer). The calls carry no
session, so HAProxy balances them by ``leastconn``.

On a machine without GPUs both replicas share the CPU cores one replica would have: set
against ``vllm-mcp-http`` this shows what the balancer and a second engine cost, not a
speed-up. Memory and profiles cover the first replica's process tree only.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from bench.contenders import free_port
from bench.mcp_http import McpHttpContender

ROOT = Path(__file__).resolve().parent.parent
REPLICAS = 2


class ReplicasContender(McpHttpContender):
    name = "vllm-mcp-replicas"
    variants = ("stream",)

    async def start(self) -> None:

        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        token = secrets.token_urlsafe(32)
        token_file = self.log_dir / f"{self.name}.token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        ports = [free_port() for _ in range(REPLICAS)]
        self._log = open(self.log_dir / f"{self.name}.stderr.log", "w")  # noqa: SIM115
        self.procs = []
        for port in ports:
            env = {
                **self.env,
                "VLLM_MCP_HTTP_HOST": "127.0.0.1",
                "VLLM_MCP_HTTP_PORT": str(port),
                "VLLM_MCP_HTTP_TOKEN_FILE": str(token_file),
                "VLLM_MCP_HTTP_STATELESS": "true",
            }
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "vllm_mcp",
                    "serve",
                    "--transport",
                    "http",
                    env=env,
                    stdout=self._log,
                    stderr=self._log,
                )
            )
        self.proc, self.pid = self.procs[0], self.procs[0].pid
        front = free_port()
        rendered = subprocess.run(
            ["bash", "-c", 'source "$0"; haproxy_config "$@"', str(ROOT / "deploy/lib.sh"),
             str(ROOT / "deploy/haproxy/vllm-mcp.cfg"), f"127.0.0.1:{front}", "",
             *(f"127.0.0.1:{p}" for p in ports)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        config = self.log_dir / f"{self.name}.haproxy.cfg"
        config.write_text(rendered.stdout)
        self._haproxy_log = open(self.log_dir / f"{self.name}.haproxy.log", "w")  # noqa: SIM115
        self.haproxy = await asyncio.create_subprocess_exec(
            haproxy, "-db", "-f", str(config), stdout=self._haproxy_log, stderr=self._haproxy_log
        )
        self._open_client(f"http://127.0.0.1:{front}", token)
        for port in ports:
            await self._wait_healthy(f"http://127.0.0.1:{port}/healthz", self.procs)
        await asyncio.sleep(3)  # HAProxy's checks (every 1 s, two to rise) see both ready
        await self._initialize()

    async def stop(self) -> None:
        await self.http.close()
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()  # SIGTERM: drains, stops the engine, exits
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 90)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self.haproxy.returncode is None:
            self.haproxy.terminate()
            await self.haproxy.wait()
        self._log.close()
        self._haproxy_log.close()
