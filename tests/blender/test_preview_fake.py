"""``gsds.preview_frame``, Live Preview and the sidecar's panel state, against a scripted
sidecar (``fake_sidecar``): what is sent, where the image lands, how each failure shows.
The timer body (``live_preview.tick``) is called directly (timers never fire under the
bpy module); the debounce runs on a fake clock. ``test_preview_real.py`` does the same
against a real ``gs-backend serve``."""

from __future__ import annotations

import json
import threading

import bpy
import numpy as np
import pytest
from fake_sidecar import TOKEN, FakeSidecar, Reply, healthy, png_bytes
from scene_factory import build_small_scene

from blender_addon.blender import live_preview, panels, preview_image, sidecar_session
from blender_addon.blender.operators_export import build_scene_scenario
from gs_contract.scenario import blender_frame_name
from gs_contract.sidecar import (
    API_VERSION,
    RENDER_TIME_HEADER,
    ROUTE_PREVIEW,
    error_body,
    write_token_file,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def picture(seed: int, width: int = 64, height: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_rgb(image) -> np.ndarray:
    """An image's pixels as uint8 ``[H, W, 3]``, top row first."""
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return np.round(pixels.reshape(height, width, 4)[::-1, :, :3] * 255).astype(np.uint8)


def state():
    return bpy.context.window_manager.gsds_sidecar


@pytest.fixture
def scene(addon, tmp_path):
    (tmp_path / "assets").mkdir()
    scene = build_small_scene(tmp_path / "assets", frame_end=4, class_name="needle_driver",
                              gaussians=50, end_location=(0.3, 0.1, 2.0))
    yield scene
    state().live_preview = False
    sidecar_session.stop()
    sidecar_session.forget_overrides()
    live_preview.reset()


@pytest.fixture
def fake(tmp_path):
    with FakeSidecar() as server:
        server.token_file = tmp_path / "token"
        write_token_file(server.token_file, TOKEN)
        yield server


def connect(fake, context=None):
    current = sidecar_session.connect(context or bpy.context, mode='REMOTE', url=fake.url,
                                      token_file=str(fake.token_file))
    current.wait_ready(30)
    sidecar_session.sync()
    return current


def answer_with(image: np.ndarray, seconds: str = "0.25"):
    return Reply(200, "image/png", png_bytes(image), {RENDER_TIME_HEADER: seconds})


def preview_bodies(fake) -> list[dict]:
    return [json.loads(body) for method, path, _, body in fake.requests
            if (method, path) == ("POST", ROUTE_PREVIEW)]


def test_preview_frame_sends_the_exported_frame_and_fills_gs_preview(scene, fake, tmp_path):
    expected = picture(1)
    fake.answers[("POST", ROUTE_PREVIEW)] = answer_with(expected)
    connect(fake)
    assert (state().phase, state().message) == \
        ('READY', f"Sidecar at {fake.url}: gs-backend 9.9.9 on cpu (torch)")
    scene.frame_set(3)
    images_before = set(bpy.data.images.keys())

    assert bpy.ops.gsds.preview_frame() == {'FINISHED'}

    image = bpy.data.images[preview_image.PREVIEW_IMAGE]
    assert tuple(image.size) == (64, 48)
    np.testing.assert_array_equal(image_rgb(image), expected)
    assert set(bpy.data.images.keys()) == images_before | {"GS Preview"}  # no scratch left
    assert state().preview_status.startswith("Frame 3: 64 x 48 px (render 0.25 s, total ")
    done = live_preview.last_preview()
    assert done.frame == 3 and done.render_s == pytest.approx(0.25)

    # the request: the scene exactly as the export builds it, for this frame alone
    (body,) = preview_bodies(fake)
    assert (body["frame"], body["overlay"], body["scale"]) == (0, False, 1.0)
    exported = build_scene_scenario(bpy.context, tmp_path / "assets" / "scenario.json", 'ALL')
    (frame,) = body["scenario"]["frames"]
    assert frame == next(f for f in exported["frames"] if f["name"] == blender_frame_name(3))
    assert body["base_dir"] == str(tmp_path / "assets")
    assert body["scenario"]["assets"] == exported["assets"]
    assert body["scenario"]["objects"] == exported["objects"]
    assert scene.frame_current == 3


def test_a_second_preview_replaces_the_pixels_in_place(scene, fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = answer_with(picture(1))
    connect(fake)
    bpy.ops.gsds.preview_frame()
    image = bpy.data.images["GS Preview"]
    smaller = picture(2, 32, 24)
    fake.answers[("POST", ROUTE_PREVIEW)] = answer_with(smaller)
    state().preview_scale = 0.5
    bpy.ops.gsds.preview_frame()
    assert bpy.data.images["GS Preview"] == image  # the same image, resized
    assert tuple(image.size) == (32, 24)
    np.testing.assert_array_equal(image_rgb(image), smaller)
    assert preview_bodies(fake)[-1]["scale"] == 0.5


@pytest.mark.parametrize("case", ["down", "token", "version"])
def test_unusable_sidecar_gives_one_plain_message_and_retry(scene, fake, case, fake_layout):
    if case == "down":
        url = fake.url
        fake.__exit__()  # nothing listens there any more
        current = sidecar_session.connect(bpy.context, mode='REMOTE', url=url,
                                          token_file=str(fake.token_file))
        expected = f"No sidecar is running at {url} (connection refused)"
    else:
        if case == "token":
            write_token_file(fake.token_file, "stale-token")
            expected = (f"The sidecar at {fake.url} refused the token in {fake.token_file} "
                        "(401): check the token file, or restart the sidecar")
        else:
            fake.answers[("GET", "/v1/health")] = healthy(api=API_VERSION + 1)
            expected = (f"The sidecar at {fake.url} cannot be used: the sidecar speaks API "
                        f"v{API_VERSION + 1}, this client v{API_VERSION}: update the backend "
                        "(gs-backend 9.9.9) or the add-on")
        current = sidecar_session.connect(bpy.context, mode='REMOTE', url=fake.url,
                                          token_file=str(fake.token_file))
    assert not current.wait_ready(30)
    sidecar_session.sync()
    assert (state().phase, state().message) == ('ERROR', expected)
    layout = fake_layout()
    panels.GSDS_PT_preview.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert expected in layout.labels()
    retry = [kwargs for args, kwargs in layout.called("operator")
             if args == ("gsds.sidecar_connect",)]
    assert retry and retry[0]["text"] == "Retry"
    # the preview operator tries again and reports the same message instead of an image
    with pytest.raises(RuntimeError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        bpy.ops.gsds.preview_frame()
    assert "GS Preview" not in bpy.data.images
    assert state().message == expected


def test_retry_after_the_token_is_fixed(scene, fake):
    write_token_file(fake.token_file, "stale-token")
    assert not connect(fake).phase == 'READY'
    write_token_file(fake.token_file, TOKEN)
    assert connect(fake).phase == 'READY'  # what the Retry button does
    assert state().phase == 'READY'


def test_a_refused_request_keeps_the_sidecar(scene, fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply.json(
        error_body("asset file not found", "scenario.assets.tissue.ply"), 422)
    connect(fake)
    with pytest.raises(RuntimeError, match="asset file not found"):
        bpy.ops.gsds.preview_frame()
    assert state().preview_status == \
        "Preview failed: scenario.assets.tissue.ply: asset file not found"
    assert state().phase == 'READY'


def test_sidecar_going_away_during_a_preview_offers_retry(scene, fake):
    fake.answers[("POST", ROUTE_PREVIEW)] = Reply(body=None)  # hangs, then hangs up
    connect(fake)
    live_preview.request_preview(bpy.context)
    fake.release.set()
    outcome = live_preview.wait_for_preview(bpy.context, 30)
    assert outcome is None
    assert state().phase == 'ERROR'
    assert state().message.startswith(f"The connection to the sidecar at {fake.url} broke")


def test_live_preview_debounced_latest_wins(scene, fake):
    """Frame changes mark the preview dirty; it renders once they settle; a request
    superseded while in flight has its result dropped."""
    gates = {2: threading.Event(), 4: threading.Event()}

    def render(body: bytes) -> Reply:
        frame = int(json.loads(body)["scenario"]["frames"][0]["name"].rsplit("_", 1)[1])
        return Reply(200, "image/png", [gates[frame], png_bytes(picture(frame))])

    fake.answers[("POST", ROUTE_PREVIEW)] = render
    connect(fake)
    clock = FakeClock()
    live_preview.debouncer(clock)
    state().live_preview = True  # switching on marks the preview dirty
    live_preview.debouncer().clear()

    scene.frame_set(2)  # frame_change_post: dirty
    assert live_preview.debouncer().dirty
    live_preview.tick()
    assert preview_bodies(fake) == []  # not yet: changes may still come
    clock.now += 0.3
    live_preview.tick()  # quiet for 0.25 s: frame 2 is sent
    worker = live_preview.worker()
    assert worker.busy and not live_preview.debouncer().dirty

    scene.frame_set(4)
    clock.now += 0.3
    live_preview.tick()  # frame 4 waits for the one in flight
    assert worker.latest == 2 and worker.busy
    gates[2].set()  # frame 2 finishes: stale, dropped; frame 4 is sent
    gates[4].set()
    assert live_preview.wait_for_preview(bpy.context, 30) is not None
    assert worker.dropped == 1
    np.testing.assert_array_equal(image_rgb(bpy.data.images["GS Preview"]), picture(4))
    assert live_preview.last_preview().frame == 4
    frames = [b["scenario"]["frames"][0]["name"] for b in preview_bodies(fake)]
    assert frames == [blender_frame_name(2), blender_frame_name(4)]
    # showing the result is no scene change: nothing more to render
    live_preview.tick()
    assert not live_preview.debouncer().dirty and not worker.busy


def test_live_preview_off_ignores_changes(scene, fake):
    connect(fake)
    live_preview.debouncer(FakeClock())
    scene.frame_set(2)
    bpy.data.objects["driver"].location.x += 0.1
    bpy.context.view_layer.update()
    assert not live_preview.debouncer().dirty


def test_edits_mark_the_live_preview_dirty_and_the_gather_does_not(scene, fake):
    connect(fake)
    live_preview.debouncer(FakeClock())
    state().live_preview = True
    live_preview.debouncer().clear()
    bpy.data.objects["driver"].location.x += 0.1  # an edit: depsgraph_update_post
    bpy.context.view_layer.update()
    assert live_preview.debouncer().dirty
    live_preview.debouncer().clear()
    live_preview.build_preview_body(bpy.context)  # steps frames itself: no change
    assert not live_preview.debouncer().dirty
    assert live_preview.relevant(['IMAGE', 'SCREEN']) is False
    assert live_preview.relevant(['IMAGE', 'OBJECT']) is True


def test_preview_in_camera_view(scene):
    state().preview_in_camera = True
    camera = scene.camera.data
    (entry,) = [bg for bg in camera.background_images if bg.image is not None]
    assert entry.image.name == "GS Preview" and camera.show_background_images
    state().preview_in_camera = False
    assert not any(bg.image and bg.image.name == "GS Preview"
                   for bg in camera.background_images)


def test_preview_panel_draws(scene, fake_layout):
    layout = fake_layout()
    panels.GSDS_PT_preview.draw(type("P", (), {"layout": layout})(), bpy.context)
    assert "gsds.preview_frame" in layout.operators()
    assert "gsds.sidecar_connect" in layout.operators()
    assert {"live_preview", "preview_scale", "preview_overlay", "preview_in_camera"} \
        <= set(layout.props())
