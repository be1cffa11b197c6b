"""The sidecar's messages (``gs-backend serve``, DESIGN contract 10), written once.

The backend serves these shapes and the Blender add-on builds and reads them with the
same functions, so both sides validate a message by one rule. Everything here is plain
data: dicts as they travel as JSON, small frozen dataclasses for what a reader gets back.
Builders (``*_request``, :func:`error_body`, :func:`health_body`, ...) return the JSON
dict; readers (``parse_*``) take a decoded JSON value and raise :class:`SidecarMessageError`
naming the JSON field at fault. ``docs/sidecar.md`` describes the HTTP API around them.

Routes (HTTP, JSON; :data:`API_VERSION` is the number in the path):

- ``GET /v1/health`` -> :func:`health_body` (no token needed);
- ``POST /v1/preview`` :func:`preview_request` -> ``image/png``, the render time in
  seconds in the :data:`RENDER_TIME_HEADER` response header;
- ``POST /v1/renders`` :func:`render_job_request` -> 202 ``{"id"}``;
  ``GET /v1/renders/{id}`` -> :func:`job_status_body`; ``GET /v1/renders/{id}/events``
  -> newline-delimited JSON (:data:`EVENTS_MEDIA_TYPE`), one :mod:`gs_contract.protocol`
  event per line, exactly the lines of ``gs-backend render --progress jsonl``;
  ``DELETE /v1/renders/{id}`` cancels (the folder stays resumable);
- ``GET /openapi.json``: the OpenAPI schema (no token needed).

Every other route needs ``Authorization: Bearer <token>`` (:func:`bearer_header`), the
token being the text of the token file (:func:`read_token_file`). Errors are 4xx with
:func:`error_body`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

API_VERSION = 1
"""Major version of the HTTP API; a client refuses a sidecar whose ``api`` differs."""

API_PREFIX = f"/v{API_VERSION}"
ROUTE_HEALTH = f"{API_PREFIX}/health"
ROUTE_PREVIEW = f"{API_PREFIX}/preview"
ROUTE_RENDERS = f"{API_PREFIX}/renders"
ROUTE_OPENAPI = "/openapi.json"
PUBLIC_ROUTES = (ROUTE_HEALTH, ROUTE_OPENAPI)
"""The only routes answered without a token."""


def route_render(job_id: str) -> str:
    """``/v1/renders/{id}``: a job's status (GET) or its cancellation (DELETE)."""
    return f"{ROUTE_RENDERS}/{job_id}"


def route_render_events(job_id: str) -> str:
    """``/v1/renders/{id}/events``: the job's progress events, streamed."""
    return f"{ROUTE_RENDERS}/{job_id}/events"


AUTH_HEADER = "Authorization"
RENDER_TIME_HEADER = "X-Render-Seconds"
"""Preview response header: seconds spent rendering the frame (decimal text)."""
PNG_MEDIA_TYPE = "image/png"
EVENTS_MEDIA_TYPE = "application/x-ndjson"
MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""Largest request body the sidecar reads (64 MiB of scenario JSON); larger: 413."""
TOKEN_BYTES = 32
"""Random bytes in a token (256 bits; the contract asks for at least 128)."""
TOKEN_FILE_MODE = 0o600

LISTENING_EVENT = "listening"

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
JOB_STATES: tuple[str, ...] = get_args(JobState)
TERMINAL_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})


class SidecarMessageError(ValueError):
    """A message that breaks its shape. ``field`` is the JSON path at fault (``None``:
    the whole message); ``problem`` says what is wrong."""

    def __init__(self, field: str | None, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


# ---------------------------------------------------------------------------
# small checks


def _mapping(value: Any, where: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SidecarMessageError(where, f"expected a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unknown_keys(data: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise SidecarMessageError(key, f"unknown field (expected one of "
                                           f"{', '.join(allowed)})")


def _string(data: dict[str, Any], key: str, *, nonempty: bool = True) -> str:
    value = data.get(key)
    if not isinstance(value, str) or (nonempty and not value):
        need = "a non-empty string" if nonempty else "a string"
        raise SidecarMessageError(key, f"expected {need}, got {_kind(value)}")
    return value


def _optional_string(data: dict[str, Any], key: str, *, nonempty: bool = True) -> str | None:
    return None if data.get(key) is None else _string(data, key, nonempty=nonempty)


def _bool(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise SidecarMessageError(key, f"expected true or false, got {_kind(value)}")
    return value


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise SidecarMessageError(key, f"expected an integer >= 0, got {_kind(value)}")
    return value


# ---------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class ErrorBody:
    """A 4xx answer: what is wrong and the request's JSON field at fault (or None)."""

    error: str
    field: str | None = None


