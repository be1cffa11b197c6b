"""Submitting a dataset render to the backend, without bpy.

One function, :func:`submit`, turns a built scenario dict into a running backend:

1. the folder rule: :func:`gs_contract.dataset.plan_output_folder` with the scenario's
   content fingerprint (:meth:`gs_contract.scenario.Scenario.fingerprint`), the very
   decision the backend makes, taken *before* ``scenario.json`` is replaced (that file
   describes the dataset already in the folder);
2. ``<out>/scenario.json`` written atomically;
3. ``gs-backend render`` started (:class:`.backend_process.BackendJob`), told the
   fingerprint so that it checks the dataset it reports.

:func:`first_image` finds the first frame's image of a finished dataset. The Blender side
(:mod:`..blender.render_job`) and ``scripts/render_blend.py`` both go through here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gs_contract.atomic import write_text_atomic
from gs_contract.dataset import DatasetLayout, holds_dataset, plan_output_folder
from gs_contract.errors import InputError
from gs_contract.scenario import parse_scenario

from .backend_process import BackendJob
from .scenario_builder import ScenarioExportError, scenario_to_json

if TYPE_CHECKING:
    from .sidecar_client import SidecarClient
    from .sidecar_render import SidecarRenderJob


def scenario_file(out_dir: Path) -> Path:
    """Where a Blender-side render writes its scenario: ``<out>/scenario.json``."""
    return DatasetLayout(out_dir).scenario_copy


def check_output_folder(out_dir: Path, scenario_text: str, *, overwrite: bool) -> str:
    """Validate ``scenario_text`` (the JSON ``scenario.json`` will hold, exactly what the
    backend will parse) and apply the folder rule.

    Returns:
        the scenario's fingerprint (sha256 of its content, assets included).

    Raises:
        ScenarioExportError: the scenario is not valid, the folder cannot be used, or it
            holds a dataset of another scenario and not ``overwrite``.
    """
    path = scenario_file(out_dir)
    layout = DatasetLayout(out_dir)
    try:
        fingerprint = parse_scenario(json.loads(scenario_text), path).fingerprint()
    except InputError as exc:
        raise ScenarioExportError(f"the exported scenario is not valid: {exc.message}") \
            from None
    try:
        plan_output_folder(layout, fingerprint, overwrite=overwrite)
    except InputError as exc:
        if holds_dataset(layout):
            raise ScenarioExportError(
                f"the output folder {out_dir} already holds a dataset of a different "
                "scenario: choose another output folder, or tick Overwrite (GS Dataset tab, "
                "Dataset panel) to replace it") from None
        raise ScenarioExportError(f"output folder: {exc.message}") from None
    return fingerprint


def submit(scenario: dict[str, Any], out_dir: Path, *, command: str | None, device: str,
           overwrite: bool, shard: str | None = None) -> BackendJob:
    """Check the folder, write ``<out>/scenario.json`` and start the backend on it.

    Raises:
        ScenarioExportError: see :func:`check_output_folder`.
        OSError: ``scenario.json`` cannot be written.
        BackendError: the backend cannot be started.
    """
    path, fingerprint = write_checked_scenario(scenario, out_dir, overwrite=overwrite)
    return BackendJob.start_render(command, path, out_dir, device=device,
                                   overwrite=overwrite, fingerprint=fingerprint, shard=shard)


def submit_to_sidecar(scenario: dict[str, Any], out_dir: Path, *, client: SidecarClient,
                      overwrite: bool) -> SidecarRenderJob:
    """:func:`submit`, with the render run by a sidecar (``POST /v1/renders``). The
    sidecar reads ``scenario.json`` and writes the dataset itself: a remote one must see
    the same paths (a shared folder).

    Raises:
        ScenarioExportError, OSError: see :func:`submit`.
        SidecarError: the sidecar refused the job or cannot be reached.
    """
    from gs_contract.sidecar import render_job_request

    from .sidecar_render import SidecarRenderJob

    path, fingerprint = write_checked_scenario(scenario, out_dir, overwrite=overwrite)
    job_id = client.submit_render(render_job_request(path, out_dir, overwrite=overwrite))
    return SidecarRenderJob(client, job_id, out_dir=out_dir, fingerprint=fingerprint)


def write_checked_scenario(scenario: dict[str, Any], out_dir: Path, *,
                           overwrite: bool) -> tuple[Path, str]:
    """Check the folder and write ``<out>/scenario.json``; returns (its path, the
    scenario's fingerprint)."""
    text = scenario_to_json(scenario)  # once: checked, then written
    fingerprint = check_output_folder(out_dir, text, overwrite=overwrite)
    path = scenario_file(out_dir)
    write_text_atomic(path, text)
    return path, fingerprint


def first_image(out_dir: Path) -> Path | None:
    """The image file of the dataset's first frame (by index), or None."""
    try:
        manifest = json.loads(DatasetLayout(out_dir).manifest.read_text(encoding="utf-8"))
        frames = sorted(manifest.get("frames", []), key=lambda f: f.get("index", 0))
        relative = next(f["image"] for f in frames if f.get("image"))
        path = out_dir / relative
    except (OSError, ValueError, StopIteration, KeyError, TypeError, AttributeError):
        return None
    return path if path.is_file() else None
