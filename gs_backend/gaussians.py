"""The in-memory Gaussian set shared by every part of the backend.

Conventions (DESIGN contract 2): means in the asset's own coordinates, unit
quaternions in wxyz order, *linear* scales, opacities in (0, 1) (after the
sigmoid), and SH coefficients ``[N, (d+1)^2, 3]`` where index 0 is the DC term
(colour = 0.5 + C0 * sh[:, 0]). File formats store log scales and logit
opacities; the readers and writers in :mod:`gs_backend.io` convert.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))


def sh_degree_from_coeffs(num_coeffs: int) -> int:
    """Return d such that (d+1)^2 == num_coeffs; raise ValueError otherwise."""
    d = math.isqrt(num_coeffs) - 1
    if d < 0 or (d + 1) ** 2 != num_coeffs:
        raise ValueError(f"{num_coeffs} SH coefficients per channel fit no SH degree")
    return d


@dataclass(frozen=True)
class Gaussians:
    """A set of N 3D Gaussians; all tensors on one device, float32.

    Attributes:
        means: ``[N, 3]`` centres.
        quats: ``[N, 4]`` unit rotations, wxyz.
        scales: ``[N, 3]`` linear standard deviations along the local axes.
        opacities: ``[N]`` in (0, 1).
        sh: ``[N, K, 3]`` SH coefficients, K = (sh_degree + 1)^2.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    sh: Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expected = {
            "means": (n, 3), "quats": (n, 4), "scales": (n, 3), "opacities": (n,),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"Gaussians.{name} has shape {got}, expected {shape}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh has shape {tuple(self.sh.shape)}, expected [N, K, 3]")
        sh_degree_from_coeffs(self.sh.shape[1])

    @property
    def count(self) -> int:
        return int(self.means.shape[0])

    def __len__(self) -> int:
        return self.count

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def to(self, device: torch.device | str) -> Gaussians:
        return Gaussians(*(t.to(device) for t in self._fields()))

    def select(self, index: Tensor) -> Gaussians:
        """Subset by a boolean mask ``[N]`` or an integer index ``[M]``."""
        return Gaussians(*(t[index] for t in self._fields()))

    def with_sh_degree(self, degree: int) -> Gaussians:
        """Truncate or zero-pad the SH bands to ``degree``."""
        k = (degree + 1) ** 2
        sh = self.sh
        if sh.shape[1] >= k:
            sh = sh[:, :k]
        else:
            pad = sh.new_zeros(sh.shape[0], k - sh.shape[1], 3)
            sh = torch.cat([sh, pad], dim=1)
        return Gaussians(self.means, self.quats, self.scales, self.opacities, sh)

    def _fields(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (self.means, self.quats, self.scales, self.opacities, self.sh)

    @staticmethod
    def concat(parts: Sequence[Gaussians]) -> Gaussians:
        """Concatenate sets; SH are zero-padded to the highest degree among them."""
        if not parts:
            raise ValueError("Gaussians.concat needs at least one set")
        degree = max(p.sh_degree for p in parts)
        parts = [p.with_sh_degree(degree) for p in parts]
        fields = zip(*(p._fields() for p in parts), strict=True)
        return Gaussians(*(torch.cat(ts, dim=0) for ts in fields))