def error_body(error: str, field: str | None = None) -> dict[str, Any]:
    """``{"error": error, "field": field}``, the body of every 4xx answer."""
    return {"error": error, "field": field}


def parse_error_body(data: Any) -> ErrorBody:
    """Read an error answer.

    Raises:
        SidecarMessageError: not an ``{"error", "field"}`` object.
    """
    data = _mapping(data, None)
    error = _string(data, "error", nonempty=False)
    field = _optional_string(data, "field", nonempty=False)
    return ErrorBody(error, field)


# ---------------------------------------------------------------------------
# the listening line and the token


@dataclass(frozen=True)
class Listening:
    """The sidecar is ready: its base ``url`` (``http://HOST:PORT``, the real port), the
    token file it wrote and its process id."""

    url: str
    token_file: str
    pid: int


def listening_line(url: str, token_file: str | Path, pid: int) -> str:
    """The one JSON line ``serve`` prints on stdout when it accepts requests (no newline)."""
    return json.dumps({"event": LISTENING_EVENT, "url": url, "token_file": str(token_file),
                       "pid": pid})


def parse_listening_line(line: str) -> Listening | None:
    """The :class:`Listening` of a line of ``serve``'s stdout; None for any other line
    (blank, plain text, another JSON object).

    Raises:
        SidecarMessageError: a ``listening`` event with a missing or malformed field.
    """
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("event") != LISTENING_EVENT:
        return None
    url = _string(data, "url")
    if not url.startswith(("http://", "https://")):
        raise SidecarMessageError("url", f"expected an http:// URL, got {url!r}")
    return Listening(url, _string(data, "token_file"), _count(data, "pid"))


