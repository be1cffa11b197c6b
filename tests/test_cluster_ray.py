"""``gs-backend render --ray`` on a real local Ray cluster (2 CPUs): the dataset equals a
single-process render byte for byte, and a run whose workers are killed resumes.
Skipped when Ray is not installed (``make setup`` installs it)."""

from __future__ import annotations

import json

import pytest

from gs_backend.cli import main
from gs_contract.protocol import FrameEvent, LogEvent
from tests.dataset_compare import assert_same_dataset
from tests.scenario_factory import write_scenario

ray = pytest.importorskip("ray")

FRAMES = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray cluster for the module (starting one takes seconds), and the
    single-process reference dataset."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    folder = tmp_path_factory.mktemp("ray")
    scenario = write_scenario(folder, frames=FRAMES)
    assert main(["render", str(scenario), "--out", str(folder / "whole"), "--device", "cpu",
                 "--progress", "none"]) == 0
    yield scenario, folder / "whole"
    ray.shutdown()


def render_ray(scenario, out, *extra) -> int:
    return main(["render", str(scenario), "--out", str(out), "--device", "cpu",
                 "--progress", "none", "--ray", *extra])


class KillWorkers:
    """A progress sink that kills ``count`` of the Ray workers at the first frame."""

    def __init__(self, count: int) -> None:
        self.count, self.events = count, []

    def emit(self, event) -> None:
        self.events.append(event)
        if isinstance(event, FrameEvent) and event.done == 1:
            from gs_backend.cluster.ray_render import ACTOR_NAME_PREFIX

            names = sorted(n for n in ray.util.list_named_actors()
                           if n.startswith(ACTOR_NAME_PREFIX))
            assert len(names) == 2
            for name in names[:self.count]:
                ray.kill(ray.get_actor(name), no_restart=True)


def test_two_workers_render_what_one_process_renders(cluster, tmp_path):
    scenario, whole = cluster
    out = whole.parent / tmp_path.name  # beside the reference: same relative asset paths
    assert render_ray(scenario, out, "--ray-workers", "2") == 0
    assert_same_dataset(whole, out)
    runs = [json.loads(p.read_text()) for p in (out / ".gs-render" / "runs").glob("*.json")]
    assert [(r["shard"], r["device"]) for r in runs] == [([0, 1], "cpu")]
    assert runs[0]["finished"] is not None


def run_with_kills(scenario, out, count: int):
    from gs_backend.cluster.ray_render import render_dataset_ray
    from gs_backend.dataset.render_run import FrameSelection
    from gs_contract.scenario import load_scenario

    sink = KillWorkers(count)
    render_dataset_ray(load_scenario(scenario), out, FrameSelection(), device="cpu",
                       overwrite=False, rasterizer="auto", progress=sink, workers=2)
    return sink


def test_a_killed_worker_hands_its_frames_to_the_other(cluster, tmp_path):
    scenario, whole = cluster
    out = whole.parent / tmp_path.name
    sink = run_with_kills(scenario, out, 1)
    assert [e for e in sink.events if isinstance(e, LogEvent) and "died" in e.message]
    assert sink.events[-1].frames_done == FRAMES
    assert_same_dataset(whole, out)


def test_a_run_whose_workers_all_die_resumes(cluster, tmp_path):
    from gs_contract.errors import InputError

    scenario, whole = cluster
    out = whole.parent / tmp_path.name
    with pytest.raises(InputError, match="every Ray worker died"):
        run_with_kills(scenario, out, 2)
    records = list((out / ".gs-render" / "frames").glob("*.json"))
    assert 1 <= len(records) < FRAMES
    assert render_ray(scenario, out) == 0
    assert_same_dataset(whole, out)


def test_a_bad_asset_is_one_line_and_leaves_the_folder_untouched(cluster, tmp_path, capsys):
    """A worker that cannot load an asset: exit 2 naming the file, as without Ray."""
    import shutil

    scenario, _ = cluster
    folder = tmp_path / "bad"
    shutil.copytree(scenario.parent / "assets", folder / "assets")
    shutil.copy(scenario, folder / "scenario.json")
    (folder / "assets" / "tool.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\n")
    capsys.readouterr()
    assert render_ray(folder / "scenario.json", folder / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tool.ply" in err[0] and "assets.tool.ply" in err[0], err
    assert not (folder / "out").exists()
