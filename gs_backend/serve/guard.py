"""The sidecar's gate (an ASGI middleware): the bearer token and the request size.

Every request passes here before routing, so no route, known or not, answers without
the token except the public ones (:data:`gs_contract.sidecar.PUBLIC_ROUTES`). The token is
compared in constant time (:func:`hmac.compare_digest`). A body is read completely, up to
``max_body`` bytes, before the application sees it: a larger one (by its Content-Length
or as it streams in) is answered 413 without reading further.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gs_contract.sidecar import PUBLIC_ROUTES, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Guard:
    """Wraps an ASGI app: 401 without the right ``Authorization: Bearer <token>``, 413
    for a body over ``max_body`` bytes."""

    def __init__(self, app: ASGIApp, *, token: str, max_body: int) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode("latin-1")
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] not in PUBLIC_ROUTES and not self._authorized(scope):
            await _answer(send, 401, "missing or wrong token: send 'Authorization: Bearer "
                                     "<token>' with the token from the sidecar's token file",
                          {b"www-authenticate": b"Bearer"})
            return
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, 413, f"request body over {self.max_body} bytes")
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _answer(send, 413, f"request body over {self.max_body} bytes")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)

    def _authorized(self, scope: Scope) -> bool:
        given = _header(scope, b"authorization")
        return given is not None and hmac.compare_digest(given.encode("latin-1"),
                                                         self._expected)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then waits on the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, message: str,
                  headers: dict[bytes, bytes] | None = None) -> None:
    payload = json.dumps(error_body(message, None)).encode()
    raw_headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(payload)).encode())]
    raw_headers += list((headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
