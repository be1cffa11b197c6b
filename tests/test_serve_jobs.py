"""Render jobs over HTTP, in-process: the same dataset as the CLI, events, cancel, errors."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest
from fastapi.testclient import TestClient

from gs_backend.cli import main
from gs_contract.protocol import DoneEvent, FrameEvent, StartEvent, decode_event
from gs_contract.sidecar import parse_job_created, parse_job_status, render_job_request
from tests.scenario_factory import scenario_dict, write_scenario
from tests.serve_helpers import AUTH, make_app, make_state, wait_for


@pytest.fixture()
def served():
    state = make_state()
    with TestClient(make_app(state), raise_server_exceptions=False) as client:
        yield client, state


def status(client, job_id):
    r = client.get(f"/v1/renders/{job_id}", headers=AUTH)
    assert r.status_code == 200, r.text
    return parse_job_status(r.json())


def submit(client, body) -> str:
    r = client.post("/v1/renders", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    return parse_job_created(r.json())


def dataset_files(root) -> dict[str, bytes]:
    """Every file of a dataset except those that record where or when it was made."""
    skip = {"manifest.json", "data.yaml"}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in skip and ".gs-" not in str(p)}


def test_a_render_job_writes_the_dataset_the_cli_writes(served, tmp_path) -> None:
    client, _ = served
    scenario = write_scenario(tmp_path, frames=3)
    job_id = submit(client, render_job_request(scenario, tmp_path / "http"))
    final = wait_for(lambda: (s := status(client, job_id)).finished and s, "the job")
    assert final.state == "done", final
    assert final.done == final.total == 3 and final.error is None
    assert final.summary["frames_done"] == 3

    with client.stream("GET", f"/v1/renders/{job_id}/events", headers=AUTH) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/x-ndjson")
        events = [decode_event(line) for line in r.iter_lines() if line]
    assert isinstance(events[0], StartEvent) and isinstance(events[-1], DoneEvent)
    assert [e.done for e in events if isinstance(e, FrameEvent)] == [1, 2, 3]

    assert main(["render", str(scenario), "--out", str(tmp_path / "cli"), "--progress",
                 "none", "--device", "cpu"]) == 0
    http, cli = dataset_files(tmp_path / "http"), dataset_files(tmp_path / "cli")
    assert http.keys() == cli.keys() and http == cli
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text())["frames"]
                 for d in ("http", "cli")]
    assert manifests[0] == manifests[1]


def test_frames_and_shard_are_passed_on(served, tmp_path) -> None:
    client, _ = served
    scenario = write_scenario(tmp_path, frames=4)
    job_id = submit(client, render_job_request(scenario, tmp_path / "out", frames="1:",
                                               shard="1/2"))
    final = wait_for(lambda: (s := status(client, job_id)).finished and s, "the job")
    assert final.state == "done" and final.total == 1  # frames 1, 2, 3; shard 1 of 2: 2
    names = sorted(p.stem for p in (tmp_path / "out" / "images").rglob("*.png"))
    assert names == ["frame_0003"]


@pytest.mark.parametrize(("change", "field"), [
    ({"scenario_path": "relative.json"}, "scenario_path"),
    ({"out": "relative"}, "out"),
    ({"frames": "9:"}, "frames"),
    ({"frames": "x"}, "frames"),
    ({"shard": "3/2"}, "shard"),
    ({"overwrite": "yes"}, "overwrite"),
])
def test_bad_render_requests_are_400_naming_the_field(served, tmp_path, change, field) -> None:
    client, _ = served
    scenario = write_scenario(tmp_path, frames=2)
    body = {**render_job_request(scenario, tmp_path / "out"), **change}
    r = client.post("/v1/renders", json=body, headers=AUTH)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_a_missing_scenario_is_400_and_unknown_jobs_404(served, tmp_path) -> None:
    client, _ = served
    r = client.post("/v1/renders", json=render_job_request(tmp_path / "none.json",
                                                           tmp_path / "out"), headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] == "scenario_path"
    for method in ("GET", "DELETE"):
        r = client.request(method, "/v1/renders/nope", headers=AUTH)
        assert r.status_code == 404 and set(r.json()) == {"error", "field"}
    assert client.get("/v1/renders/nope/events", headers=AUTH).status_code == 404


def test_a_job_into_a_folder_of_another_scenario_fails_with_the_message(served,
                                                                        tmp_path) -> None:
    client, _ = served
    scenario = write_scenario(tmp_path, frames=2)
    other = tmp_path / "other.json"
    data = scenario_dict(1)
    data["render"] = {"background": [0.5, 0.5, 0.5]}
    other.write_text(json.dumps(data))
    assert main(["render", str(other), "--out", str(tmp_path / "out"), "--progress", "none",
                 "--device", "cpu"]) == 0
    job_id = submit(client, render_job_request(scenario, tmp_path / "out"))
    final = wait_for(lambda: (s := status(client, job_id)).finished and s, "the job")
    assert final.state == "failed" and "overwrite" in final.error


def test_cancel_interrupts_a_running_job_and_the_folder_resumes(served, tmp_path) -> None:
    """The child is paused (SIGSTOP) after its first frame, so the cancel surely lands
    mid-run; SIGCONT then lets it handle the SIGINT."""
    client, state = served
    data = scenario_dict(30)
    for frame in data["frames"]:  # small frames: quick to finish after the cancel test
        frame["camera"].update(width=32, height=24, K=[[35, 0, 16], [0, 35, 12], [0, 0, 1]])
    scenario = write_scenario(tmp_path, data)
    out = tmp_path / "out"
    job_id = submit(client, render_job_request(scenario, out))
    wait_for(lambda: status(client, job_id).done >= 1, "the first frame")
    process = state.jobs.get(job_id).process
    os.kill(process.pid, signal.SIGSTOP)
    try:
        r = client.delete(f"/v1/renders/{job_id}", headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] == job_id
    finally:
        os.kill(process.pid, signal.SIGCONT)
    final = wait_for(lambda: (s := status(client, job_id)).finished and s, "the cancel")
    assert final.state == "cancelled", final
    assert 1 <= final.done < 30
    assert client.delete(f"/v1/renders/{job_id}", headers=AUTH).json()["state"] == "cancelled"

    assert main(["render", str(scenario), "--out", str(out), "--progress", "none",
                 "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames_done"] == 30


def test_a_queued_job_cancelled_never_runs(served, tmp_path, monkeypatch) -> None:
    """The first job's child waits for a file the test creates, so the second surely
    waits in the queue while it is cancelled."""
    client, state = served
    scenario = write_scenario(tmp_path, frames=1)
    gate = tmp_path / "gate"
    real = state.jobs.command

    def command(request):
        if request.out.endswith("a"):
            return [sys.executable, "-c", "import os, time\n"
                    f"while not os.path.exists({str(gate)!r}): time.sleep(0.02)"]
        return real(request)

    monkeypatch.setattr(state.jobs, "command", command)
    first = submit(client, render_job_request(scenario, tmp_path / "a"))
    second = submit(client, render_job_request(scenario, tmp_path / "b"))
    third = submit(client, render_job_request(scenario, tmp_path / "c"))
    wait_for(lambda: status(client, first).state == "running", "the first job to start")
    assert status(client, second).state == "queued"
    assert client.delete(f"/v1/renders/{second}", headers=AUTH).json()["state"] == "cancelled"
    gate.touch()
    wait_for(lambda: status(client, third).finished, "the third job")
    assert status(client, first).state == "done"
    assert status(client, second).state == "cancelled"
    assert status(client, third).state == "done"
    assert not (tmp_path / "b").exists() and (tmp_path / "c" / "manifest.json").is_file()
