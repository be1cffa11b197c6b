"""Procedural stand-ins for captured splats, and the bundled demo scenario.

The demo needs Gaussian assets that nobody has to download: a tissue surface
(:func:`make_tissue`) and a needle-driver-like instrument with a view-dependent
shine (:func:`make_needle_driver`). :func:`build_demo` writes them as Inria PLY
files next to a ``gs-scenario`` v1 file that poses them over a short clip.
"""

from gs_backend.synthetic.demo_scenario import build_demo, demo_scenario_dict
from gs_backend.synthetic.instrument import make_needle_driver
from gs_backend.synthetic.tissue import make_tissue

__all__ = ["build_demo", "demo_scenario_dict", "make_needle_driver", "make_tissue"]
