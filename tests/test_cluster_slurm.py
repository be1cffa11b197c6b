"""Job arrays: ``--shard auto`` from the scheduler's variables (set by the test),
``gs-backend status`` and ``gs-backend finalize`` on a folder filled by shards."""

from __future__ import annotations

import json
import os
import signal

import pytest

from gs_backend.cli import main
from gs_backend.cluster.scheduler import SGE_VARS, SLURM_VARS, shard_from_environment
from gs_backend.dataset.writes import FAULT_ENV, host_tag
from gs_contract.errors import InputError
from tests.dataset_compare import assert_same_dataset, start_render
from tests.scenario_factory import write_scenario

FRAMES = 5


def slurm(task: int, count: int, first: int = 0, step: int = 1) -> dict[str, str]:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(first),
            "SLURM_ARRAY_TASK_MAX": str(first + (count - 1) * step),
            "SLURM_ARRAY_TASK_STEP": str(step), "SLURM_ARRAY_TASK_COUNT": str(count)}


@pytest.mark.parametrize(("env", "want"), [
    (slurm(0, 4), (0, 4, "slurm")),
    (slurm(3, 4), (3, 4, "slurm")),
    (slurm(1, 4, first=1), (0, 4, "slurm")),  # --array=1-4
    (slurm(4, 4, first=1), (3, 4, "slurm")),
    (slurm(10, 3, first=6, step=2), (2, 3, "slurm")),  # --array=6-10:2
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3"},
     (2, 3, "slurm")),  # no STEP, no MAX (older Slurm): a plain range
    ({"SGE_TASK_ID": "5", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "9",
      "SGE_TASK_STEPSIZE": "2"}, (2, 5, "sge")),  # qsub -t 1-9:2
    ({"SGE_TASK_ID": "1", "SGE_TASK_FIRST": "1", "SGE_TASK_LAST": "1",
      "SGE_TASK_STEPSIZE": "1"}, (0, 1, "sge")),
])
def test_shard_from_the_array_variables(env, want):
    assert shard_from_environment(env) == want


@pytest.mark.parametrize(("env", "words"), [
    ({}, ["SLURM_ARRAY_TASK_ID", "--shard I/N"]),
    ({"SGE_TASK_ID": "undefined"}, ["SLURM_ARRAY_TASK_ID", "--shard I/N"]),  # not an array
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"},
     ["SLURM_ARRAY_TASK_ID", "'x'"]),
    ({**slurm(1, 3), "SLURM_ARRAY_TASK_MAX": "9"}, ["SLURM_ARRAY_TASK_COUNT", "index list"]),
    ({**slurm(0, 3), "SLURM_ARRAY_TASK_ID": "5"}, ["SLURM_ARRAY_TASK_ID", "5"]),
    ({**slurm(0, 3, step=2), "SLURM_ARRAY_TASK_ID": "1"}, ["SLURM_ARRAY_TASK_ID", "steps of 2"]),
])
def test_bad_or_missing_array_variables_are_named(env, words):
    with pytest.raises(InputError) as info:
        shard_from_environment(env)
    assert all(w in info.value.message for w in words), info.value.message


