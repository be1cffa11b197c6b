"""Where every file of a rendered dataset lives (DESIGN contract 4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["train", "val"]
SPLITS: tuple[Split, ...] = ("train", "val")

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
