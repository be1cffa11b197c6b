"""LPIPS (Zhang et al. 2018, version 0.1) in plain torch, from a local weights file.

Nothing is downloaded: the weights come from ``--lpips-weights FILE``, a file written
by ``torch.save`` holding the ``state_dict()`` of the reference implementation's
``lpips.LPIPS(net="alex")`` or ``lpips.LPIPS(net="vgg")`` (how to make one:
``scripts/export_lpips_weights.py`` and docs/evaluate.md). Keys used (others, such as
``scaling_layer.*``, are ignored):

- ``net.slice{s}.{i}.weight`` / ``.bias``: the backbone's convolutions, ``i`` being the
  layer's index in torchvision's ``alexnet().features`` / ``vgg16().features``;
- ``lin{k}.model.1.weight`` (``[1, C_k, 1, 1]``): the linear head of tap ``k``.

Distance of two ``[H, W, 3]`` RGB images in [0, 1]: each image becomes ``z = 2x - 1``,
then ``(z - shift) / scale`` with LPIPS's fixed shift (-0.030, -0.088, -0.188) and scale
(0.458, 0.448, 0.450); the backbone runs (every convolution followed by ReLU) and each
stage's output is a tap ``f_k`` ``[C_k, h_k, w_k]``; each tap is unit-normalised over
channels, ``f / (||f||_2 + 1e-10)``; ``d_k = (f0_k - f1_k)^2``; the distance is
``sum_k mean_{h,w} (sum_c w_{k,c} d_{k,c})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from gs_contract.errors import InputError

NetName = Literal["alex", "vgg"]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10


@dataclass(frozen=True)
class Conv:
    """A convolution followed by ReLU; ``index`` is its position in torchvision's
    ``features`` (the number in its weight key)."""

    index: int
    channels_in: int
    channels_out: int
    kernel: int
    stride: int = 1
    padding: int = 0


@dataclass(frozen=True)
class MaxPool:
    kernel: int
    stride: int


Stage = tuple[Conv | MaxPool, ...]
Backbone = tuple[Stage, ...]  # the output of each stage is a tap


def _vgg16() -> Backbone:
    widths = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
    stages: list[Stage] = []
    index, channels = 0, 3
    for s, stage_widths in enumerate(widths):
        layers: list[Conv | MaxPool] = []
        if s > 0:
            layers.append(MaxPool(2, 2))
            index += 1
        for width in stage_widths:
            layers.append(Conv(index, channels, width, 3, 1, 1))
            index, channels = index + 2, width
        stages.append(tuple(layers))
    return tuple(stages)


BACKBONES: dict[NetName, Backbone] = {
    "alex": ((Conv(0, 3, 64, 11, 4, 2),),
             (MaxPool(3, 2), Conv(3, 64, 192, 5, 1, 2)),
             (MaxPool(3, 2), Conv(6, 192, 384, 3, 1, 1)),
             (Conv(8, 384, 256, 3, 1, 1),),
             (Conv(10, 256, 256, 3, 1, 1),)),
    "vgg": _vgg16(),
}


def conv_key(stage: int, conv: Conv) -> str:
    """The state-dict key prefix of ``conv`` in ``stage`` (0-based)."""
    return f"net.slice{stage + 1}.{conv.index}"


def lin_key(stage: int) -> str:
    return f"lin{stage}.model.1.weight"


class Lpips:
    """An LPIPS network: a ``backbone`` and its weights (keys as in the module docstring).

    Raises:
        InputError: (from the constructor) a key is missing or has the wrong shape;
            ``source`` names the weights file in the message.
    """

    def __init__(self, backbone: Backbone, weights: dict[str, torch.Tensor], *,
                 source: str | Path, device: torch.device | None = None) -> None:
        self.backbone = backbone
        self.device = device or torch.device("cpu")
        self.params: dict[str, torch.Tensor] = {}
        for s, stage in enumerate(backbone):
            channels = 0
            for layer in stage:
                if isinstance(layer, Conv):
                    key = conv_key(s, layer)
                    c, k = layer.channels_out, layer.kernel
                    self._take(weights, f"{key}.weight", (c, layer.channels_in, k, k), source)
                    self._take(weights, f"{key}.bias", (c,), source)
                    channels = c
            self._take(weights, lin_key(s), (1, channels, 1, 1), source)

    def _take(self, weights: dict[str, torch.Tensor], key: str, shape: tuple[int, ...],
              source: str | Path) -> None:
        value = weights.get(key)
        if value is None:
            raise InputError(source, key, "missing from the LPIPS weights (expected the "
                                          "state_dict of lpips.LPIPS, see docs/evaluate.md)")
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InputError(source, key, f"has shape {got}, expected {shape}")
        self.params[key] = value.detach().to(self.device, torch.float32)

    def smallest_side(self) -> int:
        """The smallest image side (pixels) for which every tap has at least one pixel."""
        side = 1
        while not self._fits(side):
            side += 1
        return side

    def _fits(self, n: int) -> bool:
        for stage in self.backbone:
            for layer in stage:
                if isinstance(layer, Conv):
                    n = (n + 2 * layer.padding - layer.kernel) // layer.stride + 1
                else:
                    n = (n - layer.kernel) // layer.stride + 1
                if n < 1:
                    return False
        return True

    @torch.no_grad()
    def distance(self, x: np.ndarray, y: np.ndarray) -> float:
        """LPIPS of two ``[H, W, 3]`` RGB images in [0, 1] (images at least
        :meth:`smallest_side` on each side)."""
        batch = torch.from_numpy(np.stack([x, y])).to(self.device, torch.float32)
        batch = batch.permute(0, 3, 1, 2)  # [2, 3, H, W]
        shift = torch.tensor(SHIFT, device=self.device).view(1, 3, 1, 1)
        scale = torch.tensor(SCALE, device=self.device).view(1, 3, 1, 1)
        h = ((2.0 * batch - 1.0) - shift) / scale
        total = torch.zeros((), device=self.device, dtype=torch.float64)
        for s, stage in enumerate(self.backbone):
            for layer in stage:
                if isinstance(layer, Conv):
                    key = conv_key(s, layer)
                    h = F.relu(F.conv2d(h, self.params[f"{key}.weight"],
                                        self.params[f"{key}.bias"], stride=layer.stride,
                                        padding=layer.padding))
                else:
                    h = F.max_pool2d(h, layer.kernel, layer.stride)
            f = h / (torch.sqrt((h * h).sum(dim=1, keepdim=True)) + NORM_EPS)
            d = (f[0] - f[1]) ** 2  # [C, h, w]
            weighted = (self.params[lin_key(s)][0, :, 0, 0, None, None] * d).sum(dim=0)
            total = total + weighted.mean().double()
        return float(total)


def load_lpips(path: Path, device: torch.device | None = None) -> tuple[Lpips, NetName]:
    """The LPIPS network in ``path`` (a saved ``lpips.LPIPS`` state dict) and its name.

    Raises:
        InputError: not a torch file of a state dict, an unknown backbone, or a missing
            or misshaped key (named).
    """
    if not path.is_file():
        raise InputError(path, "--lpips-weights", "does not exist or is not a file")
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a foreign file
        raise InputError(path, "--lpips-weights", "is not a torch weights file "
                                                  f"({type(exc).__name__})") from None
    if not isinstance(weights, dict):
        raise InputError(path, "--lpips-weights", f"holds a {type(weights).__name__}, "
                                                  "not a state dict")
    first = weights.get("net.slice1.0.weight")
    if not isinstance(first, torch.Tensor) or first.ndim != 4:
        raise InputError(path, "net.slice1.0.weight", "missing from the LPIPS weights "
                                                      "(expected the state_dict of "
                                                      "lpips.LPIPS, see docs/evaluate.md)")
    kernels: dict[int, NetName] = {11: "alex", 3: "vgg"}
    name = kernels.get(int(first.shape[-1]))
    if name is None:
        raise InputError(path, "net.slice1.0.weight",
                         f"a {first.shape[-1]}x{first.shape[-1]} first convolution is neither "
                         "AlexNet's (11x11) nor VGG16's (3x3); only net='alex' and 'vgg' "
                         "are supported")
    return Lpips(BACKBONES[name], weights, source=path, device=device), name
