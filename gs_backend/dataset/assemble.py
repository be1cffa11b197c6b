"""Dataset-wide files assembled from the per-frame records.

``manifest.json``, ``data.yaml`` and the COCO files are rebuilt from every
finished frame record in the folder, under the folder lock: they are a pure function
of the records present (and the bookkeeping), so several ``--shard`` runs into one
folder, or a resumed run, always end with one consistent dataset: the last run to
finish writes the complete files, and ``gs-backend finalize`` writes the same again.
The manifest is written last, so a complete manifest vouches for the other files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gs_backend import __version__
from gs_backend.dataset.frame_outputs import read_record, record_is_complete, write_output
from gs_backend.dataset.output_folder import folder_lock, remove_stale_temp_files
from gs_backend.labels import coco_categories, coco_document
from gs_contract.atomic import read_json_or_none
from gs_contract.dataset import MANIFEST_FORMAT, SPLITS, DatasetLayout
from gs_contract.files import portable_path
from gs_contract.scenario import Scenario

MANIFEST_VERSION = 1


def finished_records(layout: DatasetLayout, scenario: Scenario,
                     fingerprint: str) -> dict[str, dict[str, Any]]:
    """Frame name -> record, for every frame of the scenario that is completely written."""
    records: dict[str, dict[str, Any]] = {}
    for frame in scenario.frames:
        record = read_record(layout.record(frame.name))
        if record is not None and record_is_complete(layout, record, fingerprint):
            records[frame.name] = record
    return records


def assemble_dataset(layout: DatasetLayout, scenario: Scenario, fingerprint: str,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write manifest.json, data.yaml, COCO files (and scenario.json if absent), and
    remove the temp files of writers that died.

    Returns the manifest. ``extra`` is merged into the manifest's top level (e.g. the
    device); ``non_finite_dropped`` comes from the folder's bookkeeping, written by the
    last run that loaded the assets.
    """
    extra = {"non_finite_dropped": read_json_or_none(layout.non_finite_file) or {},
             **(extra or {})}
    with folder_lock(layout):
        records = finished_records(layout, scenario, fingerprint)
        frames = [records[f.name] for f in scenario.frames if f.name in records]
        manifest = build_manifest(scenario, fingerprint, frames, extra)
        write_output(layout.data_yaml, data_yaml_text(layout.root, scenario.classes))
        if scenario.output.coco:
            for split in SPLITS:
                doc = build_coco(scenario, [r for r in frames if r["split"] == split])
                write_output(layout.coco(split), json.dumps(doc))
        write_scenario_copy(layout, scenario)
        remove_stale_temp_files(layout)  # e.g. of a worker killed while this run went on
        # Last: a manifest that says "complete" vouches for every file written before it.
        write_output(layout.manifest, json.dumps(manifest, indent=1) + "\n")
    return manifest


def build_manifest(scenario: Scenario, fingerprint: str, frames: list[dict[str, Any]],
                   extra: dict[str, Any]) -> dict[str, Any]:
    public_frames = []
    for record in frames:
        entry = {k: v for k, v in record.items() if k not in ("fingerprint",)}
        entry["instances"] = [
            {k: v for k, v in inst.items() if k != "coco"} for inst in record["instances"]]
        public_frames.append(entry)
    labelled = sum(i["labelled"] for r in frames for i in r["instances"])
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "generator": f"gs_backend {__version__}",
        "scenario_sha256": fingerprint,
        "classes": list(scenario.classes),
        "instruments": [
            {"id": i.instance_id, "instance": i.name, "object": i.objects[0],
             "objects": list(i.objects), "class": i.class_name, "class_index": i.class_index}
            for i in scenario.instances
        ],
        "frames_total": len(scenario.frames),
        "frames_done": len(frames),
        "complete": len(frames) == len(scenario.frames),
        "labelled_instances": labelled,
        **extra,
        "frames": public_frames,
    }


def build_coco(scenario: Scenario, records: list[dict[str, Any]]) -> dict[str, Any]:
    """COCO instances document for one split. Image id = frame index + 1; annotation
    ids run 1.. in (image, instance) order."""
    images, annotations = [], []
    for record in sorted(records, key=lambda r: r["index"]):
        image_id = record["index"] + 1
        images.append({"id": image_id, "file_name": Path(record["image"]).name,
                       "width": record["width"], "height": record["height"]})
        for inst in record["instances"]:
            coco = inst.get("coco")
            if coco is None:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id,
                "category_id": inst["class_index"] + 1,
                "segmentation": coco["segmentation"], "area": coco["area"],
                "bbox": coco["bbox"], "iscrowd": 0,
                # Records written before parts existed name one object and no instance.
                "attributes": {"instance_id": inst["id"],
                               "instance": inst.get("instance", inst["object"]),
                               "object": inst["object"],
                               "objects": inst.get("objects", [inst["object"]])},
            })
    info = {"description": "rendered by gs_backend from 3D Gaussian splats",
            "version": __version__}
    return coco_document(images, annotations, coco_categories(list(scenario.classes)), info)


def data_yaml_text(root: Path, classes: tuple[str, ...]) -> str:
    """Ultralytics dataset YAML (strings JSON-quoted, which YAML reads as-is)."""
    lines = [
        "# Ultralytics YOLO dataset, written by gs_backend",
        f"path: {json.dumps(str(root.resolve()))}",
        "train: images/train",
        "val: images/val",
        "names:",
    ]
    lines += [f"  {i}: {json.dumps(name)}" for i, name in enumerate(classes)]
    if not classes:
        lines[-1] = "names: {}"
    return "\n".join(lines) + "\n"


def write_scenario_copy(layout: DatasetLayout, scenario: Scenario) -> None:
    """Keep the scenario used next to the dataset, asset paths rewritten relative to
    the folder; unless the scenario rendered is that very file (the Blender side
    writes ``OUT/scenario.json`` and renders it)."""
    if _same_file(layout.scenario_copy, scenario.path):
        return
    raw = json.loads(json.dumps(scenario.raw))
    for name, asset in raw.get("assets", {}).items():
        asset["ply"] = portable_path(scenario.assets[name].ply, layout.root)
        if isinstance(asset.get("keep"), str):
            asset["keep"] = scenario.assets[name].keep.tolist()  # type: ignore[union-attr]
    write_output(layout.scenario_copy, json.dumps(raw, indent=1) + "\n")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # either does not exist
        return False
