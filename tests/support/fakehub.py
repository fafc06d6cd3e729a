"""A loopback stand-in for the Hugging Face hub's HTTP API, for tests that cannot reach it.

It answers the few endpoints ``huggingface_hub`` calls (model info, file resolve,
whoami) the way the hub does, including its ``X-Error-Code`` headers, so the real
client code raises its real exceptions (RepositoryNotFoundError, GatedRepoError...).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    good_token: str = "hf_goodtoken"
    requests: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # file name -> for each of its next downloads, the bytes of the body sent before the
    # connection is dropped (a network cut); once the list is used up, downloads succeed.
    cut: dict[str, list[int]] = field(default_factory=dict)
    ranges: list[tuple[str, int]] = field(default_factory=list)  # (file, first byte asked)

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                hub.requests.append(f"GET {self.path}")
                hub.answer(self, body=True)

            def do_HEAD(self) -> None:
                hub.requests.append(f"HEAD {self.path}")
                hub.answer(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for one (0.5 s by default) in every teardown.
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # --- routing ------------------------------------------------------------------

    def answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(h.path.split("?", 1)[0])
        auth = h.headers.get("Authorization", "")
        authorised = auth == f"Bearer {self.good_token}"
        if path == "/api/whoami-v2":
            if authorised:
                return self.send(h, 200, {"name": "tester", "type": "user"}, body=body)
            return self.send(h, 401, {"error": "Invalid credentials in Authorization header"}, body=body)
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if info:
            repo, error = self.lookup(info.group(1), info.group(2) or "main", authorised)
            if error:
                return self.send(h, *error, body=body)
            assert repo is not None
            siblings = [{"rfilename": n, "size": len(b)} for n, b in sorted(repo.files.items())]
            return self.send(
                h,
                200,
                {
                    "id": info.group(1),
                    "modelId": info.group(1),
                    "sha": repo.sha,
                    "siblings": siblings,
                    "gated": "manual" if repo.gated else False,
                    "private": False,
                },
                body=body,
            )
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/.*)?", path)
        if tree:
            repo, error = self.lookup(tree.group(1), tree.group(2), authorised)
            if error:
                return self.send(h, *error, body=body)
            assert repo is not None
            entries = [
                {"type": "file", "path": n, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                for n, b in sorted(repo.files.items())
            ]
            return self.send(h, 200, entries, body=body)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if resolve:
            repo, error = self.lookup(resolve.group(1), resolve.group(2), authorised)
            if error:
                return self.send(h, *error, body=body)
            assert repo is not None
            content = repo.files.get(resolve.group(3))
            if content is None:
                return self.send(
                    h, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}, body=body
                )
            name = resolve.group(3)
            etag = hashlib.sha256(content).hexdigest()
            headers = {
                "X-Repo-Commit": repo.sha,
                "ETag": f'"{etag}"',
                "Content-Type": "application/octet-stream",
                "Accept-Ranges": "bytes",
            }
            asked = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
            start = int(asked.group(1)) if asked and body else 0
            if asked and body:
                self.ranges.append((name, start))
            code = 200
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
                code, content = 206, content[start:]
            if body and self.cut.get(name):
                return self.send_cut(h, code, content, headers, self.cut[name].pop(0))
            return self.send_bytes(h, code, content, headers, body=body)
        return self.send(h, 404, {"error": "not found"}, body=body)

    def lookup(
        self, repo_id: str, revision: str, authorised: bool
    ) -> tuple[FakeRepo | None, tuple[int, dict[str, str], dict[str, str]] | None]:
        repo = self.repos.get(repo_id)
        if repo is None:
            # The hub answers 401 to anonymous callers for a missing (or private) repo.
            code = 404 if authorised else 401
            return None, (code, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if repo.gated and not authorised:
            return None, (401, {"error": "Access to this model is restricted"}, {"X-Error-Code": "GatedRepo"})
        if revision not in ("main", repo.sha):
            return None, (404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        return repo, None

    def send(
        self,
        h: BaseHTTPRequestHandler,
        code: int,
        payload: object,
        headers: dict[str, str] | None = None,
        *,
        body: bool,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_bytes(h, code, data, {"Content-Type": "application/json", **(headers or {})}, body=body)

    @staticmethod
    def send_head(h: BaseHTTPRequestHandler, code: int, headers: dict[str, str], length: int) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(length))
        h.end_headers()

    @staticmethod
    def send_cut(
        h: BaseHTTPRequestHandler, code: int, data: bytes, headers: dict[str, str], sent: int
    ) -> None:
        """Promise the whole body, send ``sent`` bytes of it, then drop the connection."""
        FakeHub.send_head(h, code, headers, len(data))
        h.wfile.write(data[:sent])
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(2)

    @staticmethod
    def send_bytes(
        h: BaseHTTPRequestHandler, code: int, data: bytes, headers: dict[str, str], *, body: bool
    ) -> None:
        FakeHub.send_head(h, code, headers, len(data))
        if body:
            h.wfile.write(data)
