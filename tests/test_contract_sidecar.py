"""gs_contract.sidecar: the sidecar's message shapes, built and read by one set of rules."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from gs_contract import sidecar
from gs_contract.sidecar import SidecarMessageError


def test_routes_are_versioned_and_public_routes_are_health_and_schema() -> None:
    assert sidecar.ROUTE_HEALTH == "/v1/health"
    assert sidecar.ROUTE_PREVIEW == "/v1/preview"
    assert sidecar.route_render("abc") == "/v1/renders/abc"
    assert sidecar.route_render_events("abc") == "/v1/renders/abc/events"
    assert set(sidecar.PUBLIC_ROUTES) == {"/v1/health", "/openapi.json"}


def test_listening_line_round_trip_and_other_lines() -> None:
    line = sidecar.listening_line("http://127.0.0.1:5123", "/tmp/t", 42)
    assert json.loads(line) == {"event": "listening", "url": "http://127.0.0.1:5123",
                                "token_file": "/tmp/t", "pid": 42}
    assert sidecar.parse_listening_line(line + "\n") == sidecar.Listening(
        "http://127.0.0.1:5123", "/tmp/t", 42)
    for other in ("", "INFO: Started server process", "[1, 2]", '{"event": "log"}'):
        assert sidecar.parse_listening_line(other) is None
    with pytest.raises(SidecarMessageError) as err:
        sidecar.parse_listening_line('{"event": "listening", "url": "http://x", '
                                     '"token_file": "t", "pid": -1}')
    assert err.value.field == "pid"
    with pytest.raises(SidecarMessageError) as err:
        sidecar.parse_listening_line('{"event": "listening", "url": "ftp://x", '
                                     '"token_file": "t", "pid": 1}')
    assert err.value.field == "url"


def test_token_file_is_0600_even_with_a_permissive_umask(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("old token readable by all\n")
    os.chmod(path, 0o644)
    old = os.umask(0)
    try:
        sidecar.write_token_file(path, "abc123")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sidecar.read_token_file(path) == "abc123"
    assert sidecar.bearer_header("abc123") == {"Authorization": "Bearer abc123"}
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temp file left
    path.write_text("  \n")
    with pytest.raises(SidecarMessageError):
        sidecar.read_token_file(path)


def test_error_body() -> None:
    body = sidecar.error_body("frame 'x' not in the scenario", "frame")
    assert body == {"error": "frame 'x' not in the scenario", "field": "frame"}
    assert sidecar.parse_error_body(body) == sidecar.ErrorBody(body["error"], "frame")
    assert sidecar.parse_error_body({"error": "no", "field": None}).field is None
    with pytest.raises(SidecarMessageError):
        sidecar.parse_error_body({"detail": "Not Found"})


def _health(**change):
    body = sidecar.health_body(version="0.1.0", device="cpu", rasterizer="torch",
                               torch="2.7.1", gsplat=None)
    body.update(change)
    return body


def test_health_and_compatibility() -> None:
    body = _health()
    assert set(body) == set(sidecar.HEALTH_FIELDS)
    assert body["status"] == "ok" and body["api"] == sidecar.API_VERSION
    health = sidecar.parse_health({**body, "extra": 1})
    assert health.gsplat is None and health.device == "cpu"
    assert sidecar.incompatibility(health) is None
    other = sidecar.parse_health(_health(api=sidecar.API_VERSION + 1))
    assert "API v2" in sidecar.incompatibility(other)
    for field, value in (("api", "1"), ("device", None), ("torch", 3)):
        with pytest.raises(SidecarMessageError) as err:
            sidecar.parse_health(_health(**{field: value}))
        assert err.value.field == field


def test_preview_request_defaults_and_rules() -> None:
    scenario = {"format": "gs-scenario"}
    body = sidecar.preview_request(scenario)
    assert body == {"scenario": scenario, "base_dir": None, "frame": 0, "overlay": False,
                    "scale": 1.0}
    parsed = sidecar.parse_preview_request({"scenario": scenario})
    assert parsed == sidecar.PreviewRequest(scenario, None, 0, False, 1.0)
    assert sidecar.parse_preview_request({"scenario": {}, "frame": "frame_0002",
                                          "scale": 0.5, "base_dir": "/d"}).frame == "frame_0002"
    bad = [({"frame": -1}, "frame"), ({"frame": True}, "frame"), ({"frame": ""}, "frame"),
           ({"frame": 1.5}, "frame"), ({"scale": 0}, "scale"), ({"scale": 1.5}, "scale"),
           ({"scale": float("nan")}, "scale"), ({"scale": True}, "scale"),
           ({"overlay": 1}, "overlay"), ({"base_dir": 3}, "base_dir"),
           ({"scenario": []}, "scenario"), ({"frames": 0}, "frames")]
    for change, field in bad:
        with pytest.raises(SidecarMessageError) as err:
            sidecar.parse_preview_request({"scenario": {}, **change})
        assert err.value.field == field, change
    with pytest.raises(SidecarMessageError) as err:
        sidecar.parse_preview_request({"frame": 0})
    assert err.value.field == "scenario"
    with pytest.raises(SidecarMessageError):
        sidecar.preview_request(scenario, scale=2.0)


def test_scaled_size_rounds_half_up_and_keeps_one_pixel() -> None:
    assert sidecar.scaled_size(640, 480, 1.0) == (640, 480)
    assert sidecar.scaled_size(640, 480, 0.5) == (320, 240)
    assert sidecar.scaled_size(5, 3, 0.5) == (3, 2)  # 2.5 -> 3, 1.5 -> 2
    assert sidecar.scaled_size(640, 480, 1e-9) == (1, 1)


def test_scaled_intrinsics_keep_every_ray_on_the_same_image_position() -> None:
    """Oracle: a 3D point projected with the scaled K lands at the same fraction of the
    image (pixel corners at integers) as with the original K."""
    K = np.array([[500.0, 0.0, 310.2], [0.0, 520.0, 250.7], [0.0, 0.0, 1.0]])
    w, h = 640, 480
    w2, h2 = sidecar.scaled_size(w, h, 0.37)
    K2 = sidecar.scaled_intrinsics(K, w, h, w2, h2)
    rng = np.random.default_rng(0)
    points = rng.uniform([-1, -1, 2], [1, 1, 5], size=(20, 3))
    uv = (K @ points.T).T
    uv2 = (K2 @ points.T).T
    frac = uv[:, :2] / uv[:, 2:] / [w, h]
    frac2 = uv2[:, :2] / uv2[:, 2:] / [w2, h2]
    np.testing.assert_allclose(frac2, frac, atol=1e-12)
    np.testing.assert_array_equal(sidecar.scaled_intrinsics(K, w, h, w, h), K)


def test_render_job_request_and_status() -> None:
    body = sidecar.render_job_request("/s/scenario.json", "/s/out", frames="0:2")
    assert body == {"scenario_path": "/s/scenario.json", "out": "/s/out", "overwrite": False,
                    "frames": "0:2", "shard": None}
    assert sidecar.parse_render_job_request(body).frames == "0:2"
    for change, field in (({"out": ""}, "out"), ({"overwrite": "yes"}, "overwrite"),
                          ({"shard": 1}, "shard"), ({"device": "cpu"}, "device")):
        with pytest.raises(SidecarMessageError) as err:
            sidecar.parse_render_job_request({**body, **change})
        assert err.value.field == field
    status = sidecar.job_status_body("j1", "running", 1, 4, None, None)
    parsed = sidecar.parse_job_status(status)
    assert parsed.state == "running" and not parsed.finished
    assert sidecar.parse_job_status({**status, "state": "cancelled"}).finished
    with pytest.raises(SidecarMessageError) as err:
        sidecar.parse_job_status({**status, "state": "paused"})
    assert err.value.field == "state"
    assert sidecar.parse_job_created({"id": "j1"}) == "j1"
    assert set(sidecar.JOB_STATES) == {"queued", "running", "done", "failed", "cancelled"}
