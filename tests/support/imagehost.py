"""A real HTTP server on 127.0.0.1 that serves images (and redirects), for the image-URL tests.

The server fetches an image URL only from an allowed domain (VLLM_MCP_ALLOWED_MEDIA_DOMAINS);
the tests allow ``127.0.0.1`` and serve from here, with the standard library's HTTP server.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = tuple[int, dict[str, str], bytes]


def png(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    """A PNG file of one colour, made with Pillow."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@contextlib.contextmanager
def image_host(routes: dict[str, Route], stall: threading.Event | None = None) -> Iterator[str]:
    """Serve ``routes`` (path -> status, headers, body) at the yielded ``http://127.0.0.1:<port>``;
    any other path is a 404. A route of status 0 answers nothing until ``stall`` is set."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = routes.get(self.path, (404, {}, b"not found"))
            if status == 0:
                if stall is not None:
                    stall.wait(60)
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        if stall is not None:
            stall.set()
        server.shutdown()
        server.server_close()
