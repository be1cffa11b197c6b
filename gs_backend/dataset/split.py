"""Deterministic train/val split.

The split is a function of the scenario alone (all frame names, the validation
fraction and the seed), never of which frames a run renders, so ``--frames``
and ``--shard`` runs into one folder agree on every frame's split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gs_contract.dataset import Split


def assign_splits(frame_names: Sequence[str], val_fraction: float,
                  seed: int) -> dict[str, Split]:
    """Return frame name -> "train" | "val".

    Exactly ``round(val_fraction * n)`` frames go to val, chosen by a seeded
    permutation of the scenario's frame order. With at least two frames and a
    non-zero fraction, both splits get at least one frame, so a YOLO trainer
    never meets an empty split.
    """
    n = len(frame_names)
    n_val = round(val_fraction * n)
    if n >= 2 and 0.0 < val_fraction < 1.0:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = set(order[:n_val].tolist())
    return {name: ("val" if i in val else "train") for i, name in enumerate(frame_names)}
