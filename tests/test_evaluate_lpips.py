"""evaluate's LPIPS network (plain torch, weights from a local file).

Oracles: (1) a hand-built tiny network with random weights, computed here with explicit
numpy loops; (2) the reference ``lpips`` package, when it is installed: its own forward
pass (input scaling, channel normalisation, linear heads, spatial mean) with its shipped
trained heads and a randomly initialised backbone, whose ``state_dict()`` is exactly the
weights file format. The ``lpips`` package builds its backbone from torchvision; when
torchvision cannot be imported (its PyPI build needs CUDA torch), a stand-in module
builds the same ``features`` layer lists (AlexNet, VGG16) from torch.nn here.
Also: the defining properties and the refusals of bad weights files.
"""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gs_backend.evaluate.lpips import (
    BACKBONES,
    Conv,
    Lpips,
    MaxPool,
    conv_key,
    lin_key,
    load_lpips,
)
from gs_contract.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
TINY = ((Conv(0, 3, 4, 3, 2, 1),), (MaxPool(2, 2), Conv(3, 4, 5, 3, 1, 0)))


def random_weights(backbone, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weights = {}
    for s, stage in enumerate(backbone):
        channels = 0
        for layer in stage:
            if isinstance(layer, Conv):
                k = layer.kernel
                weights[f"{conv_key(s, layer)}.weight"] = torch.randn(
                    layer.channels_out, layer.channels_in, k, k, generator=g) * 0.3
                weights[f"{conv_key(s, layer)}.bias"] = torch.randn(layer.channels_out,
                                                                    generator=g) * 0.1
                channels = layer.channels_out
        weights[lin_key(s)] = torch.rand(1, channels, 1, 1, generator=g)
    return weights


def numpy_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int
               ) -> np.ndarray:
    """[C, H, W] -> [O, H', W'] cross-correlation, written out."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    o, _c, k, _ = w.shape
    ho = (x.shape[1] - k) // stride + 1
    wo = (x.shape[2] - k) // stride + 1
    out = np.zeros((o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k]
            for oc in range(o):
                out[oc, i, j] = np.sum(patch * w[oc]) + b[oc]
    return out


def numpy_maxpool(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    ho = (x.shape[1] - k) // stride + 1
    wo = (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, i, j] = x[:, i * stride:i * stride + k, j * stride:j * stride + k].max(
                axis=(1, 2))
    return out


def numpy_lpips(backbone, weights, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS v0.1 of two [H, W, 3] images in [0, 1], from the paper's definition."""
    w = {k: v.double().numpy() for k, v in weights.items()}
    taps = []
    for img in (a, b):
        # LPIPS v0.1's input scaling, written out (not taken from the module under test)
        h = ((2 * img - 1) - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
        h = h.transpose(2, 0, 1)
        outs = []
        for s, stage in enumerate(backbone):
            for layer in stage:
                if isinstance(layer, Conv):
                    key = conv_key(s, layer)
                    h = np.maximum(numpy_conv(h, w[f"{key}.weight"], w[f"{key}.bias"],
                                              layer.stride, layer.padding), 0)
                else:
                    h = numpy_maxpool(h, layer.kernel, layer.stride)
            outs.append(h / (np.sqrt((h ** 2).sum(axis=0)) + 1e-10))
        taps.append(outs)
    total = 0.0
    for s, (f0, f1) in enumerate(zip(*taps, strict=True)):
        lin = w[lin_key(s)][0, :, 0, 0]
        total += np.mean(np.tensordot(lin, (f0 - f1) ** 2, axes=(0, 0)))
    return float(total)


def images(seed: int, shape=(23, 19)):
    rng = np.random.default_rng(seed)
    a = rng.random((*shape, 3))
    return a, np.clip(a + rng.normal(0, 0.2, a.shape), 0, 1)


def test_tiny_network_against_numpy():
    weights = random_weights(TINY, seed=1)
    net = Lpips(TINY, weights, source="tiny")
    for seed in range(3):
        a, b = images(seed)
        expected = numpy_lpips(TINY, weights, a, b)
        assert expected > 0
        assert net.distance(a, b) == pytest.approx(expected, rel=1e-5)


def test_defining_properties_on_alexnet():
    net = Lpips(BACKBONES["alex"], random_weights(BACKBONES["alex"]), source="random")
    a, b = images(5, (64, 48))
    assert net.distance(a, a) == 0.0
    assert net.distance(a, b) > 0
    assert net.distance(a, b) == pytest.approx(net.distance(b, a), rel=1e-6)


def test_smallest_side():
    net = Lpips(BACKBONES["alex"], random_weights(BACKBONES["alex"]), source="random")
    assert net.smallest_side() == 31  # 11x11/4 conv, two 3x3/2 pools
    net.distance(*images(0, (31, 31)))
    with pytest.raises(RuntimeError):
        net.distance(*images(0, (30, 30)))
    vgg = Lpips(BACKBONES["vgg"], random_weights(BACKBONES["vgg"]), source="random")
    assert vgg.smallest_side() == 16  # four 2x2/2 pools


def save(weights, path: Path) -> Path:
    torch.save(weights, path)
    return path


def test_weights_file_round_trip_and_net_detection(tmp_path):
    for name in ("alex", "vgg"):
        weights = random_weights(BACKBONES[name], seed=2)
        weights["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)  # ignored
        net, detected = load_lpips(save(weights, tmp_path / f"{name}.pth"))
        assert detected == name
        a, b = images(3, (40, 36))
        assert net.distance(a, b) == pytest.approx(
            Lpips(BACKBONES[name], weights, source="x").distance(a, b), rel=1e-6)


def test_bad_weights_files_name_the_problem(tmp_path):
    weights = random_weights(BACKBONES["alex"])
    missing = dict(weights)
    del missing["lin3.model.1.weight"]
    with pytest.raises(InputError, match=r"lin3\.model\.1\.weight: missing"):
        load_lpips(save(missing, tmp_path / "missing.pth"))
    misshaped = dict(weights, **{"net.slice2.3.bias": torch.zeros(7)})
    with pytest.raises(InputError, match=r"net\.slice2\.3\.bias: has shape \(7,\), "
                                         r"expected \(192,\)"):
        load_lpips(save(misshaped, tmp_path / "misshaped.pth"))
    with pytest.raises(InputError, match=r"net\.slice1\.0\.weight: missing"):
        load_lpips(save({"something": torch.zeros(1)}, tmp_path / "other.pth"))
    odd = dict(weights, **{"net.slice1.0.weight": torch.zeros(64, 3, 5, 5)})
    with pytest.raises(InputError, match="neither AlexNet's"):
        load_lpips(save(odd, tmp_path / "odd.pth"))
    text = tmp_path / "text.pth"
    text.write_text("not weights")
    with pytest.raises(InputError, match="is not a torch weights file"):
        load_lpips(text)
    with pytest.raises(InputError, match="not a state dict"):
        load_lpips(save([1, 2], tmp_path / "list.pth"))
    with pytest.raises(InputError, match="does not exist"):
        load_lpips(tmp_path / "absent.pth")


# --- the reference implementation -------------------------------------------------------

def _features(net: str) -> nn.Sequential:
    """torchvision's ``alexnet().features`` / ``vgg16().features`` layer lists."""
    if net == "alex":
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))
    layers: list[nn.Module] = []
    channels = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(True)]
            channels = int(v)
    return nn.Sequential(*layers)


