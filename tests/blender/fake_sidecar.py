"""A scripted stand-in for ``gs-backend serve``: an HTTP server on 127.0.0.1 (port 0) in
a thread, for the client's error mappings and the render job's event handling.

Each route answers what the test put in ``FakeSidecar.answers[(method, path)]``: a
``Reply`` (status, content type, body, extra headers), or a function of the request body
returning one. A body given as a list of byte strings is streamed chunk by chunk, a
``threading.Event`` in that list pauses the stream until the test sets it (at shutdown
the stream is cut instead); a body of None never answers. Every route but
``/v1/health`` needs the bearer token ``TOKEN`` unless ``check_token`` is off. Requests
are recorded in ``requests``.
"""

from __future__ import annotations

import json
import struct
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from gs_contract.sidecar import ROUTE_HEALTH, error_body, health_body

TOKEN = "secret-token"


@dataclass
class Reply:
    status: int = 200
    content_type: str = "application/json"
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(status, "application/json", json.dumps(data).encode())


def healthy(api: int | None = None) -> Reply:
    body = health_body(version="9.9.9", device="cpu", rasterizer="torch", torch="2.0",
                       gsplat=None)
    if api is not None:
        body["api"] = api
    return Reply.json(body)


class FakeSidecar:
    """``with FakeSidecar() as fake: ... fake.url ...``"""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Any] = {("GET", ROUTE_HEALTH): healthy()}
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.check_token = True
        self.release = threading.Event()  # set at exit: frees handlers that wait
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                if fake.check_token and self.path != ROUTE_HEALTH \
                        and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    reply = Reply.json(error_body("missing or wrong token"), 401)
                else:
                    reply = fake.answers.get((self.command, self.path),
                                             Reply.json(error_body("no such route"), 404))
                    if callable(reply):
                        reply = reply(body)
                if reply.body is None:  # never answer: hang until released, then hang up
                    fake.release.wait(30)
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if isinstance(reply.body, list):
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in reply.body:
                        if isinstance(part, threading.Event):
                            while not (part.is_set() or fake.release.is_set()):
                                part.wait(0.05)
                            if fake.release.is_set():  # shutting down: cut the stream
                                self.close_connection = True
                                return
                            continue
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSidecar:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def png_bytes(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` ``[H, W, 3]`` uint8, written here with zlib (an
    encoder independent of Blender's reader)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
