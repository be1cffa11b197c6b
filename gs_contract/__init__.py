"""gs_contract: what the Blender extension and the backend must agree on, written once.

Pure Python with numpy and the standard library only (no torch, no bpy), so both
processes import the same code: the backend as a package, the extension as a bundled
``py3-none-any`` wheel.
"""

from gs_contract.errors import InputError, PoseError

__version__ = "0.1.0"

__all__ = ["InputError", "PoseError", "__version__"]