@pytest.fixture
def reference_lpips(monkeypatch):
    """The ``lpips`` package, with a stand-in torchvision when the real one fails."""
    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the reference lpips package is not installed (pip install lpips)")
    try:
        importlib.import_module("torchvision")
    except Exception:  # missing, or a CUDA build that cannot load on CPU torch
        models = types.ModuleType("torchvision.models")
        for name, net in (("alexnet", "alex"), ("vgg16", "vgg")):
            setattr(models, name, lambda pretrained=False, _n=net, **_: types.SimpleNamespace(
                features=_features(_n)))
        package = types.ModuleType("torchvision")
        package.models = models
        monkeypatch.setitem(sys.modules, "torchvision", package)
        monkeypatch.setitem(sys.modules, "torchvision.models", models)
        for name in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
            monkeypatch.delitem(sys.modules, name)
    return importlib.import_module("lpips")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_against_the_reference_lpips_package(reference_lpips, tmp_path, net):
    torch.manual_seed(0)
    # trained linear heads shipped with the package, random backbone (no download)
    reference = reference_lpips.LPIPS(net=net, pnet_rand=True, verbose=False).eval()
    path = tmp_path / f"{net}.pth"
    torch.save(reference.state_dict(), path)
    ours, detected = load_lpips(path)
    assert detected == net
    rng = np.random.default_rng(0)
    for shape in ((64, 64), (50, 77)):
        a = rng.random((*shape, 3))
        b = np.clip(a + rng.normal(0, 0.15, a.shape), 0, 1)
        with torch.no_grad():
            expected = reference(*(torch.from_numpy(i).permute(2, 0, 1)[None].float()
                                   for i in (a, b)), normalize=True).item()
        assert ours.distance(a, b) == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_export_script_converts_a_local_torchvision_backbone(reference_lpips, tmp_path):
    """scripts/export_lpips_weights.py --backbone: torchvision's ``features.*`` file plus
    the package's heads -> our weights file, holding exactly those tensors."""
    torch.manual_seed(1)
    features = _features("alex")
    backbone = tmp_path / "alexnet-owt.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}
               | {"classifier.1.weight": torch.zeros(2, 2)}, backbone)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        export = importlib.import_module("export_lpips_weights")
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path / "lpips_alex.pth"
    export.export_weights("alex", out, backbone)
    saved = torch.load(out, weights_only=True)
    assert torch.equal(saved["net.slice2.3.weight"], features[3].weight)
    assert torch.equal(saved["net.slice5.10.bias"], features[10].bias)
    heads = Path(reference_lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    shipped = torch.load(heads, map_location="cpu", weights_only=True)
    assert torch.equal(saved["lin0.model.1.weight"], shipped["lin0.model.1.weight"])
    load_lpips(out)


def test_export_script_help_runs_without_lpips():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "export_lpips_weights.py"),
                             "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--backbone" in result.stdout
