"""Write the LPIPS weights file that ``gs-backend evaluate --lpips-weights`` reads.

The file is ``torch.save(lpips.LPIPS(net=NET).state_dict(), OUT)``: the reference
implementation's (pip package ``lpips``) backbone convolutions and its trained linear
heads (docs/evaluate.md has the key list). Run it once, on any machine that has the
``lpips`` package and ``torchvision``, then copy OUT to where you evaluate:

    python scripts/export_lpips_weights.py --net alex --out lpips_alex.pth

Without ``--backbone``, torchvision supplies its ImageNet backbone weights as it
always does (from its cache, or downloading them). With ``--backbone FILE`` they come
from a local copy of torchvision's weights file instead (``alexnet-owt-7be5be79.pth`` or
``vgg16-397923af.pth``, keys ``features.N.weight`` / ``.bias``), so nothing is fetched.
gs-backend itself never downloads anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def export_weights(net: str, out: Path, backbone: Path | None = None) -> None:
    """Save the ``lpips.LPIPS(net=net)`` state dict to ``out``; backbone from ``backbone``
    (a torchvision ``features.*`` state dict) when given."""
    import lpips
    import torch

    if backbone is None:
        model = lpips.LPIPS(net=net, verbose=False)
    else:
        model = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
        source = torch.load(backbone, map_location="cpu", weights_only=True)
        state = model.state_dict()
        for key in [k for k in state if k.startswith("net.slice")]:
            _, _, index, param = key.split(".")  # net.slice{s}.{index}.{weight|bias}
            tv_key = f"features.{index}.{param}"
            if tv_key not in source:
                sys.exit(f"{backbone}: {tv_key} missing; is this torchvision's {net} file?")
            if source[tv_key].shape != state[key].shape:
                sys.exit(f"{backbone}: {tv_key} has shape {tuple(source[tv_key].shape)}, "
                         f"expected {tuple(state[key].shape)}")
            state[key] = source[tv_key]
        model.load_state_dict(state)
    torch.save(model.state_dict(), out)
    from gs_backend.evaluate.lpips import load_lpips

    load_lpips(out)  # what evaluate will do: a file it cannot use fails here, not later


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", choices=("alex", "vgg"), default="alex",
                        help="LPIPS backbone (default: alex, the LPIPS authors' default)")
    parser.add_argument("--out", type=Path, required=True, help="the weights file to write")
    parser.add_argument("--backbone", type=Path,
                        help="torchvision's backbone weights file, used instead of "
                             "torchvision's cache or download")
    args = parser.parse_args()
    export_weights(args.net, args.out, args.backbone)
    print(f"wrote {args.out} (LPIPS {args.net}); use it with "
          f"gs-backend evaluate --lpips-weights {args.out}")


if __name__ == "__main__":
    main()
