"""``SidecarRenderJob`` against a scripted sidecar: events into the shared ``JobState``,
the final status as a return code, cancel as DELETE, a sidecar that goes away."""

from __future__ import annotations

import threading
import time

import pytest
from fake_sidecar import TOKEN, FakeSidecar, Reply

from blender_addon.core.sidecar_client import SidecarClient
from blender_addon.core.sidecar_render import SidecarRenderJob
from gs_contract.protocol import DoneEvent, ExitCode, FrameEvent, StartEvent, encode_event
from gs_contract.sidecar import job_status_body, route_render, route_render_events

JOB = "job1"


def line(event) -> bytes:
    return (encode_event(event) + "\n").encode()


def status(state: str, done: int = 0, total: int = 3, error: str | None = None) -> Reply:
    return Reply.json(job_status_body(JOB, state, done, total, error, None))


def run(job: SidecarRenderJob, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while not job.poll().finished:
        seen.extend(job.state.new_events)
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.01)
    seen.extend(job.state.new_events)
    return seen


@pytest.fixture
def fake():
    with FakeSidecar() as server:
        yield server


def start(fake, tmp_path) -> SidecarRenderJob:
    return SidecarRenderJob(SidecarClient(fake.url, TOKEN), JOB, out_dir=tmp_path,
                            fingerprint="abc")


def test_events_then_done_checks_the_dataset(fake, tmp_path):
    fake.answers[("GET", route_render_events(JOB))] = Reply(200, "application/x-ndjson", [
        line(StartEvent(total=3, skipped=1)), line(FrameEvent(done=2, total=3, name="f2")),
        line(FrameEvent(done=3, total=3, name="f3"))])
    fake.answers[("GET", route_render(JOB))] = status("done", 3)
    job = start(fake, tmp_path)
    events = run(job)
    assert [type(e) for e in events] == [StartEvent, FrameEvent, FrameEvent]
    state = job.state
    assert (state.total, state.done, state.skipped, state.last_frame) == (3, 3, 1, "f3")
    assert state.returncode == ExitCode.OK
    # the sidecar said done, but no dataset is in the folder: not a success
    assert not state.succeeded
    assert "manifest.json is not readable" in state.error


def test_failed_job_reports_its_error(fake, tmp_path):
    fake.answers[("GET", route_render_events(JOB))] = Reply(200, "application/x-ndjson", [])
    fake.answers[("GET", route_render(JOB))] = status(
        "failed", error="scenario.json: frames[0].camera.K: not a 3x3 matrix")
    job = start(fake, tmp_path)
    run(job)
    assert job.state.returncode == ExitCode.BAD_INPUT
    assert job.state.status_text() == \
        "Failed: scenario.json: frames[0].camera.K: not a 3x3 matrix"


def test_cancel_deletes_the_job_and_ends_resumable(fake, tmp_path):
    gate = threading.Event()
    fake.answers[("GET", route_render_events(JOB))] = Reply(200, "application/x-ndjson", [
        line(StartEvent(total=3, skipped=0)), line(FrameEvent(done=1, total=3, name="f1")),
        gate])
    fake.answers[("GET", route_render(JOB))] = status("running", 1)

    def cancelled(body: bytes) -> Reply:
        fake.answers[("GET", route_render(JOB))] = status("cancelled", 1)
        gate.set()  # the stream ends, as the sidecar's does after the job stops
        return status("cancelled", 1)

    fake.answers[("DELETE", route_render(JOB))] = cancelled
    job = start(fake, tmp_path)
    deadline = time.monotonic() + 30
    while job.poll().done < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.request_cancel()
    job.request_cancel()  # once is enough
    run(job)
    assert [m for m, p, _, _ in fake.requests].count("DELETE") == 1
    assert job.state.interrupted and job.state.returncode == ExitCode.INTERRUPTED
    assert job.state.status_text() == "Cancelled after 1 of 3 frames; render again to resume"


def test_sidecar_gone_mid_job(fake, tmp_path):
    gate = threading.Event()
    fake.answers[("GET", route_render_events(JOB))] = Reply(200, "application/x-ndjson", [
        line(StartEvent(total=3, skipped=0)), gate])
    job = start(fake, tmp_path)
    deadline = time.monotonic() + 30
    while job.poll().total == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    fake.__exit__()  # the sidecar stops: stream cut, status refused
    run(job)
    assert job.lost is not None and job.lost.kind == "unreachable"
    assert not job.state.succeeded and job.state.returncode == ExitCode.INTERNAL
    assert job.state.error.startswith("the sidecar stopped answering during the render")
    assert "render again to resume" in job.state.error


def test_done_event_summary(fake, tmp_path):
    done = DoneEvent(out=str(tmp_path), frames_total=3, frames_selected=3, frames_rendered=3,
                     frames_skipped=0, frames_done=3, labelled_instances=2, seconds=1.5)
    fake.answers[("GET", route_render_events(JOB))] = Reply(
        200, "application/x-ndjson", [line(StartEvent(total=3, skipped=0)), line(done)])
    fake.answers[("GET", route_render(JOB))] = status("done", 3)
    job = start(fake, tmp_path)
    run(job)
    assert job.state.summary == done
