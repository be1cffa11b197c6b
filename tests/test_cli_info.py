"""`gs-backend info FILE [--json]`."""

from __future__ import annotations

import json

import torch

from gs_backend.cli import main
from gs_backend.io.inria_ply import save_inria_ply
from tests.scenario_factory import blob


def test_info_reports_counts_degree_bounds_and_non_finite(tmp_path, capsys):
    g = blob(50, (1.0, 2.0, 3.0), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), scale=0.01, seed=3,
             sh_degree=2)
    means = g.means.clone()
    means[7, 1] = float("nan")
    means[9, 0] = float("inf")
    bad = type(g)(means, g.quats, g.scales, g.opacities, g.sh)
    path = tmp_path / "g.ply"
    save_inria_ply(path, bad)

    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "inria_ply" and info["sh_degree"] == 2
    assert info["file_count"] == 50 and info["count"] == 48 and info["non_finite"] == 2
    finite = torch.ones(50, dtype=torch.bool)
    finite[[7, 9]] = False
    assert torch.allclose(torch.tensor(info["bounds"]["min"]), means[finite].min(0).values)
    assert torch.allclose(torch.tensor(info["bounds"]["max"]), means[finite].max(0).values)

    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "SH degree 2" in text and "48" in text and "non-finite 2" in text
