"""Choosing the torch device from ``--device``."""

from __future__ import annotations

import re

import torch

from gs_contract.errors import InputError

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(spec: str) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps`` -> a usable torch.device.

    ``auto`` picks CUDA device 0 when CUDA is available, else the CPU, where the
    compiled numba rasterizer runs. Apple's MPS is only used when asked for
    explicitly: its only rasterizer is the eager-torch one, which we expect to be
    slower there than numba on the CPU (docs/rendering.md). Raises InputError for a device this
    machine does not have.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise InputError("--device", None, "mps is not available on this machine")
        return torch.device("mps")
    m = _CUDA.match(spec)
    if m is None:
        raise InputError("--device", None, f"expected auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        build = "this torch build has no CUDA" if torch.version.cuda is None \
            else "no CUDA GPU is visible"
        raise InputError("--device", None, f"{spec} requested but {build} "
                                           "(use --device cpu or auto)")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise InputError("--device", None, f"{spec} requested but only "
                                           f"{torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)