def bearer_header(token: str) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` for a request."""
    return {AUTH_HEADER: f"Bearer {token}"}


def read_token_file(path: str | Path) -> str:
    """The token in a token file (surrounding white space ignored).

    Raises:
        OSError: the file cannot be read.
        SidecarMessageError: the file holds no token.
    """
    token = Path(path).read_text(encoding="ascii", errors="replace").strip()
    if not token or any(c.isspace() for c in token):
        raise SidecarMessageError(None, f"{path}: no token in the file")
    return token


def write_token_file(path: str | Path, token: str) -> None:
    """Write ``token`` to ``path`` atomically with mode 0600 (created with that mode, never
    readable by others, even for a moment; a previous file is replaced)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0),
                 TOKEN_FILE_MODE)
    try:
        if hasattr(os, "fchmod"):  # whatever the umask
            os.fchmod(fd, TOKEN_FILE_MODE)
        os.write(fd, (token + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# health

HEALTH_FIELDS = ("status", "version", "api", "device", "rasterizer", "torch", "gsplat")


@dataclass(frozen=True)
class Health:
    """``GET /v1/health``: ``status`` "ok"; ``version`` the backend's package version;
    ``api`` :data:`API_VERSION` of the server; ``device`` the torch device previews render
    on (``cpu``, ``cuda:0``); ``rasterizer`` what renders there (``gsplat``, ``numba``
    or ``torch``); ``torch`` and
    ``gsplat`` their versions (``gsplat`` None when it is not installed)."""

    status: str
    version: str
    api: int
    device: str
    rasterizer: str
    torch: str
    gsplat: str | None


def health_body(*, version: str, device: str, rasterizer: str, torch: str,
                gsplat: str | None) -> dict[str, Any]:
    """The health answer (``status`` "ok", ``api`` this module's :data:`API_VERSION`)."""
    return {"status": "ok", "version": version, "api": API_VERSION, "device": device,
            "rasterizer": rasterizer, "torch": torch, "gsplat": gsplat}


def parse_health(data: Any) -> Health:
    """Read a health answer (unknown extra fields are ignored).

    Raises:
        SidecarMessageError: a field missing or of the wrong type.
    """
    data = _mapping(data, None)
    return Health(
        status=_string(data, "status"), version=_string(data, "version"),
        api=_count(data, "api"), device=_string(data, "device"),
        rasterizer=_string(data, "rasterizer"), torch=_string(data, "torch"),
        gsplat=_optional_string(data, "gsplat"))


def incompatibility(health: Health) -> str | None:
    """A plain sentence when this client cannot use the sidecar, else None."""
    if health.status != "ok":
        return f"the sidecar reports status {health.status!r}"
    if health.api != API_VERSION:
        return (f"the sidecar speaks API v{health.api}, this client v{API_VERSION}: "
                f"update the backend (gs-backend {health.version}) or the add-on")
    return None


# ---------------------------------------------------------------------------
# preview

PREVIEW_FIELDS = ("scenario", "base_dir", "frame", "overlay", "scale")
MAX_PREVIEW_SCALE = 1.0


@dataclass(frozen=True)
class PreviewRequest:
    """``POST /v1/preview``.

    Attributes:
        scenario: a gs-scenario object (validated by the server's scenario parser).
        base_dir: the folder relative asset paths resolve against (None: the paths
            must be absolute).
        frame: the frame's position in ``scenario["frames"]`` (0-based) or its name.
        overlay: draw visible-mask outlines, boxes and class names on the image.
        scale: in (0, 1]: render the same camera at :func:`scaled_size` for speed.
    """

    scenario: dict[str, Any]
    base_dir: str | None = None
    frame: int | str = 0
    overlay: bool = False
    scale: float = 1.0


def preview_request(scenario: dict[str, Any], frame: int | str = 0, *,
                    base_dir: str | Path | None = None, overlay: bool = False,
                    scale: float = 1.0) -> dict[str, Any]:
    """The JSON body of a preview request (checked by :func:`parse_preview_request`).

    Raises:
        SidecarMessageError: a field breaks its rule.
    """
    body = {"scenario": scenario, "base_dir": None if base_dir is None else str(base_dir),
            "frame": frame, "overlay": overlay, "scale": scale}
    parse_preview_request(body)
    return body


def parse_preview_request(data: Any) -> PreviewRequest:
    """Check the shape of a preview request (not the scenario's content, which the
    server's scenario parser checks, naming ``scenario.<path>``).

    Raises:
        SidecarMessageError: naming the field at fault.
    """
    data = _mapping(data, None)
    _unknown_keys(data, PREVIEW_FIELDS)
    if "scenario" not in data:
        raise SidecarMessageError("scenario", "missing: the gs-scenario object to preview")
    scenario = _mapping(data["scenario"], "scenario")
    base_dir = _optional_string(data, "base_dir")
    frame = data.get("frame", 0)
    if isinstance(frame, bool) or not isinstance(frame, (int, str)) \
            or (isinstance(frame, int) and frame < 0) or frame == "":
        raise SidecarMessageError("frame", f"expected a frame index >= 0 or a frame name, got "
                                           f"{_kind(frame)}")
    overlay = _bool(data, "overlay", False)
    scale = data.get("scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
            or not math.isfinite(scale) or not 0 < scale <= MAX_PREVIEW_SCALE:
        raise SidecarMessageError("scale", f"expected a number in (0, 1], got {scale!r:.40}")
    return PreviewRequest(scenario, base_dir, frame, overlay, float(scale))


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The preview's image size at ``scale``: each side ``floor(side * scale + 0.5)``
    (round half up), at least 1 pixel. Scale 1 keeps the size."""
    return (max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5)))


def scaled_intrinsics(K: np.ndarray, width: int, height: int, new_width: int,
                      new_height: int) -> np.ndarray:
    """``K`` ``[3, 3]`` of the same camera for an image of ``new_width x new_height``:
    x row (fx, skew, cx) times ``new_width / width``, y row (fy, cy) times
    ``new_height / height``, so every image border stays on the same ray (pixel corners
    at integers, DESIGN contract 2)."""
    sx, sy = new_width / width, new_height / height
    out = np.array(K, dtype=np.float64, copy=True)
    out[0, :] *= sx
    out[1, :] *= sy
    return out


# ---------------------------------------------------------------------------
# render jobs

RENDER_JOB_FIELDS = ("scenario_path", "out", "overwrite", "frames", "shard")
JOB_STATUS_FIELDS = ("id", "state", "done", "total", "error", "summary")


@dataclass(frozen=True)
class RenderJobRequest:
    """``POST /v1/renders``: the arguments of ``gs-backend render`` (paths as seen by the
    sidecar's machine; ``frames`` ``"A:B"`` and ``shard`` ``"I/N"`` as on the command line,
    checked by the server)."""

    scenario_path: str
    out: str
    overwrite: bool = False
    frames: str | None = None
    shard: str | None = None


def render_job_request(scenario_path: str | Path, out: str | Path, *, overwrite: bool = False,
                       frames: str | None = None, shard: str | None = None) -> dict[str, Any]:
    """The JSON body of a render job request.

    Raises:
        SidecarMessageError: a field breaks its rule.
    """
    body = {"scenario_path": str(scenario_path), "out": str(out), "overwrite": overwrite,
            "frames": frames, "shard": shard}
    parse_render_job_request(body)
    return body


def parse_render_job_request(data: Any) -> RenderJobRequest:
    """Check a render job request's shape.

    Raises:
        SidecarMessageError: naming the field at fault.
    """
    data = _mapping(data, None)
    _unknown_keys(data, RENDER_JOB_FIELDS)
    return RenderJobRequest(
        scenario_path=_string(data, "scenario_path"), out=_string(data, "out"),
        overwrite=_bool(data, "overwrite", False),
        frames=_optional_string(data, "frames"),
        shard=_optional_string(data, "shard"))


@dataclass(frozen=True)
class JobStatus:
    """``GET /v1/renders/{id}``: ``state`` one of :data:`JOB_STATES`; ``done`` / ``total``
    frames (from the job's events, 0 until its ``start``); ``error`` the message of a
    failed job (None otherwise); ``summary`` the ``done`` event's fields once done."""

    id: str
    state: str
    done: int
    total: int
    error: str | None
    summary: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


def job_status_body(job_id: str, state: str, done: int, total: int, error: str | None,
                    summary: dict[str, Any] | None) -> dict[str, Any]:
    """The status answer of a job (checked by :func:`parse_job_status`)."""
    body = {"id": job_id, "state": state, "done": done, "total": total, "error": error,
            "summary": summary}
    parse_job_status(body)
    return body


def parse_job_status(data: Any) -> JobStatus:
    """Read a job status answer.

    Raises:
        SidecarMessageError: naming the field at fault.
    """
    data = _mapping(data, None)
    state = _string(data, "state")
    if state not in JOB_STATES:
        raise SidecarMessageError("state", f"expected one of {', '.join(JOB_STATES)}, got "
                                           f"{state!r:.40}")
    summary = data.get("summary")
    if summary is not None:
        _mapping(summary, "summary")
    return JobStatus(id=_string(data, "id"), state=state,
                     done=_count(data, "done"), total=_count(data, "total"),
                     error=_optional_string(data, "error", nonempty=False),
                     summary=summary)


def parse_job_created(data: Any) -> str:
    """The job id of a ``202`` answer ``{"id": ...}``.

    Raises:
        SidecarMessageError: no id.
    """
    return _string(_mapping(data, None), "id")
