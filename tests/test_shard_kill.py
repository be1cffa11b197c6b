"""Many writers into one folder, killed hard (SIGKILL) at deterministic points and run
again: the folder ends equal, byte for byte, to a single-process render.

The kill points come from ``GS_BACKEND_FAULT_KILL_AT_WRITE`` (the N-th file write of a
process dies after its temp file is written and before the rename), so each case is the
same on a fast or a slow machine: whatever the interleaving of the shards, each dies at
its own point, inside or outside the folder lock, mid-frame or while assembling."""

from __future__ import annotations

import random
import signal

import pytest

from gs_backend.cli import main
from gs_backend.dataset.writes import FAULT_ENV
from tests.dataset_compare import assert_same_dataset, start_render
from tests.scenario_factory import write_scenario

FRAMES, SHARDS = 7, 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kill")
    scenario = write_scenario(folder, frames=FRAMES)
    out = folder / "whole"
    assert main(["render", str(scenario), "--out", str(out), "--progress", "none"]) == 0
    return scenario, out


def run_shards(scenario, out, kill_at: list[int | None]) -> list[int]:
    """Run the shards together, shard i killed at its ``kill_at[i]``-th write; their exit
    codes."""
    procs = [start_render(scenario, out, "--shard", f"{i}/{len(kill_at)}",
                          env={FAULT_ENV: str(k)} if k else {})
             for i, k in enumerate(kill_at)]
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode in (0, -signal.SIGKILL), err
        codes.append(proc.returncode)
    return codes


@pytest.mark.parametrize("kill_at", [
    [1, 7, 13],  # inside the claim's lock; mid-frame; while assembling (lock held)
    "seeded",
])
def test_killed_shards_then_rerun_equal_a_single_process_render(reference, tmp_path,
                                                                 kill_at):
    scenario, whole = reference
    if kill_at == "seeded":
        kill_at = random.Random(11).choices(range(1, 25), k=SHARDS)
    out = whole.parent / tmp_path.name  # beside the reference: same relative asset paths
    codes = run_shards(scenario, out, kill_at)
    assert -signal.SIGKILL in codes  # the fault points are reached
    assert run_shards(scenario, out, [None] * SHARDS) == [0] * SHARDS
    assert_same_dataset(whole, out)


def test_a_killed_single_run_leaves_no_final_file_half_written(reference, tmp_path):
    """Killed at every other write point of a one-process run in turn (each time resuming
    the folder the previous kill left), then completed: equal to the reference."""
    scenario, whole = reference
    out = whole.parent / tmp_path.name
    for point in (2, 5, 9, 14):
        run_shards(scenario, out, [point])
    assert run_shards(scenario, out, [None]) == [0]
    assert_same_dataset(whole, out)
