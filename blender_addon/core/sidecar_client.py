"""A small HTTP client of the sidecar (``gs-backend serve``, DESIGN contract 10); no bpy.

Only the standard library (``http.client``): Blender ships nothing else for HTTP. The
message shapes, routes and header names come from :mod:`gs_contract.sidecar`, the module
the server uses too.

Every failure becomes one :class:`SidecarError` whose message is a plain sentence for the
panel, and whose ``kind`` tells the caller what happened:

- ``unreachable``: nothing listens there (connection refused), or the host is unknown;
- ``timeout``: no answer in time;
- ``auth``: the token was refused (401), or the token file cannot be read;
- ``version``: the sidecar speaks another API version (:func:`gs_contract.sidecar.incompatibility`);
- ``request``: a 4xx answer ``{"error", "field"}`` (bad scenario, missing asset, ...);
- ``server``: a 5xx answer, or an answer that breaks the contract's shapes.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from gs_contract.sidecar import (
    PNG_MEDIA_TYPE,
    RENDER_TIME_HEADER,
    ROUTE_HEALTH,
    ROUTE_PREVIEW,
    ROUTE_RENDERS,
    Health,
    JobStatus,
    SidecarMessageError,
    bearer_header,
    incompatibility,
    parse_error_body,
    parse_health,
    parse_job_created,
    parse_job_status,
    read_token_file,
    route_render,
    route_render_events,
)

ErrorKind = Literal["unreachable", "timeout", "auth", "version", "request", "server"]

HEALTH_TIMEOUT_S = 5.0
"""Health and job-status requests: answered at once by a working sidecar."""
PREVIEW_TIMEOUT_S = 300.0
"""A preview: the first one of a scene loads its assets, which may take minutes."""
EVENTS_TIMEOUT_S = 60.0
"""Silence on an event stream before the reader gives up on it (it then asks the job's
status instead)."""
TOKEN_PROBE_ID = "token-check"
"""A job id no sidecar holds: asking for its status tells whether the token is accepted
(404) or not (401), without side effects."""


class SidecarError(Exception):
    """A sidecar request failed. ``str(error)`` is one plain sentence for the user.

    Attributes:
        kind: see the module docstring.
        status: the HTTP status of an answer (None: no answer).
        field: the request's JSON field at fault (4xx answers naming one).
    """

    def __init__(self, message: str, kind: ErrorKind, *, status: int | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.field = field


@dataclass(frozen=True)
class PreviewImage:
    """A preview: the PNG file's bytes and the sidecar's render time in seconds (None
    when the header is missing)."""

    png: bytes
    seconds: float | None


class SidecarClient:
    """Requests to one sidecar at ``url`` (``http://HOST:PORT``) with ``token``.

    ``token_file`` only names the file in messages; ``timeout`` (seconds) bounds the
    short requests (health, status, submit, cancel). Each request opens its own
    connection, so one client may serve several threads.
    """

    def __init__(self, url: str, token: str, *, token_file: str | None = None,
                 timeout: float = HEALTH_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SidecarError(f"the sidecar URL {url!r} is not an http:// address "
                               "(e.g. http://127.0.0.1:8765)", "unreachable")
        self.url = url.rstrip("/")
        self.token = token
        self.token_file = token_file
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port
        except ValueError:
            raise SidecarError(f"the sidecar URL {url!r} has a bad port", "unreachable") \
                from None

    @classmethod
    def from_token_file(cls, url: str, token_file: str | Path, *,
                        timeout: float = HEALTH_TIMEOUT_S) -> SidecarClient:
        """A client whose token is read from ``token_file``.

        Raises:
            SidecarError: (``auth``) the file cannot be read or holds no token.
        """
        try:
            token = read_token_file(token_file)
        except OSError as exc:
            raise SidecarError(f"cannot read the sidecar's token file {token_file}: "
                               f"{exc.strerror or exc}", "auth") from None
        except SidecarMessageError:
            raise SidecarError(f"the token file {token_file} holds no token", "auth") \
                from None
        return cls(url, token, token_file=str(token_file), timeout=timeout)

    # --- routes -------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /v1/health`` (no token)."""
        return self._parse(parse_health, self._json("GET", ROUTE_HEALTH, auth=False))

    def check(self) -> Health:
        """Health, API version and token, in one call before first use.

        Raises:
            SidecarError: ``version`` for another API version, ``auth`` for a refused
                token, or a transport failure.
        """
        health = self.health()
        problem = incompatibility(health)
        if problem is not None:
            raise SidecarError(f"The sidecar at {self.url} cannot be used: {problem}",
                               "version")
        try:
            self._json("GET", route_render(TOKEN_PROBE_ID))
        except SidecarError as exc:
            if exc.kind != "request":  # 404 for the unknown job: the token is fine
                raise
        return health

    def preview(self, body: dict[str, Any], timeout: float = PREVIEW_TIMEOUT_S
                ) -> PreviewImage:
        """``POST /v1/preview`` with a :func:`gs_contract.sidecar.preview_request` body."""
        headers, data = self._request("POST", ROUTE_PREVIEW, body, timeout=timeout)
        content_type = headers.get("content-type", "")
        if not content_type.startswith(PNG_MEDIA_TYPE) or not data.startswith(b"\x89PNG"):
            raise SidecarError(f"the sidecar at {self.url} answered the preview with "
                               f"{content_type or 'no content type'}, not a PNG image",
                               "server")
        try:
            seconds: float | None = float(headers.get(RENDER_TIME_HEADER.lower(), ""))
        except ValueError:
            seconds = None
        return PreviewImage(data, seconds)

    def submit_render(self, body: dict[str, Any]) -> str:
        """``POST /v1/renders`` with a :func:`gs_contract.sidecar.render_job_request`
        body; returns the job id."""
        return self._parse(parse_job_created, self._json("POST", ROUTE_RENDERS, body))

    def render_status(self, job_id: str) -> JobStatus:
        """``GET /v1/renders/{id}``."""
        return self._parse(parse_job_status, self._json("GET", route_render(job_id)))

    def cancel_render(self, job_id: str) -> None:
        """``DELETE /v1/renders/{id}``: the job stops after its frames in flight."""
        self._request("DELETE", route_render(job_id))

    def render_events(self, job_id: str, timeout: float = EVENTS_TIMEOUT_S
                      ) -> Iterator[str]:
        """The lines of ``GET /v1/renders/{id}/events`` as they arrive (each a
        ``--progress jsonl`` event; decode with :func:`gs_contract.protocol.decode_event`).
        Ends when the job's stream ends.

        Raises:
            SidecarError: connecting failed, or the stream broke or stayed silent for
                ``timeout`` seconds.
        """
        connection, response = self._open("GET", route_render_events(job_id), None,
                                          auth=True, timeout=timeout)
        try:
            if response.status >= 400:
                self._raise_for(response.status, response.read())
            while True:
                try:
                    raw = response.readline()
                except (OSError, http.client.HTTPException) as exc:
                    raise self._transport_error(exc, timeout) from None
                if not raw:
                    return
                line = raw.decode("utf-8", errors="replace").strip()
                if line:
                    yield line
        finally:
            connection.close()

    # --- transport ----------------------------------------------------------------

    def _json(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              auth: bool = True) -> Any:
        _, data = self._request(method, path, body, auth=auth, timeout=self.timeout)
        try:
            return json.loads(data)
        except ValueError:
            raise SidecarError(f"the sidecar at {self.url} answered {path} with something "
                               "that is not JSON", "server") from None

    def _parse(self, parse: Any, data: Any) -> Any:
        try:
            return parse(data)
        except SidecarMessageError as exc:
            raise SidecarError(f"unexpected answer from the sidecar at {self.url}: {exc}",
                               "server") from None

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 auth: bool = True, timeout: float | None = None
                 ) -> tuple[dict[str, str], bytes]:
        """One request; returns (lower-case headers, body) of a 2xx answer."""
        timeout = self.timeout if timeout is None else timeout
        connection, response = self._open(method, path, body, auth=auth, timeout=timeout)
        try:
            try:
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self._transport_error(exc, timeout) from None
            if response.status >= 400:
                self._raise_for(response.status, data)
            headers = {key.lower(): value for key, value in response.getheaders()}
            return headers, data
        finally:
            connection.close()

    def _open(self, method: str, path: str, body: dict[str, Any] | None, *, auth: bool,
              timeout: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._host, self._port, timeout=timeout)
        headers = {"Accept": "*/*"}
        if auth:
            headers.update(bearer_header(self.token))
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=headers)
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise self._transport_error(exc, timeout) from None

    def _transport_error(self, exc: BaseException, timeout: float) -> SidecarError:
        if isinstance(exc, (TimeoutError, socket.timeout)):
            return SidecarError(f"the sidecar at {self.url} did not answer within "
                                f"{timeout:g} s", "timeout")
        if isinstance(exc, ConnectionRefusedError):
            return SidecarError(f"no sidecar is running at {self.url} (connection refused)",
                                "unreachable")
        if isinstance(exc, socket.gaierror):
            return SidecarError(f"cannot find the sidecar's host {self._host!r}",
                                "unreachable")
        if isinstance(exc, (ConnectionError, http.client.HTTPException)):
            return SidecarError(f"the connection to the sidecar at {self.url} broke "
                                f"({type(exc).__name__}): is it still running?",
                                "unreachable")
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        return SidecarError(f"cannot reach the sidecar at {self.url}: {reason}",
                            "unreachable")

    def _raise_for(self, status: int, data: bytes) -> None:
        if status == 401:
            where = f" in {self.token_file}" if self.token_file else ""
            raise SidecarError(f"the sidecar at {self.url} refused the token{where} (401): "
                               "check the token file, or restart the sidecar", "auth",
                               status=status)
        try:
            body = parse_error_body(json.loads(data))
        except (ValueError, SidecarMessageError):
            text = data[:200].decode("utf-8", errors="replace").strip()
            body = None
        if status >= 500 or body is None:
            kind: ErrorKind = "server" if status >= 500 else "request"
            detail = body.error if body is not None else (text or "no details")
            raise SidecarError(f"the sidecar at {self.url} failed (HTTP {status}): {detail}",
                               kind, status=status)
        where = f"{body.field}: " if body.field else ""
        raise SidecarError(f"{where}{body.error}", "request", status=status,
                           field=body.field)
