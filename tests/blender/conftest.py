"""Shared setup of the Blender-side tests (run in ``.venv-blender`` with the bpy module).

* ``BLENDER_USER_RESOURCES`` points at a fresh temporary folder *before* bpy is imported,
  so the tests never read or write the user's Blender configuration or extensions.
* The repository root and this folder go on ``sys.path`` (``blender_addon``,
  ``ply_factory``).
* Fixtures: ``addon`` (the add-on registered from the source folder, on a clean empty
  scene) and ``fake_layout`` (a stand-in for ``bpy.types.UILayout`` that checks every
  call against Blender's own RNA description of the real API; bpy-as-a-module has no
  window, so panels cannot draw into a real layout).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

_USER_RESOURCES = tempfile.mkdtemp(prefix="gsds-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO), str(Path(__file__).resolve().parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import bpy  # noqa: E402  (must come after BLENDER_USER_RESOURCES is set)
import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_USER_RESOURCES, ignore_errors=True)


@pytest.fixture(scope="session")
def registered_addon():
    """``blender_addon`` registered once per session (unless a test already did it)."""
    import blender_addon

    registered_here = not hasattr(bpy.types.Object, "gsds")
    if registered_here:
        blender_addon.register()
    yield blender_addon
    if registered_here and hasattr(bpy.types.Object, "gsds"):
        blender_addon.unregister()


@pytest.fixture
def addon(registered_addon):
    """The add-on, registered from the source folder, on a clean empty scene."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield registered_addon
    bpy.ops.wm.read_factory_settings(use_empty=True)


# ------------------------------------------------------------------------ fake UILayout


def _rna_parameters(function: str) -> set[str]:
    return set(bpy.types.UILayout.bl_rna.functions[function].parameters.keys())


_ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


class FakeLayout:
    """Records what a draw function asks for and checks it as Blender would.

    Every method that exists on ``UILayout`` is checked against its RNA parameters
    (unknown keywords fail), icons must be Blender icon names, ``prop`` must name an
    existing RNA property of its data, ``operator`` a registered operator and
    ``template_list`` a registered ``UIList`` and real collection/int properties.
    Calls are appended to ``calls`` (shared by the whole layout tree) as
    ``(method, positional args, keyword args)``.
    """

    def __init__(self, calls: list | None = None) -> None:
        self.calls = [] if calls is None else calls
        self.use_property_split = False
        self.use_property_decorate = True
        self.active = True
        self.enabled = True
        self.alert = False
        self.scale_x = 1.0
        self.scale_y = 1.0
        self.alignment = 'EXPAND'

    # -- helpers
    def _record(self, method: str, args: tuple, kwargs: dict) -> None:
        unknown = set(kwargs) - _rna_parameters(method)
        assert not unknown, f"UILayout.{method}() has no parameter(s) {sorted(unknown)}"
        icon = kwargs.get("icon")
        if icon is not None:
            assert icon in _ICONS, f"UILayout.{method}(): unknown icon {icon!r}"
        text = kwargs.get("text")
        if text is not None:
            assert isinstance(text, str), f"UILayout.{method}(): text must be a str"
        self.calls.append((method, args, kwargs))

    def _child(self, method: str, args: tuple, kwargs: dict) -> FakeLayout:
        self._record(method, args, kwargs)
        return FakeLayout(self.calls)

    # -- sub-layouts
    def row(self, **kwargs) -> FakeLayout:
        return self._child("row", (), kwargs)

    def column(self, **kwargs) -> FakeLayout:
        return self._child("column", (), kwargs)

    def box(self) -> FakeLayout:
        return self._child("box", (), {})

    def split(self, **kwargs) -> FakeLayout:
        return self._child("split", (), kwargs)

    # -- items
    def label(self, **kwargs) -> None:
        self._record("label", (), kwargs)

    def separator(self, **kwargs) -> None:
        self._record("separator", (), kwargs)

    def prop(self, data, prop: str, **kwargs) -> None:
        assert hasattr(data, "bl_rna"), f"prop(): {data!r} is not Blender data"
        assert prop in data.bl_rna.properties, \
            f"prop(): {data.bl_rna.identifier} has no property {prop!r}"
        self._record("prop", (data, prop), kwargs)

    def prop_search(self, data, prop: str, search_data, search_prop: str, **kwargs) -> None:
        assert prop in data.bl_rna.properties, f"prop_search(): no property {prop!r}"
        assert search_prop in search_data.bl_rna.properties, \
            f"prop_search(): no collection {search_prop!r}"
        self._record("prop_search", (data, prop, search_data, search_prop), kwargs)

    def operator(self, operator: str, **kwargs):
        module, _, name = operator.partition(".")
        op = getattr(getattr(bpy.ops, module), name)
        try:
            op.get_rna_type()
        except KeyError:
            raise AssertionError(f"operator(): {operator!r} is not registered") from None
        self._record("operator", (operator,), kwargs)
        return _OperatorProperties(operator)

    def template_list(self, listtype_name: str, list_id: str, dataptr, propname: str,
                      active_dataptr, active_propname: str, **kwargs) -> None:
        assert isinstance(getattr(bpy.types, listtype_name, None), type), \
            f"template_list(): UIList {listtype_name!r} is not registered"
        collection = dataptr.bl_rna.properties.get(propname)
        assert collection is not None and collection.type == 'COLLECTION', \
            f"template_list(): {propname!r} is not a collection property"
        active = active_dataptr.bl_rna.properties.get(active_propname)
        assert active is not None and active.type == 'INT', \
            f"template_list(): {active_propname!r} is not an int property"
        self._record("template_list", (listtype_name, list_id, dataptr, propname,
                                       active_dataptr, active_propname), kwargs)

    def progress(self, **kwargs) -> None:
        factor = kwargs.get("factor", 0.0)
        assert 0.0 <= factor <= 1.0, f"progress(): factor {factor} outside [0, 1]"
        assert kwargs.get("type", 'BAR') in {'BAR', 'RING'}
        self._record("progress", (), kwargs)

    # -- queries used by tests
    def called(self, method: str) -> list[tuple]:
        return [(args, kwargs) for m, args, kwargs in self.calls if m == method]

    def props(self) -> list[str]:
        return [args[1] for args, _ in self.called("prop")]

    def operators(self) -> list[str]:
        return [args[0] for args, _ in self.called("operator")]

    def labels(self) -> list[str]:
        return [kwargs.get("text", "") for _, kwargs in self.called("label")]


class _OperatorProperties:
    """What ``layout.operator()`` returns: accepts the operator's own properties only."""

    def __init__(self, idname: str) -> None:
        module, _, name = idname.partition(".")
        rna = getattr(getattr(bpy.ops, module), name).get_rna_type()
        object.__setattr__(self, "_names", set(rna.properties.keys()))

    def __setattr__(self, key: str, value) -> None:
        assert key in self._names, f"operator property {key!r} does not exist"
        object.__setattr__(self, key, value)


@pytest.fixture
def fake_layout():
    """A factory of :class:`FakeLayout` objects."""
    return FakeLayout
