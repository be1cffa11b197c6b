"""``gs-backend serve``: the sidecar process (DESIGN contract 10).

Start-up order: resolve the device; bind the socket (port 0: the system picks one); write
a fresh token to the token file (atomically, mode 0600); start uvicorn on that socket;
print the ``listening`` line on stdout once it accepts requests. Logs go to stderr, so
stdout carries only that line.

SIGTERM and Ctrl-C (SIGINT): running render jobs get SIGINT at once (their folders stay
resumable), queued ones are cancelled, open event streams end with their job, then the
server stops and the process exits: 0 after SIGTERM, 130 after Ctrl-C. A token file the
server chose itself is removed on the way out.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from gs_contract.sidecar import (
    MAX_REQUEST_BYTES,
    TOKEN_BYTES,
    health_body,
    listening_line,
    write_token_file,
)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 0
    device: str = "auto"
    token_file: Path | None = None
    cache_bytes: int | None = None
    max_body: int = MAX_REQUEST_BYTES


def default_token_file() -> Path:
    """``$XDG_RUNTIME_DIR`` (or the temp folder) ``/gs-backend-<uid>/sidecar-<pid>.token``,
    in a folder only this user may enter."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    folder = base / f"gs-backend-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"sidecar-{os.getpid()}.token"


def new_token() -> str:
    """A fresh random token: :data:`TOKEN_BYTES` bytes from the OS, as URL-safe text."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def build_state(device_spec: str, cache_bytes: int | None) -> Any:
    """The device, caches, job manager and health answer (imports torch)."""
    import importlib.metadata

    import torch

    from gs_backend.devices import resolve_device
    from gs_backend.raster import resolve_backend
    from gs_backend.serve.app import ServeState
    from gs_backend.serve.asset_cache import DEFAULT_CACHE_BYTES, AssetCache
    from gs_backend.serve.jobs import JobManager
    from gs_backend.serve.preview import PreviewService

    device = resolve_device(device_spec)
    try:
        gsplat_version: str | None = importlib.metadata.version("gsplat")
    except importlib.metadata.PackageNotFoundError:
        gsplat_version = None
    from gs_backend import __version__

    health = health_body(version=__version__, device=str(device),
                         rasterizer=resolve_backend("auto", device), torch=torch.__version__,
                         gsplat=gsplat_version)
    cache = AssetCache(device, DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes)
    return ServeState(health=health, previews=PreviewService(cache),
                      jobs=JobManager(device=device_spec))


def build_asgi_app(state: Any, token: str, max_body: int = MAX_REQUEST_BYTES) -> Any:
    """The FastAPI app behind the token and size gate."""
    from gs_backend.serve.app import create_app
    from gs_backend.serve.guard import Guard

    return Guard(create_app(state), token=token, max_body=max_body)


def serve(options: ServeOptions) -> int:
    """Run the sidecar until SIGTERM or Ctrl-C; returns the exit code.

    Raises:
        InputError: a device this machine lacks, an address that cannot be bound, a
            token file that cannot be written.
    """
    from gs_contract.errors import InputError

    state = build_state(options.device, options.cache_bytes)
    sock = _bind(options.host, options.port)
    owned_token = options.token_file is None
    token_file = default_token_file() if owned_token else options.token_file
    token = new_token()
    try:
        write_token_file(token_file, token)
    except OSError as exc:
        sock.close()
        raise InputError(token_file, None, f"cannot write the token file: "
                                           f"{exc.strerror or exc}") from None
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"gs-backend serve: warning: listening on {options.host}: requests and the "
              "token travel unencrypted; prefer the loopback default and an SSH tunnel "
              "(docs/sidecar.md)", file=sys.stderr)
    port = sock.getsockname()[1]
    host = f"[{options.host}]" if ":" in options.host else options.host
    url = f"http://{host}:{port}"

    def ready() -> None:
        print(listening_line(url, token_file, os.getpid()), flush=True)

    config = uvicorn.Config(build_asgi_app(state, token, options.max_body), log_level="info",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=30)
    server = _Server(config, on_ready=ready, on_exit=state.jobs.interrupt_all)
    try:
        server.run(sockets=[sock])
    finally:
        state.jobs.shutdown()
        if owned_token:
            token_file.unlink(missing_ok=True)
    return 130 if server.exit_signal == signal.SIGINT else 0


class _Server(uvicorn.Server):
    """uvicorn's Server with a ready callback (after start-up) and a shutdown hook that
    runs as soon as SIGTERM/SIGINT arrives (before uvicorn waits for open connections,
    so that event streams of interrupted jobs can end)."""

    def __init__(self, config: uvicorn.Config, *, on_ready: Callable[[], None],
                 on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready
        self._on_exit = on_exit
        self.exit_signal: int | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded for re-raising after the shutdown: serve() returns an exit code.
        self.exit_signal = self.exit_signal or sig
        self._on_exit()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
    """A bound TCP socket (not yet listening) for ``host:port`` (port 0: any free port).

    Raises:
        InputError: the address cannot be bound (in use, not this machine's).
    """
    from gs_contract.errors import InputError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise InputError("--host/--port", None,
                         f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
