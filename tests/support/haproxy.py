"""A real HAProxy (Debian's) for the tests, configured from deploy/haproxy/vllm-mcp.cfg as
deploy/install.sh renders it (deploy/lib.sh's ``haproxy_config``), on a free loopback port."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from tests.support import ROOT
from tests.support.servers import stop_process

TEMPLATE = ROOT / "deploy" / "haproxy" / "vllm-mcp.cfg"
LIB = ROOT / "deploy" / "lib.sh"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# httplog: ... frontend backend/server Tq/Tw/Tc/Tr/Ta status bytes ... "METHOD URI HTTP/1.1"
_LOG = re.compile(r" (?P<frontend>\S+) (?P<backend>[\w.-]+)/(?P<server>\S+) [-\d/+]+ (?P<status>-?\d+) ")


def render(bind: str, servers: list[str], allow: str = "") -> str:
    """The shipped template with ``bind``, ``allow`` (besides localhost) and one ``server`` per
    address, rendered by deploy/lib.sh as install.sh renders it."""
    done = subprocess.run(
        ["bash", "-c", 'source "$0"; haproxy_config "$@"', str(LIB), str(TEMPLATE), bind, allow, *servers],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """``haproxy -db`` (foreground, logs on stdout) in front of ``servers``; ``routes`` lists
    (backend, server, status) for every request it logged."""

    def __init__(self, tmp: Path, servers: list[str]) -> None:
        self.port = free_port()
        self.config = tmp / "haproxy.cfg"
        self.config.write_text(render(f"127.0.0.1:{self.port}", servers))
        self.proc = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(self.config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started = time.monotonic()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited: " + "\n".join(self.lines))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("haproxy did not listen")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def routes(self, at_least: int = 0, timeout: float = 10) -> list[tuple[str, str, int]]:
        """(backend, server, status) per POST logged, once ``at_least`` are (a line follows its reply)."""
        deadline = time.monotonic() + timeout
        while len(found := self._routes()) < at_least and time.monotonic() < deadline:
            time.sleep(0.02)
        return found

    def _routes(self) -> list[tuple[str, str, int]]:
        out = []
        for line in list(self.lines):
            if '"POST /mcp' in line and (m := _LOG.search(line)):
                out.append((m["backend"], m["server"], int(m["status"])))
        return out

    def server_state(self, server: str) -> list[str]:
        """HAProxy's own health messages about ``server`` ("... is DOWN", "... is UP")."""
        return [line for line in list(self.lines) if f"/{server} is " in line]

    def close(self) -> None:
        stop_process(self.proc)
