"""COCO RLE (against pycocotools) and whole COCO files (load, masks, evaluation)."""

from __future__ import annotations

import contextlib
import io
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gs_backend.labels import (
    coco_annotation,
    coco_categories,
    coco_category_id,
    coco_document,
    coco_image,
    instance_stats,
    rle_counts,
    rle_encode,
    visible_instance_map,
)

# pycocotools' decode trips a numpy 2 deprecation warning inside pycocotools itself.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def pycoco_encode(mask: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def blobs(rng: np.random.Generator, shape: tuple[int, int], count: int) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for _ in range(count):
        centre = (int(rng.integers(0, shape[1])), int(rng.integers(0, shape[0])))
        axes = (int(rng.integers(1, max(2, shape[1] // 4))),
                int(rng.integers(1, max(2, shape[0] // 4))))
        cv2.ellipse(out, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return out.astype(bool)


def rle_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(1234)
    cases = [
        ("empty", np.zeros((7, 9), bool)),
        ("full", np.ones((7, 9), bool)),
        ("1x1 on", np.ones((1, 1), bool)),
        ("1x1 off", np.zeros((1, 1), bool)),
    ]
    for y, x in [(0, 0), (6, 8), (0, 8), (6, 0), (3, 4)]:
        m = np.zeros((7, 9), bool)
        m[y, x] = True
        cases.append((f"pixel {y},{x}", m))
    for n in (1, 2, 37, 500):
        cases.append((f"1x{n}", rng.random((1, n)) < 0.5))
        cases.append((f"{n}x1", rng.random((n, 1)) < 0.5))
    for i in range(20):
        shape = (int(rng.integers(1, 120)), int(rng.integers(1, 120)))
        cases.append((f"noise {i}", rng.random(shape) < rng.random()))
        cases.append((f"blobs {i}", blobs(rng, shape, int(rng.integers(1, 6)))))
    big = blobs(rng, (1080, 1920), 8)
    cases.append(("large blobs", big))
    cases.append(("large noise", rng.random((480, 640)) < 0.3))  # long run-length lists
    cases.append(("large first pixel set", np.pad(big[:, 1:], ((0, 0), (1, 0)),
                                                  constant_values=True)))
    return cases


RLE_CASES = rle_cases()


@pytest.mark.parametrize("name,mask", RLE_CASES, ids=[c[0] for c in RLE_CASES])
def test_rle_is_byte_identical_to_pycocotools(name, mask):
    ours = rle_encode(mask)
    theirs = pycoco_encode(mask)
    assert ours["counts"] == theirs["counts"].decode("ascii")
    assert ours["size"] == [int(v) for v in theirs["size"]] == list(mask.shape)
    # pycocotools decodes ours (str counts, as in JSON) back to the mask
    np.testing.assert_array_equal(coco_mask.decode(ours), mask.astype(np.uint8))
    assert coco_mask.area(ours) == np.count_nonzero(mask)
    assert json.loads(json.dumps(ours)) == ours  # JSON-ready


def test_rle_counts_start_with_zeros_and_sum_to_the_pixel_count():
    mask = np.array([[1, 0], [1, 1]], bool)  # column-major: 1 1 0 1
    np.testing.assert_array_equal(rle_counts(mask), [0, 2, 1, 1])
    rng = np.random.default_rng(0)
    mask = rng.random((33, 21)) < 0.4
    counts = rle_counts(mask)
    assert counts.sum() == mask.size and counts[1::2].sum() == mask.sum()


def test_rle_accepts_integer_masks_and_strided_views():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=(40, 50))
    expected = pycoco_encode(labels != 0)["counts"].decode()
    assert rle_encode(labels)["counts"] == expected  # nonzero = set
    view = (labels != 0)[::-1, ::2]
    assert rle_encode(view)["counts"] == pycoco_encode(view)["counts"].decode()


# --- whole COCO files ------------------------------------------------------------------------

CLASSES = ["needle_driver", "grasper", "scissors"]


def render_frames(rng: np.random.Generator) -> list[dict]:
    """Synthetic frames: weight planes -> instance map, with one instrument split by another."""
    frames = []
    for index, (height, width) in enumerate([(120, 160), (96, 128), (150, 200)]):
        weights = np.zeros((height, width, 3), np.float32)
        for k in range(3):
            plane = np.zeros((height, width), np.uint8)
            centre = (int(rng.integers(20, width - 20)), int(rng.integers(20, height - 20)))
            cv2.ellipse(plane, centre, (int(rng.integers(8, 40)), int(rng.integers(5, 20))),
                        float(rng.uniform(0, 180)), 0, 360, 1, -1)
            weights[..., k] = plane * rng.uniform(0.6, 1.0)
        # instrument 1 is a horizontal bar that instrument 2 cuts in two (occlusion split)
        weights[40:60, 10 : width - 10, 0] = 0.9
        weights[:, width // 2 - 8 : width // 2 + 8, 1] = 1.0
        frames.append({"id": index + 1, "name": f"frame_{index:04d}", "weights": weights,
                       "classes": [0, 1, 2]})
    return frames


def build_document(frames: list[dict]) -> tuple[dict, list[tuple[dict, np.ndarray]]]:
    images, annotations, truth = [], [], []
    for frame in frames:
        instance_map = visible_instance_map(frame["weights"], 0.5)
        height, width = instance_map.shape
        images.append(coco_image(frame["id"], f"{frame['name']}.png", width, height))
        for iid, stats in instance_stats(instance_map, 3).items():
            mask = instance_map == iid
            ann = coco_annotation(len(annotations) + 1, frame["id"],
                                  coco_category_id(frame["classes"][iid - 1]), mask, stats.box)
            annotations.append(ann)
            truth.append((ann, mask))
    return coco_document(images, annotations, coco_categories(CLASSES),
                         info={"description": "test"}), truth


def load_quietly(path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


@pytest.fixture(scope="module")
def coco_file(tmp_path_factory):
    frames = render_frames(np.random.default_rng(7))
    document, truth = build_document(frames)
    path = tmp_path_factory.mktemp("coco") / "instances_train.json"
    path.write_text(json.dumps(document))
    return path, truth


def test_coco_file_loads_and_masks_round_trip(coco_file):
    path, truth = coco_file
    coco = load_quietly(path)
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    assert len(coco.getAnnIds()) == len(truth) >= 8
    split = 0
    for ann, mask in truth:
        loaded = coco.loadAnns([ann["id"]])[0]
        np.testing.assert_array_equal(coco.annToMask(loaded), mask.astype(np.uint8))
        assert loaded["area"] == np.count_nonzero(mask)
        ys, xs = np.nonzero(mask)
        assert loaded["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                  ys.max() - ys.min() + 1]
        np.testing.assert_array_equal(coco_mask.toBbox(loaded["segmentation"]), loaded["bbox"])
        assert loaded["iscrowd"] == 0
        image = coco.loadImgs([ann["image_id"]])[0]
        assert (image["height"], image["width"]) == mask.shape
        fragments, _ = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        split += fragments - 1 > 1
    assert split >= 3  # the occlusion-split instrument in every frame


def test_coco_categories_are_class_index_plus_one(coco_file):
    path, _ = coco_file
    coco = load_quietly(path)
    assert coco.getCatIds() == [1, 2, 3]
    for index, name in enumerate(CLASSES):
        (category,) = coco.loadCats([index + 1])
        assert category == {"id": index + 1, "name": name, "supercategory": "instrument"}
    assert coco.getCatIds(catNms=["grasper"]) == [2]


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_ground_truth_scores_perfectly_against_itself(coco_file, iou_type):
    path, truth = coco_file
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = COCO(str(path))
        detections = []
        for ann, _ in truth:
            det = {"image_id": ann["image_id"], "category_id": ann["category_id"], "score": 1.0}
            if iou_type == "bbox":
                det["bbox"] = ann["bbox"]
            else:
                det["segmentation"] = ann["segmentation"]
            detections.append(det)
        evaluation = COCOeval(gt, gt.loadRes(detections), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP @ IoU 0.50:0.95
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP @ IoU 0.50
    assert evaluation.stats[8] == pytest.approx(1.0)  # AR, 100 detections


def test_document_layout_and_annotation_checks():
    document = coco_document([], [], coco_categories(["a"]))
    assert set(document) == {"info", "licenses", "images", "annotations", "categories"}
    assert document["info"] == {}
    mask = np.zeros((4, 5), bool)
    mask[1:3, 2] = True
    stats = instance_stats(mask.astype(np.uint16), 1)[1]
    ann = coco_annotation(1, 1, 1, mask, stats.box)
    assert ann["bbox"] == [2, 1, 1, 2] and ann["area"] == 2 and ann["iscrowd"] == 0
    with pytest.raises(ValueError):
        coco_annotation(0, 1, 1, mask, stats.box)  # COCOeval cannot match id 0
