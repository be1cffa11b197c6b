"""The render protocol (``gs_contract.protocol``): events, exit codes, their docs, and a
real backend run read by the add-on's own reader.

``python -m tests.test_contract_protocol`` rewrites the generated part of
``docs/protocol.md`` from the definitions; :func:`test_the_doc_lists_the_definitions`
fails while the two disagree.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path

import pytest

from gs_contract.dataset import DatasetLayout
from gs_contract.protocol import (
    EVENT_TYPES,
    EXIT_CODE_MEANINGS,
    DoneEvent,
    ErrorEvent,
    ExitCode,
    FrameEvent,
    LogEvent,
    StartEvent,
    decode_event,
    encode_event,
    field_docs,
)
from gs_contract.scenario import load_scenario
from tests.folder_lock import folder_locked
from tests.scenario_factory import write_scenario
from tests.test_addon_numpy2 import addon_module

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"
BEGIN, END = "<!-- generated: protocol reference -->", "<!-- end of generated part -->"

SAMPLES = (
    StartEvent(total=4, skipped=1, device="cpu", out="/o", gaussians={"tissue": 400}),
    FrameEvent(done=2, total=4, name="frame_0002", split="val", instances=3, seconds=0.5),
    LogEvent("warning", "asset 'tool': dropped 1 Gaussians"),
    DoneEvent(out="/o", frames_total=4, frames_selected=4, frames_rendered=3,
              frames_skipped=1, frames_done=4, labelled_instances=7, seconds=1.25),
    ErrorEvent("scenario.json: frames[0].camera.K: focal lengths must be positive"),
)


# ----------------------------------------------------------------------------- codec


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.EVENT)
def test_encode_decode_round_trip(event):
    line = encode_event(event)
    assert "\n" not in line and json.loads(line)["event"] == event.EVENT
    assert decode_event(line + "\n") == event


def test_every_event_kind_has_a_sample():
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES)


def test_optional_fields_default_and_unknown_fields_are_ignored():
    event = decode_event('{"event": "frame", "done": 1, "total": 2, "name": "a", '
                         '"from_the_future": [1, 2]}')
    assert event == FrameEvent(done=1, total=2, name="a", split="", instances=0, seconds=0.0)


@pytest.mark.parametrize("line, problem", [
    ('{"event": "start", "total": "4", "skipped": 0}', "total = '4' is not integer >= 0"),
    ('{"event": "start", "total": 4}', "skipped is missing"),
    ('{"event": "frame", "done": true, "total": 4, "name": "a"}', "done = True"),
    ('{"event": "frame", "done": -1, "total": 4, "name": "a"}', "done = -1"),
    ('{"event": "frame", "done": 1, "total": 4, "name": 5}', "name = 5 is not string"),
    ('{"event": "frame", "done": 1, "total": 4, "name": "a", "seconds": NaN}', "seconds"),
    ('{"event": "frame", "done": 1, "total": 4, "name": "a", "seconds": 1e999}', "seconds"),
    ('{"event": "start", "total": 1, "skipped": 0, "gaussians": {"a": "many"}}', "gaussians"),
    ('{"event": "start", "total": 1, "skipped": 0, "gaussians": [1]}', "gaussians"),
    ('{"event": "log", "level": "debug", "message": "x"}', "level = 'debug'"),
    ('{"event": "log", "level": "info", "message": null}', "message = None"),
    ('{"event": "done", "frames_done": "all"}', "out is missing"),
    ('{"event": "error", "message": {"text": "x"}}', "message = {'text': 'x'}"),
    ('{"event": "frame", "done": ' + "9" * 5000 + ', "total": 4, "name": "a"}', None),
])
def test_malformed_events_become_warnings_not_exceptions(line, problem):
    event = decode_event(line)
    assert isinstance(event, LogEvent)
    if problem is None:  # not even JSON to Python (an integer of 5000 digits)
        assert event.level == "info" and event.message == line
    else:
        assert event.level == "warning" and problem in event.message and line in event.message


@pytest.mark.parametrize("line", [
    "plain text", "[1, 2]", '"a string"', "42", "null", '{"no_event": 1}', '{"event": 7}',
    '{"event": "mystery", "x": 1}', "[" * 5000 + "]" * 5000, "{" * 100000,
])
def test_other_lines_become_info_text(line):
    assert decode_event(line) == LogEvent("info", line)


def test_blank_lines_are_skipped():
    assert decode_event("") is None and decode_event("  \r\n") is None


def test_exit_codes():
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0), ("INTERNAL", 1), ("BAD_INPUT", 2), ("INTERRUPTED", 130)]
    assert set(EXIT_CODE_MEANINGS) == set(ExitCode)


# ----------------------------------------------------------------------------- the doc


def reference_markdown() -> str:
    """The generated part of docs/protocol.md: one table per event, then the exit codes."""
    parts = []
    for cls in EVENT_TYPES:
        parts.append(f"### `{cls.EVENT}`\n\n{' '.join(inspect.getdoc(cls).split())}\n")
        rows = ["| field | type | required | meaning |", "|---|---|---|---|"]
        rows += [f"| `{f.name}` | {f.type} | {'yes' if f.required else 'no'} | {f.meaning} |"
                 for f in field_docs(cls)]
        parts.append("\n".join(rows) + "\n")
    rows = ["### Exit codes\n", "| code | name | meaning |", "|---|---|---|"]
    rows += [f"| {int(code)} | `{code.name}` | {meaning} |"
             for code, meaning in EXIT_CODE_MEANINGS.items()]
    parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def generated_part(text: str) -> str:
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def test_the_doc_lists_the_definitions():
    documented = generated_part(DOC.read_text(encoding="utf-8"))
    assert documented == reference_markdown(), \
        "docs/protocol.md is out of date: run `python -m tests.test_contract_protocol`"


def test_the_doc_check_sees_a_changed_field():
    """The comparison is not vacuous: a renamed field shows."""
    documented = generated_part(DOC.read_text(encoding="utf-8"))
    assert "| `labelled_instances` |" in documented
    assert documented.replace("`labelled_instances`", "`instances_labelled`") != \
        reference_markdown()


# ----------------------------------------------------------------------------- a real run


def backend_job(tmp_path: Path, scenario: Path, out: Path, *extra: str):
    """The add-on's own reader (``blender_addon.core.backend_process``) on the real
    backend of this venv."""
    backend_process = addon_module("core.backend_process")
    argv = backend_process.render_argv([sys.executable, "-m", "gs_backend"], scenario, out,
                                       device="cpu")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    fingerprint = load_scenario(scenario).fingerprint()
    return backend_process.BackendJob([*argv, *extra], env=env, cwd=ROOT, out_dir=out,
                                      fingerprint=fingerprint)


def test_the_addon_reads_every_field_it_uses_from_a_real_run(tmp_path):
    from gs_backend.io import load_gaussians
    from gs_backend.io.inria_ply import save_inria_ply

    scenario = write_scenario(tmp_path)
    tool = tmp_path / "assets" / "tool.ply"
    g = load_gaussians(tool).gaussians
    g.means[3, 1] = float("nan")  # a warning: a log event
    save_inria_ply(tool, g)
    out = tmp_path / "out"
    job = backend_job(tmp_path, scenario, out, "--frames", "0:2")
    state = job.wait()
    assert state.succeeded, (state.error, job.stderr_tail)
    # Every line was a well-formed event: nothing fell back to a text or warning log.
    assert state.logs == [("warning", "asset 'tool': dropped 1 Gaussians with NaN or "
                                      f"infinite values ({tool})")]
    assert (state.total, state.skipped, state.done, state.last_frame) == (2, 0, 2, "frame_0002")
    summary = state.summary
    assert isinstance(summary, DoneEvent)
    assert (summary.frames_done, summary.frames_total, summary.out) == (2, 4, str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert summary.labelled_instances == manifest["labelled_instances"] > 0
    assert summary.seconds > 0 and summary.text().startswith("2 frames, ")

    resumed = backend_job(tmp_path, scenario, out).wait()  # resume: skipped frames count
    assert resumed.succeeded
    assert (resumed.total, resumed.skipped, resumed.done) == (4, 2, 4)


def test_a_real_bad_input_run_reports_its_error(tmp_path):
    backend_process = addon_module("core.backend_process")
    argv = backend_process.render_argv([sys.executable, "-m", "gs_backend"],
                                       tmp_path / "missing.json", tmp_path / "out")
    job = backend_process.BackendJob(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                     cwd=ROOT, out_dir=tmp_path / "out")
    state = job.wait()
    assert state.returncode == ExitCode.BAD_INPUT and not state.succeeded
    assert state.error == f"{tmp_path / 'missing.json'}: file not found"
    assert state.status_text() == f"Failed: {state.error}"


def test_a_real_interrupted_run_is_reported_as_cancelled(tmp_path):
    scenario = write_scenario(tmp_path, frames=8)
    out = tmp_path / "out"
    # The run needs the folder's lock to claim the folder, so while this test holds it
    # the run waits, however fast it renders; its private lock file (what it links to
    # the lock's name) says it is waiting, with its signal handling in place.
    with folder_locked(out):
        job = backend_job(tmp_path, scenario, out)
        waiting = f"{DatasetLayout(out).lock_file.name}~*~{job.process.pid}~*.tmp"
        while not list(out.glob(waiting)):
            assert not job.poll().finished, job.stderr_tail
            time.sleep(0.02)
        job.request_cancel()
        state = job.wait()
    assert state.returncode == ExitCode.INTERRUPTED and state.interrupted, job.stderr_tail
    assert state.error == "interrupted; finished frames are kept, run the same command to " \
                          "resume"
    assert state.status_text().startswith("Cancelled after ")


if __name__ == "__main__":
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(f"{head}{BEGIN}\n\n{reference_markdown()}\n{END}{tail}", encoding="utf-8")
    print(f"wrote {DOC}")