@pytest.fixture
def no_scheduler(monkeypatch):
    """The test sets the scheduler's variables itself (CI may itself run under Slurm)."""
    for name in (*SLURM_VARS, *SGE_VARS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def render(scenario, out, *extra) -> int:
    return main(["render", str(scenario), "--out", str(out), "--progress", "none", *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm")
    scenario = write_scenario(folder, frames=FRAMES)
    assert render(scenario, folder / "whole") == 0
    return scenario, folder / "whole"


def status(out) -> dict:
    return json.loads(status_text(out, "--json"))


def status_text(out, *extra) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["status", str(out), *extra]) == 0
    return buf.getvalue()


def test_a_slurm_array_starting_at_1_renders_the_dataset(reference, no_scheduler, tmp_path,
                                                         capsys):
    """``sbatch --array=1-3``: three tasks with --shard auto, one missing at first."""
    scenario, whole = reference
    out = whole.parent / tmp_path.name
    for task in (1, 3):
        for name, value in slurm(task, 3, first=1).items():
            no_scheduler.setenv(name, value)
        assert render(scenario, out, "--shard", "auto") == 0
    st = status(out)
    assert st["frames_done"] == 3 and not st["complete"] and not st["finalized"]
    # Task 2 (shard 1/3) never ran: its frames 1 and 4 are missing, and named as its.
    assert st["missing"] == [{"frame": "frame_0002", "shards": ["1/3 (not started)"]},
                             {"frame": "frame_0005", "shards": ["1/3 (not started)"]}]
    assert sorted((r["shard"], r["state"], r["done"], r["frames"]) for r in st["runs"]) == [
        ("0/3", "finished", 2, 2), ("2/3", "finished", 1, 1)]
    assert st["lock"] is None and st["temp_files"] == []
    capsys.readouterr()
    assert main(["finalize", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 of 5 frames" in err[0] and "frame_0002, frame_0005" in err[0]

    for name, value in slurm(2, 3, first=1).items():
        no_scheduler.setenv(name, value)
    assert render(scenario, out, "--shard", "auto") == 0
    st = status(out)
    assert st["complete"] and st["finalized"] and st["missing"] == []
    assert_same_dataset(whole, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["finalize", str(out)]) == 0  # idempotent: nothing changes
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_shard_auto_without_an_array_is_one_clear_line(reference, no_scheduler, tmp_path,
                                                      capsys):
    scenario, _ = reference
    assert render(scenario, tmp_path / "o", "--shard", "auto") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shard auto" in err[0] and "SLURM_ARRAY_TASK_ID" in err[0]
    assert not (tmp_path / "o").exists()


def test_finalize_writes_what_a_killed_last_shard_did_not(reference, no_scheduler, tmp_path):
    """The last shard dies after its last frame, before the dataset files: the frames are
    all there, so finalize completes the dataset (equal to the single-process one); status
    shows the dead run, its stale lock and temp file first."""
    scenario, whole = reference
    out = whole.parent / tmp_path.name
    assert render(scenario, out, "--shard", "0/2") == 0
    # shard 1/2 writes its run state, scenario.json, non_finite.json, 2 frames x 4 files,
    # then (under the folder lock) data.yaml first: it dies there, leaving the lock and a
    # temp file.
    proc = start_render(scenario, out, "--shard", "1/2", env={FAULT_ENV: "12"})
    assert proc.wait(timeout=300) == -signal.SIGKILL
    st = status(out)
    assert st["complete"] and not st["finalized"]
    assert {r["shard"]: r["state"] for r in st["runs"]} == {"0/2": "finished", "1/2": "died"}
    assert st["lock"] == {"host": host_tag(), "pid": proc.pid, "age_s": st["lock"]["age_s"],
                          "stale": True}
    assert [t["stale"] for t in st["temp_files"]] == [True]
    text = status_text(out)
    assert "5/5 frames done, not finalized" in text and "stale" in text
    assert main(["finalize", str(out)]) == 0
    assert_same_dataset(whole, out)


def test_status_and_finalize_of_a_folder_never_rendered(tmp_path, capsys):
    for command in ("status", "finalize"):
        assert main([command, str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(tmp_path) in err[0] and "claimed" in err[0]


def test_run_states_name_their_selection(reference, tmp_path):
    scenario, _ = reference
    out = tmp_path / "o"
    assert render(scenario, out, "--frames", "1:", "--shard", "1/2") == 0
    st = status(out)
    assert [(r["shard"], r["frames"], r["pid"]) for r in st["runs"]] == [
        ("1: 1/2", 2, os.getpid())]
    assert [m["frame"] for m in st["missing"]] == ["frame_0001", "frame_0002", "frame_0004"]
    # frame_0001 is outside the slice; 0002 and 0004 belong to the slice's shard 0/2.
    assert [m["shards"] for m in st["missing"]] == [
        [], ["1: 0/2 (not started)"], ["1: 0/2 (not started)"]]


def test_ray_missing_is_one_clear_line(reference, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    scenario, _ = reference
    assert render(scenario, tmp_path / "o", "--ray") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gs-backend: error: --ray: Ray is not installed: "
                   "pip install 'gs-dataset-studio[ray]' (or ray)"]
    assert not (tmp_path / "o").exists()
