"""Where every file of a rendered dataset lives (DESIGN contract 4), and the rule that
decides whether a folder already holds a dataset and what a new render may do with it.

A folder "holds a dataset" once it has a manifest or at least one finished frame.
The rules (:func:`plan_output_folder`):

- same scenario (fingerprint) as before: resume, with or without ``overwrite``
  (finished frames are kept; shards of one scenario can each pass ``--overwrite``);
- a different scenario, or a dataset of unknown origin: refused unless ``overwrite``;
  then only the files and folders this tool owns are removed, never anything else the
  user keeps there;
- leftovers of another scenario that never finished a frame: replaced silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gs_contract.errors import InputError

Split = Literal["train", "val"]
SPLITS: tuple[Split, ...] = ("train", "val")
FolderPlan = Literal["new", "resume", "replace"]
# The ``format`` of ``manifest.json`` (written by the backend, checked by the add-on).
MANIFEST_FORMAT = "gs-dataset-manifest"

# Folders and files this tool owns inside an output folder. `--overwrite` removes
# exactly these and nothing else, so a user's own files in the folder survive.
OWNED_DIRS = ("images", "labels", "masks", "amodal", "depth", "annotations", ".gs-render")
OWNED_FILES = ("manifest.json", "data.yaml")


@dataclass(frozen=True)
class DatasetLayout:
    """Paths inside one output folder ``root``."""

    root: Path

    def image(self, split: Split, frame: str, image_format: str) -> Path:
        return self.root / "images" / split / f"{frame}.{image_format}"

    def label(self, split: Split, frame: str) -> Path:
        return self.root / "labels" / split / f"{frame}.txt"

    def mask(self, split: Split, frame: str) -> Path:
        return self.root / "masks" / split / f"{frame}.png"

    def amodal(self, split: Split, frame: str, instance_id: int) -> Path:
        return self.root / "amodal" / split / frame / f"{instance_id}.png"

    def depth(self, split: Split, frame: str) -> Path:
        return self.root / "depth" / split / f"{frame}.npy"

    def coco(self, split: Split) -> Path:
        return self.root / "annotations" / f"instances_{split}.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def data_yaml(self) -> Path:
        return self.root / "data.yaml"

    @property
    def scenario_copy(self) -> Path:
        return self.root / "scenario.json"

    # --- bookkeeping for resume and shards (hidden) ---

    @property
    def state_dir(self) -> Path:
        return self.root / ".gs-render"

    @property
    def fingerprint_file(self) -> Path:
        return self.state_dir / "scenario.sha256"

    @property
    def non_finite_file(self) -> Path:
        """Non-finite Gaussians dropped per asset (JSON), kept for the manifest."""
        return self.state_dir / "non_finite.json"

    @property
    def lock_file(self) -> Path:
        """Next to, not inside, ``state_dir``: ``--overwrite`` clears that folder while
        other processes may be waiting on the lock, which must stay the same file."""
        return self.root / ".gs-render.lock"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "frames"

    def record(self, frame: str) -> Path:
        """Per-frame record; written last, so its presence marks the frame as finished."""
        return self.records_dir / f"{frame}.json"

    def relative(self, path: Path) -> str:
        """``path`` relative to the root, with forward slashes (for manifests)."""
        return path.relative_to(self.root).as_posix()


def plan_output_folder(layout: DatasetLayout, fingerprint: str, *,
                       overwrite: bool) -> FolderPlan:
    """What claiming ``layout.root`` for this scenario will do; writes nothing.

    Raises:
        InputError: the path is a file, or the folder holds a dataset of another
            scenario and not ``overwrite``.
    """
    root = layout.root
    if root.exists() and not root.is_dir():
        raise InputError(root, "--out", "must be a folder, but this is a file")
    previous = _stored_fingerprint(layout)
    if previous == fingerprint:
        return "resume"
    if not holds_dataset(layout):
        return "replace" if previous is not None else "new"
    if not overwrite:
        what = "another scenario" if previous else "a dataset of unknown origin"
        raise InputError(root, "--out", f"already holds {what}; pass --overwrite to replace "
                                        "it, or choose another --out folder")
    return "replace"


def holds_dataset(layout: DatasetLayout) -> bool:
    """True when the folder has a manifest or at least one finished frame record."""
    if layout.manifest.exists():
        return True
    return layout.records_dir.is_dir() and any(layout.records_dir.glob("*.json"))


def _stored_fingerprint(layout: DatasetLayout) -> str | None:
    try:
        return layout.fingerprint_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
