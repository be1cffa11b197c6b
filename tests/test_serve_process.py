"""`gs-backend serve` as a real process on 127.0.0.1: the listening line, the token file,
HTTP over a socket, SIGTERM with a job running, a killed sidecar's job resumed by a rerun."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gs_contract.protocol import FrameEvent, StartEvent, decode_event
from gs_contract.sidecar import (
    bearer_header,
    parse_health,
    parse_job_created,
    parse_job_status,
    parse_listening_line,
    preview_request,
    read_token_file,
    render_job_request,
)
from tests.scenario_factory import scenario_dict, write_scenario
from tests.serve_helpers import WAIT_S, wait_for


class Sidecar:
    """A running `gs-backend serve` and what its listening line said."""

    def __init__(self, token_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gs_backend", "serve", "--port", "0", "--device", "cpu",
             "--token-file", str(token_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        listening = None
        assert self.process.stdout is not None
        for line in self.process.stdout:  # blocks until the line (or the process ends)
            listening = parse_listening_line(line)
            if listening is not None:
                break
        assert listening is not None, f"no listening line; stderr: {self.stderr}"
        self.listening = listening
        self.token = read_token_file(listening.token_file)
        self.client = httpx.Client(base_url=listening.url, headers=bearer_header(self.token),
                                   timeout=WAIT_S)

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(WAIT_S)


@pytest.fixture()
def sidecar(tmp_path) -> Iterator[Sidecar]:
    server = Sidecar(tmp_path / "token")
    try:
        yield server
    finally:
        server.stop()


def test_listening_line_token_file_and_http_on_loopback(sidecar, tmp_path) -> None:
    listening = sidecar.listening
    assert listening.url.startswith("http://127.0.0.1:") and not listening.url.endswith(":0")
    assert listening.pid == sidecar.process.pid
    assert Path(listening.token_file) == tmp_path / "token"
    assert stat.S_IMODE(os.stat(listening.token_file).st_mode) == 0o600
    assert len(sidecar.token) >= 22  # >= 128 bits in URL-safe base64

    health = parse_health(httpx.get(listening.url + "/v1/health", timeout=WAIT_S).json())
    assert health.status == "ok" and health.device == "cpu" and health.rasterizer == "numba"
    assert httpx.get(listening.url + "/openapi.json", timeout=WAIT_S).status_code == 200
    for headers in ({}, bearer_header("wrong")):
        r = httpx.post(listening.url + "/v1/preview", json={}, headers=headers, timeout=WAIT_S)
        assert r.status_code == 401 and r.json()["field"] is None

    write_scenario(tmp_path, frames=2)
    data = scenario_dict(2)
    r = sidecar.client.post("/v1/preview", json=preview_request(data, 1, base_dir=tmp_path))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG")


def test_ctrl_c_stops_an_idle_sidecar_with_130(sidecar) -> None:
    sidecar.process.send_signal(signal.SIGINT)
    assert sidecar.process.wait(WAIT_S) == 130


def test_a_default_token_file_is_private_and_removed_on_exit(tmp_path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "gs_backend", "serve", "--device", "cpu"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=env)
    try:
        assert process.stdout is not None
        listening = next(filter(None, map(parse_listening_line, process.stdout)))
        token_file = Path(listening.token_file)
        assert token_file.parent.parent == tmp_path
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT_S) == 0
        assert not token_file.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_S)


def test_a_fresh_token_each_start(tmp_path) -> None:
    tokens = []
    for _ in range(2):
        server = Sidecar(tmp_path / "token")
        try:
            tokens.append(server.token)
        finally:
            server.stop()
    assert tokens[0] != tokens[1]


def _slow_scenario(tmp_path: Path, frames: int = 60) -> Path:
    data = scenario_dict(frames)
    for frame in data["frames"]:
        frame["camera"].update(width=32, height=24, K=[[35, 0, 16], [0, 35, 12], [0, 0, 1]])
    return write_scenario(tmp_path, data)


def _first_frame(sidecar: Sidecar, job_id: str) -> None:
    """Wait (on the event stream, not on time) until the job has finished a frame."""
    with sidecar.client.stream("GET", f"/v1/renders/{job_id}/events") as r:
        for line in r.iter_lines():
            if isinstance(decode_event(line), FrameEvent):
                return
    raise AssertionError("the job ended without a frame")


def test_sigterm_interrupts_the_job_and_exits(sidecar, tmp_path) -> None:
    scenario = _slow_scenario(tmp_path)
    out = tmp_path / "out"
    job_id = parse_job_created(sidecar.client.post(
        "/v1/renders", json=render_job_request(scenario, out)).json())
    _first_frame(sidecar, job_id)
    sidecar.process.send_signal(signal.SIGTERM)
    assert sidecar.process.wait(WAIT_S) == 0, sidecar.stderr
    _check_resumes(scenario, out, total=60)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_a_killed_sidecar_leaves_its_job_resumable(sidecar, tmp_path) -> None:
    """SIGKILL: no cleanup at all in the server; its child gets SIGINT from the kernel
    (PR_SET_PDEATHSIG) and stops like after Ctrl-C."""
    scenario = _slow_scenario(tmp_path)
    out = tmp_path / "out"
    r = sidecar.client.post("/v1/renders", json=render_job_request(scenario, out))
    job_id = parse_job_created(r.json())
    _first_frame(sidecar, job_id)
    status = parse_job_status(sidecar.client.get(f"/v1/renders/{job_id}").json())
    assert status.state == "running"
    sidecar.process.kill()
    sidecar.process.wait(WAIT_S)
    wait_for(lambda: not _render_running(out), "the orphaned render to stop")
    _check_resumes(scenario, out, total=60)


def _render_running(out: Path) -> bool:
    """Whether a `gs-backend render` process for ``out`` is still alive (from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"render" in cmdline and f"--out={out}".encode() in cmdline:
            return True
    return False


def _check_resumes(scenario: Path, out: Path, total: int) -> None:
    """The interrupted folder resumes: a rerun keeps the finished frames, makes the rest."""
    rerun = subprocess.run(
        [sys.executable, "-m", "gs_backend", "render", str(scenario), "--out", str(out),
         "--progress", "jsonl", "--device", "cpu"],
        capture_output=True, text=True, timeout=WAIT_S * 2)
    assert rerun.returncode == 0, rerun.stderr
    events = [decode_event(line) for line in rerun.stdout.splitlines()]
    start = next(e for e in events if isinstance(e, StartEvent))
    assert start.total == total and 1 <= start.skipped < total
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames_done"] == total
