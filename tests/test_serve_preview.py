"""The sidecar's preview in-process (FastAPI TestClient): the PNG is the dataset's image,
scale and overlay, the caches, and errors as {"error", "field"}."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from gs_backend.cli import main
from gs_backend.contact_sheet import instance_color
from gs_backend.frame_renderer import PreparedAsset
from gs_backend.serve.asset_cache import AssetCache, asset_nbytes
from gs_contract.scenario import parse_scenario
from gs_contract.sidecar import RENDER_TIME_HEADER, preview_request
from tests.scenario_factory import scenario_dict, write_assets
from tests.serve_helpers import AUTH, make_app, make_state


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A folder with assets, the scenario dict, and the CLI's dataset of it."""
    folder = tmp_path_factory.mktemp("preview")
    write_assets(folder / "assets")
    data = scenario_dict(3)
    (folder / "scenario.json").write_text(json.dumps(data))
    out = folder / "dataset"
    assert main(["render", str(folder / "scenario.json"), "--out", str(out),
                 "--progress", "none", "--device", "cpu"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    return folder, data, out, {f["name"]: f for f in manifest["frames"]}


@pytest.fixture()
def client():
    with TestClient(make_app(), raise_server_exceptions=False) as c:
        yield c


def decode(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def post_preview(client, body, headers=AUTH):
    return client.post("/v1/preview", json=body, headers=headers)


def test_preview_is_the_rendered_dataset_image_pixel_for_pixel(client, scene) -> None:
    folder, data, out, frames = scene
    for index, name in enumerate(frames):
        r = post_preview(client, preview_request(data, index, base_dir=folder))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        assert float(r.headers[RENDER_TIME_HEADER]) > 0
        written = (out / frames[name]["image"]).read_bytes()
        np.testing.assert_array_equal(decode(r.content), decode(written))
        assert r.content == written  # same pixels, same encoder


def test_preview_by_frame_name(client, scene) -> None:
    folder, data, _, _ = scene
    by_name = post_preview(client, preview_request(data, "frame_0002", base_dir=folder))
    by_index = post_preview(client, preview_request(data, 1, base_dir=folder))
    assert by_name.status_code == 200 and by_name.content == by_index.content


def test_scale_renders_the_same_camera_smaller(client, scene, tmp_path) -> None:
    """Oracle: the CLI rendering a scenario whose camera was made smaller by hand (K's x
    row times w'/w, y row times h'/h)."""
    folder, data, _, _ = scene
    r = post_preview(client, preview_request(data, 0, base_dir=folder, scale=0.5))
    assert r.status_code == 200, r.text
    image = decode(r.content)
    assert image.shape == (24, 32, 3)

    small = copy.deepcopy(data)
    small["assets"] = {k: {"ply": str(folder / v["ply"])} for k, v in data["assets"].items()}
    for frame in small["frames"]:
        cam = frame["camera"]
        cam["K"] = [[v * 0.5 for v in cam["K"][0]], [v * 0.5 for v in cam["K"][1]], [0, 0, 1]]
        cam["width"], cam["height"] = 32, 24
    (tmp_path / "small.json").write_text(json.dumps(small))
    assert main(["render", str(tmp_path / "small.json"), "--out", str(tmp_path / "out"),
                 "--progress", "none", "--device", "cpu", "--frames", "0"]) == 0
    written = next((tmp_path / "out" / "images").rglob("frame_0001.png"))
    np.testing.assert_array_equal(image, decode(written.read_bytes()))


def test_overlay_draws_boxes_in_instance_colours(client, scene) -> None:
    folder, data, _, frames = scene
    plain = decode(post_preview(client, preview_request(data, 0, base_dir=folder)).content)
    r = post_preview(client, preview_request(data, 0, base_dir=folder, overlay=True))
    assert r.status_code == 200
    drawn = decode(r.content)
    assert drawn.shape == plain.shape and not np.array_equal(drawn, plain)
    boxed = [i for i in frames["frame_0001"]["instances"] if i["box"]]
    assert boxed
    for inst in boxed:  # the box's edges are drawn in the instance's colour
        x0, y0, x1, y1 = inst["box"]
        edges = np.concatenate([drawn[y0:y1, x0], drawn[y0:y1, x1 - 1],
                                drawn[y0, x0:x1], drawn[y1 - 1, x0:x1]])[:, ::-1]
        colour = np.array(instance_color(inst["id"]), np.uint8)
        assert (edges == colour).all(axis=1).mean() > 0.5, inst
    # Away from every box (and its name tag above it) the picture is untouched.
    far = np.ones(plain.shape[:2], bool)
    for inst in boxed:
        x0, y0, x1, y1 = inst["box"]
        far[max(0, y0 - 20):y1 + 2, :] = False
        far[:, max(0, x0 - 2):x1 + 2] = False
    np.testing.assert_array_equal(drawn[far], plain[far])


def test_second_preview_of_the_same_scene_reads_no_file(client, scene) -> None:
    """Counted with an audit hook: every open() of a file in the scene's folder."""
    folder, data, _, _ = scene
    body = preview_request(data, 0, base_dir=folder)
    opened: list[str] = []
    watching = [False]

    def hook(event: str, args: tuple) -> None:
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if path.startswith(str(folder)):
                opened.append(path)

    sys.addaudithook(hook)
    watching[0] = True
    try:
        first = post_preview(client, body)
        assert first.status_code == 200
        assert any(p.endswith(".ply") for p in opened), opened  # the hook sees reads
        opened.clear()
        second = post_preview(client, body)
    finally:
        watching[0] = False
    assert second.status_code == 200 and second.content == first.content
    assert opened == []


def test_an_edited_asset_file_is_loaded_again(scene, tmp_path) -> None:
    data = scene[1]
    local = tmp_path / "scene"
    write_assets(local / "assets")
    state = make_state()
    with TestClient(make_app(state)) as client:
        body = preview_request(data, 0, base_dir=local)
        assert post_preview(client, body).status_code == 200
        loads = state.previews.cache.stats.loads
        assert post_preview(client, body).status_code == 200
        assert state.previews.cache.stats.loads == loads  # all hits
        ply = local / "assets" / "tissue.ply"
        os.utime(ply, ns=(ply.stat().st_atime_ns, ply.stat().st_mtime_ns + 10**9))
        assert post_preview(client, body).status_code == 200
        assert state.previews.cache.stats.loads == loads + 1


def test_asset_cache_bound_evicts_least_recently_used(scene) -> None:
    folder, data, _, _ = scene
    scenario = parse_scenario(data, folder / "scenario.json")
    probe = AssetCache(torch.device("cpu"))
    sizes = {name: asset_nbytes(probe.get(scenario, name)[1]) for name in ("tissue", "tool")}
    cache = AssetCache(torch.device("cpu"), max_bytes=max(sizes.values()) + 1)
    _, tissue = cache.get(scenario, "tissue")
    assert isinstance(tissue, PreparedAsset) and cache.nbytes == sizes["tissue"]
    cache.get(scenario, "tool")  # both do not fit: tissue (least recent) leaves
    assert len(cache) == 1 and cache.nbytes == sizes["tool"] and cache.stats.evictions == 1
    cache.get(scenario, "tool")
    assert cache.stats.hits == 1
    cache.get(scenario, "tissue")
    assert cache.stats.loads == 3
    tiny = AssetCache(torch.device("cpu"), max_bytes=0)  # nothing is kept, all still work
    assert tiny.get(scenario, "tool")[1].gaussians.count > 0 and len(tiny) == 0


def test_posed_objects_are_reused_for_the_same_frame(client, scene, monkeypatch) -> None:
    import gs_backend.frame_renderer as fr

    folder, data, _, _ = scene
    calls = []
    real = fr.pose_gaussians
    monkeypatch.setattr(fr, "pose_gaussians", lambda g, p: calls.append(1) or real(g, p))
    body = preview_request(data, 0, base_dir=folder)
    assert post_preview(client, body).status_code == 200
    posed_first = len(calls)
    assert posed_first == 3  # scene, driver, grasper
    assert post_preview(client, body).status_code == 200
    assert len(calls) == posed_first
    moved = copy.deepcopy(data)
    moved["frames"][0]["poses"]["driver"][0][3] += 0.01
    assert post_preview(client, preview_request(moved, 0, base_dir=folder)).status_code == 200
    assert len(calls) == posed_first + 1  # only the moved object


@pytest.mark.parametrize(("change", "status", "field"), [
    (lambda b: b.update(frame=7), 400, "frame"),
    (lambda b: b.update(frame="nope"), 400, "frame"),
    (lambda b: b.update(scale=2), 400, "scale"),
    (lambda b: b.update(colour=1), 400, "colour"),
    (lambda b: b.update(base_dir="relative/dir"), 400, "base_dir"),
    (lambda b: b.update(base_dir=None), 400, "scenario.assets.tissue.ply"),
    (lambda b: b["scenario"].update(version=2), 400, "scenario.version"),
    (lambda b: b["scenario"]["frames"][0]["camera"].update(K="no"),
     400, "scenario.frames[0].camera.K"),
])
def test_bad_preview_requests_name_the_field(client, scene, change, status, field) -> None:
    folder, data, _, _ = scene
    body = preview_request(copy.deepcopy(data), 0, base_dir=folder)
    change(body)
    r = post_preview(client, body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "field"} and r.json()["field"] == field


def test_missing_asset_file_is_a_400_naming_it(client, scene, tmp_path) -> None:
    data = scene[1]
    r = post_preview(client, preview_request(data, 0, base_dir=tmp_path))
    assert r.status_code == 400 and "tissue.ply" in r.json()["error"]


def test_body_not_json_and_body_too_large(client) -> None:
    r = client.post("/v1/preview", content=b"{not json", headers=AUTH)
    assert r.status_code == 400 and r.json()["field"] is None
    r = client.post("/v1/preview", content=b"[" * 100000 + b"]" * 100000, headers=AUTH)
    assert r.status_code == 400
    r = client.post("/v1/preview", content=b" " * ((1 << 20) + 1), headers=AUTH)
    assert r.status_code == 413 and set(r.json()) == {"error", "field"}


def test_auth(client, scene) -> None:
    folder, data, _, _ = scene
    body = preview_request(data, 0, base_dir=folder)
    health = client.get("/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": AUTH[
            "Authorization"][7:]}, {"Authorization": AUTH["Authorization"] + "x"}):
        r = post_preview(client, body, headers=headers)
        assert r.status_code == 401 and set(r.json()) == {"error", "field"}
        assert client.get("/v1/renders/x", headers=headers).status_code == 401
        assert client.get("/v1/nowhere", headers=headers).status_code == 401
    assert client.get("/v1/nowhere", headers=AUTH).status_code == 404
    r = client.put("/v1/health")
    assert r.status_code == 405 and set(r.json()) == {"error", "field"}


def test_openapi_documents_the_contract_fields(client) -> None:
    from gs_contract.sidecar import PREVIEW_FIELDS, RENDER_JOB_FIELDS

    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/health", "/v1/preview", "/v1/renders", "/v1/renders/{job_id}",
            "/v1/renders/{job_id}/events"} <= set(paths)
    preview = paths["/v1/preview"]["post"]["requestBody"]["content"]["application/json"]
    assert tuple(preview["schema"]["properties"]) == PREVIEW_FIELDS
    renders = paths["/v1/renders"]["post"]["requestBody"]["content"]["application/json"]
    assert tuple(renders["schema"]["properties"]) == RENDER_JOB_FIELDS
    assert paths["/v1/health"]["get"]["security"] == []


def test_scene_folder_unchanged_by_previews(scene) -> None:
    folder = scene[0]
    assert sorted(p.name for p in Path(folder).iterdir()) == ["assets", "dataset",
                                                              "scenario.json"]
