"""The sidecar client against a scripted HTTP server (``fake_sidecar``): every transport
failure becomes one plain ``SidecarError`` of the right kind; answers are read with the
shapes of ``gs_contract.sidecar``."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from fake_sidecar import TOKEN, FakeSidecar, Reply, healthy

from blender_addon.core.sidecar_client import TOKEN_PROBE_ID, SidecarClient, SidecarError
from gs_contract.sidecar import (
    API_VERSION,
    RENDER_TIME_HEADER,
    ROUTE_HEALTH,
    ROUTE_PREVIEW,
    ROUTE_RENDERS,
    error_body,
    job_status_body,
    preview_request,
    route_render,
    route_render_events,
    write_token_file,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"rest of a png"
PREVIEW = preview_request({"format": "gs-scenario"}, 0, base_dir="/data")


@pytest.fixture
def fake():
    with FakeSidecar() as server:
        yield server


def client(fake: FakeSidecar, token: str = TOKEN, **kwargs) -> SidecarClient:
    return SidecarClient(fake.url, token, **kwargs)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_and_check(fake):
    health = client(fake).check()
    assert (health.status, health.version, health.api, health.device) == \
        ("ok", "9.9.9", API_VERSION, "cpu")
    # check() probed the token with an authenticated request that has no side effect
    assert [(m, p) for m, p, _, _ in fake.requests] == \
        [("GET", ROUTE_HEALTH), ("GET", route_render(TOKEN_PROBE_ID))]
    assert fake.requests[1][2]["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in fake.requests[0][2]  # health needs no token


def test_refused():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SidecarError) as info:
        SidecarClient(url, TOKEN).health()
    assert info.value.kind == "unreachable"
    assert str(info.value) == f"no sidecar is running at {url} (connection refused)"


def test_timeout(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(body=None)  # never answers
    with pytest.raises(SidecarError) as info:
        client(fake).preview(PREVIEW, timeout=0.3)
    assert info.value.kind == "timeout"
    assert str(info.value) == f"the sidecar at {fake.url} did not answer within 0.3 s"


def test_wrong_token(fake, tmp_path):
    token_file = tmp_path / "token"
    write_token_file(token_file, "not-the-token")
    wrong = SidecarClient.from_token_file(fake.url, token_file)
    with pytest.raises(SidecarError) as info:
        wrong.check()
    assert info.value.kind == "auth" and info.value.status == 401
    assert str(info.value) == (f"the sidecar at {fake.url} refused the token in {token_file} "
                               "(401): check the token file, or restart the sidecar")


def test_token_file_unreadable_or_empty(tmp_path):
    with pytest.raises(SidecarError) as info:
        SidecarClient.from_token_file("http://127.0.0.1:1", tmp_path / "missing")
    assert info.value.kind == "auth"
    assert "cannot read the sidecar's token file" in str(info.value)
    assert str(tmp_path / "missing") in str(info.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SidecarError, match="holds no token") as info:
        SidecarClient.from_token_file("http://127.0.0.1:1", tmp_path / "empty")
    assert info.value.kind == "auth"


def test_version_mismatch(fake):
    fake.answers[("GET", ROUTE_HEALTH)] = healthy(api=API_VERSION + 1)
    with pytest.raises(SidecarError) as info:
        client(fake).check()
    assert info.value.kind == "version"
    assert f"API v{API_VERSION + 1}" in str(info.value)
    assert "gs-backend 9.9.9" in str(info.value)
    assert len(fake.requests) == 1  # refused before any authenticated request


def test_malformed_health(fake):
    fake.answers[("GET", ROUTE_HEALTH)] = Reply.json({"status": "ok"})
    with pytest.raises(SidecarError, match="unexpected answer from the sidecar") as info:
        client(fake).health()
    assert info.value.kind == "server"
    fake.answers[("GET", ROUTE_HEALTH)] = Reply(200, "text/html", b"<html>proxy</html>")
    with pytest.raises(SidecarError, match="not JSON"):
        client(fake).health()


def test_bad_request_names_the_field(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply.json(
        error_body("asset file not found: /data/tool.ply", "scenario.assets.tool.ply"), 422)
    with pytest.raises(SidecarError) as info:
        client(fake).preview(PREVIEW)
    error = info.value
    assert (error.kind, error.status, error.field) == \
        ("request", 422, "scenario.assets.tool.ply")
    assert str(error) == "scenario.assets.tool.ply: asset file not found: /data/tool.ply"
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply.json(error_body("too large"), 413)
    with pytest.raises(SidecarError) as info:
        client(fake).preview(PREVIEW)
    assert (str(info.value), info.value.field) == ("too large", None)


def test_4xx_and_5xx_without_error_body(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(400, "text/plain", b"Bad Request")
    with pytest.raises(SidecarError) as info:
        client(fake).preview(PREVIEW)
    assert info.value.kind == "request"
    assert str(info.value) == f"the sidecar at {fake.url} failed (HTTP 400): Bad Request"
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(500, "text/plain", b"Internal Server Error")
    with pytest.raises(SidecarError) as info:
        client(fake).preview(PREVIEW)
    assert (info.value.kind, info.value.status) == ("server", 500)


def test_preview_png_and_render_time(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(
        200, "image/png", PNG, {RENDER_TIME_HEADER: "0.0375"})
    image = client(fake).preview(PREVIEW)
    assert image.png == PNG and image.seconds == pytest.approx(0.0375)
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("POST", ROUTE_PREVIEW)
    assert json.loads(body) == PREVIEW and headers["Content-Type"] == "application/json"


def test_preview_that_is_not_a_png(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply.json({"image": "nope"})
    with pytest.raises(SidecarError, match="not a PNG image") as info:
        client(fake).preview(PREVIEW)
    assert info.value.kind == "server"


def test_sidecar_gone_mid_answer(fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(body=None)
    result: list[BaseException] = []

    def ask() -> None:
        try:
            client(fake).preview(PREVIEW, timeout=30)
        except SidecarError as exc:
            result.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    while not any(path == ROUTE_PREVIEW for _, path, _, _ in fake.requests):
        threading.Event().wait(0.01)
    fake.release.set()  # the server hangs up without an answer
    asker.join(30)
    assert len(result) == 1 and result[0].kind == "unreachable"
    assert "broke" in str(result[0]) and "still running?" in str(result[0])


def test_bad_url():
    with pytest.raises(SidecarError, match="not an http:// address"):
        SidecarClient("localhost:8765", TOKEN)
    with pytest.raises(SidecarError, match="bad port"):
        SidecarClient("http://127.0.0.1:99999999", TOKEN)


def test_render_job_routes(fake):
    fake.answers[("POST", ROUTE_RENDERS)] = Reply.json({"id": "job1"}, 202)
    fake.answers[("GET", route_render("job1"))] = Reply.json(
        job_status_body("job1", "running", 2, 5, None, None))
    fake.answers[("DELETE", route_render("job1"))] = Reply.json(
        job_status_body("job1", "cancelled", 2, 5, None, None))
    fake.answers[("GET", route_render_events("job1"))] = Reply(
        200, "application/x-ndjson", [b'{"event": "start", "total": 5, "skipped": 0}\n',
                                      b'{"event": "frame", "done": 1, ', b'"total": 5}\n\n'])
    c = client(fake)
    assert c.submit_render({"scenario_path": "/s.json", "out": "/o"}) == "job1"
    status = c.render_status("job1")
    assert (status.state, status.done, status.total) == ("running", 2, 5)
    # lines put together across chunks; blank lines skipped
    assert list(c.render_events("job1")) == ['{"event": "start", "total": 5, "skipped": 0}',
                                             '{"event": "frame", "done": 1, "total": 5}']
    c.cancel_render("job1")
    assert fake.requests[-1][:2] == ("DELETE", route_render("job1"))
    with pytest.raises(SidecarError) as info:
        c.render_status("nope")
    assert (info.value.kind, info.value.status) == ("request", 404)
