"""Shared pieces of the sidecar tests: an in-process app and polling without races."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from gs_backend.serve.app import ServeState
from gs_backend.serve.asset_cache import AssetCache
from gs_backend.serve.jobs import JobManager
from gs_backend.serve.preview import PreviewService
from gs_backend.serve.server import build_asgi_app
from gs_contract.sidecar import health_body

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WAIT_S = 120.0  # generous: CI is a loaded 2-core machine


def make_state(cache_bytes: int = 1 << 30) -> ServeState:
    """What `gs-backend serve --device cpu` builds, without the socket."""
    return ServeState(
        health=health_body(version="test", device="cpu", rasterizer="torch",
                           torch=torch.__version__, gsplat=None),
        previews=PreviewService(AssetCache(torch.device("cpu"), cache_bytes)),
        jobs=JobManager(device="cpu"))


def make_app(state: ServeState | None = None, max_body: int = 1 << 20) -> Any:
    return build_asgi_app(state or make_state(), TOKEN, max_body)


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """Poll ``condition`` until it returns something truthy (bounded, generous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
