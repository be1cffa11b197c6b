"""Loaded assets kept in memory between previews, bounded, least recently used out.

An entry is one asset prepared for rendering (:func:`gs_backend.frame_renderer.prepare_asset`:
loaded, ``keep`` applied, SH truncated, on the device), keyed by what decides its content:
the file's resolved path, size and modification time (ns), the ``keep`` list, the SH degree
and the device. Looking an asset up costs one ``stat`` of its file, never a read: an edited
file (new size or mtime) is a new key and is loaded again; its old entry ages out.

The bound is on the bytes of the entries' tensors; after each insertion the least recently
used entries leave until the total fits (an asset larger than the bound is used for the
preview that loaded it and not kept).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from gs_backend.frame_renderer import PreparedAsset, prepare_asset
from gs_contract.errors import InputError
from gs_contract.scenario import Scenario

DEFAULT_CACHE_BYTES = 4 * 1024**3
"""Default bound of the asset cache (4 GiB; ``gs-backend serve --cache-mb``)."""

AssetKey = tuple[str, int, int, str, int | None, str]
"""(resolved path, size, mtime_ns, sha256 of keep or "", sh_degree, device)."""


def asset_nbytes(asset: PreparedAsset) -> int:
    """Bytes held by an asset's tensors (means, quats, scales, opacities, SH)."""
    g = asset.gaussians
    return sum(t.element_size() * t.nelement()
               for t in (g.means, g.quats, g.scales, g.opacities, g.sh))


@dataclass
class CacheStats:
    """Counters since the cache was made: lookups answered from memory, loads from file,
    entries evicted."""

    hits: int = 0
    loads: int = 0
    evictions: int = 0


class AssetCache:
    """Thread-safe LRU cache of prepared assets with a bound in bytes.

    Args:
        device: where assets are prepared.
        max_bytes: the memory bound (tensor bytes of all entries together).
    """

    def __init__(self, device: torch.device, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.device = device
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: OrderedDict[AssetKey, tuple[PreparedAsset, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, scenario: Scenario, name: str) -> AssetKey:
        """The key of asset ``name`` of ``scenario`` (one ``stat`` of its file).

        Raises:
            InputError: the file is gone or cannot be examined.
        """
        spec = scenario.assets[name]
        try:
            st = Path(spec.ply).stat()
        except OSError as exc:
            raise InputError(spec.ply, None, f"cannot read (the file of assets.{name}.ply): "
                                             f"{exc.strerror or exc}") from None
        keep = "" if spec.keep is None else hashlib.sha256(spec.keep.tobytes()).hexdigest()
        return (str(Path(spec.ply).resolve()), st.st_size, st.st_mtime_ns, keep,
                scenario.render.sh_degree, str(self.device))

    def get(self, scenario: Scenario, name: str) -> tuple[AssetKey, PreparedAsset]:
        """Asset ``name`` of ``scenario`` with its key: from memory, or loaded and kept.

        Raises:
            InputError: the asset cannot be read, or its ``keep`` is out of range.
        """
        key = self.key(scenario, name)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return key, _renamed(hit[0], name)
        # Load outside the lock; two concurrent misses of one key both load (rare, harmless).
        asset = prepare_asset(scenario, name, self.device)
        size = asset_nbytes(asset)
        with self._lock:
            self.stats.loads += 1
            if key not in self._entries:
                self._entries[key] = (asset, size)
                self._bytes += size
            self._entries.move_to_end(key)
            while self._bytes > self.max_bytes and self._entries:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
                self.stats.evictions += 1
        return key, asset

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _renamed(asset: PreparedAsset, name: str) -> PreparedAsset:
    """The cached asset under the name this scenario gives it (same tensors)."""
    if asset.name == name:
        return asset
    return PreparedAsset(name, asset.gaussians, asset.file_count, asset.non_finite,
                         asset.format)
