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


def render(bind: str, servers: list[str], allow: str = "", cert: Path | None = None) -> str:
    """The shipped template with ``bind``, ``allow`` (besides localhost) and one ``server`` per
    address (HTTPS with ``cert``), rendered by deploy/lib.sh as install.sh renders it."""
    import os

    done = subprocess.run(
        ["bash", "-c", 'source "$0"; haproxy_config "$@"', str(LIB), str(TEMPLATE), bind, allow, *servers],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TLS_CERT": str(cert) if cert else ""},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True, check=False)


def self_signed(directory: Path, name: str = "127.0.0.1") -> tuple[Path, Path]:
    """(HAProxy's PEM: certificate then key, the certificate alone for a client to trust)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    public = cert.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem, crt = directory / "tls.pem", directory / "tls.crt"
    pem.write_bytes(public + private)
    pem.chmod(0o600)
    crt.write_bytes(public)
    return pem, crt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Balancer:
    """``haproxy -db`` (foreground, logs on stdout) in front of ``servers``; ``routes`` lists
    (backend, server, status) for every request it logged."""

    def __init__(self, tmp: Path, servers: list[str], cert: Path | None = None) -> None:
        self.port = free_port()
        self.config = tmp / "haproxy.cfg"
        self.config.write_text(render(f"127.0.0.1:{self.port}", servers, cert=cert))
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
        self.url = f"{'https' if cert else 'http'}://127.0.0.1:{self.port}/mcp"
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

    def routes(
        self, at_least: int = 0, timeout: float = 10, backend: str | None = None
    ) -> list[tuple[str, str, int]]:
        """(backend, server, status) per POST logged (to ``backend`` only, when given), once
        ``at_least`` are: a line follows its reply, so the last ones may still be on their way.
        Count the backend you wait for: the client's own POSTs (its handshake, to the other
        backend) would otherwise stand in for lines not read yet."""
        deadline = time.monotonic() + timeout
        while len(found := self._routes(backend)) < at_least and time.monotonic() < deadline:
            time.sleep(0.02)
        return found

    def _routes(self, backend: str | None) -> list[tuple[str, str, int]]:
        out = []
        for line in list(self.lines):
            m = _LOG.search(line) if '"POST /mcp' in line else None
            if m and (backend is None or m["backend"] == backend):
                out.append((m["backend"], m["server"], int(m["status"])))
        return out

    def server_state(self, server: str) -> list[str]:
        """HAProxy's own health messages about ``server`` ("... is DOWN", "... is UP")."""
        return [line for line in list(self.lines) if f"/{server} is " in line]

    def close(self) -> None:
        stop_process(self.proc)
