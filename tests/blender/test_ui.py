"""Settings, panels, class list, preferences and registration.

bpy-as-a-module has no window, so panels draw into ``FakeLayout`` (conftest), which
checks each call against Blender's RNA description of the real ``UILayout`` API: unknown
keywords, icons, properties, operators and list types fail the test.
"""

from __future__ import annotations

from types import SimpleNamespace

import bmesh
import bpy
import pytest
from ply_factory import write_inria_ply

from blender_addon.blender import panels, preferences


def enum_ids(struct, prop: str) -> list[str]:
    return [item.identifier for item in struct.bl_rna.properties[prop].enum_items]


def draw(panel_class, context, fake_layout):
    layout = fake_layout()
    assert panel_class.poll(context)
    panel_class.draw(SimpleNamespace(layout=layout), context)
    return layout


@pytest.fixture
def proxy(addon, tmp_path):
    path = tmp_path / "needle_driver.ply"
    write_inria_ply(path, n=30, sh_degree=2)
    bpy.ops.gsds.import_ply(filepath=str(path))
    return bpy.context.view_layer.objects.active


# ------------------------------------------------------------------------- the contract


def test_object_settings_contract(addon):
    settings = bpy.types.Object.bl_rna.properties["gsds"].fixed_type
    props = settings.properties
    assert enum_ids(settings, "role") == ['NONE', 'BACKGROUND', 'INSTRUMENT']
    assert props["role"].default == 'NONE'
    assert props["class_name"].type == 'STRING'
    assert props["instance"].type == 'STRING' and props["instance"].default == ""
    assert "share one instance name" in props["instance"].description
    assert props["source_path"].subtype == 'FILE_PATH'
    assert props["gaussian_count"].type == props["sh_degree"].type == 'INT'
    assert props["source_format"].type == 'STRING'
    density = props["display_density"]
    assert (density.type, density.hard_min, density.hard_max) == ('FLOAT', 0.0, 1.0)


def test_scene_settings_contract(addon):
    settings = bpy.types.Scene.bl_rna.properties["gsds"].fixed_type
    props = settings.properties
    scene = bpy.context.scene.gsds
    assert props["classes"].type == 'COLLECTION' and props["active_class_index"].type == 'INT'
    assert props["output_dir"].subtype == 'DIR_PATH' and scene.output_dir == "//gs_dataset/"
    assert enum_ids(settings, "frames") == ['ALL', 'KEYFRAMES']
    assert enum_ids(settings, "yolo_task") == ['DETECT', 'SEGMENT']
    assert enum_ids(settings, "image_format") == ['PNG', 'JPG']
    assert (scene.coco, scene.masks, scene.amodal, scene.depth) == (True, True, False, False)
    assert props["overwrite"].type == 'BOOLEAN' and scene.overwrite is False
    assert scene.val_fraction == pytest.approx(0.2)
    assert (props["val_fraction"].hard_min, props["val_fraction"].hard_max) == (0.0, 1.0)
    assert not {"is_rendering", "progress", "status", "last_summary"} & set(props.keys())


def test_session_state_contract(addon):
    """The render state is on the WindowManager (never saved), not on the Scene."""
    state = bpy.types.WindowManager.bl_rna.properties["gsds_session"].fixed_type
    assert state.properties["progress"].subtype == 'FACTOR'
    session = bpy.context.window_manager.gsds_session
    assert (session.is_rendering, session.progress, session.status, session.last_summary) == \
        (False, 0.0, "", "")


def test_preferences_contract(addon):
    prefs = preferences.GSDS_Preferences
    assert prefs.bl_idname == "blender_addon"  # __package__ of the source folder
    props = prefs.bl_rna.properties
    assert props["backend_command"].default == "gs-backend"
    assert enum_ids(prefs, "device") == ['AUTO', 'CPU', 'CUDA']
    # Registered as a module, not enabled as an add-on: no preferences to read.
    assert preferences.get_preferences(bpy.context) is None


def test_preferences_draw(addon, fake_layout):
    layout = fake_layout()
    owner = SimpleNamespace(layout=layout, bl_rna=preferences.GSDS_Preferences.bl_rna,
                            sidecar_mode='LOCAL')
    preferences.GSDS_Preferences.draw(owner, bpy.context)
    assert layout.props() == ["backend_command", "device", "sidecar_mode"]
    owner.sidecar_mode, owner.layout = 'REMOTE', fake_layout()
    preferences.GSDS_Preferences.draw(owner, bpy.context)
    assert owner.layout.props() == ["backend_command", "device", "sidecar_mode",
                                    "sidecar_url", "sidecar_token_file"]


# --------------------------------------------------------------------------- class list


def test_typed_class_name_joins_the_scene_classes(proxy):
    scene = bpy.context.scene
    proxy.gsds.role = 'INSTRUMENT'
    proxy.gsds.class_name = "needle_driver"
    proxy.gsds.class_name = "grasper"
    proxy.gsds.class_name = "needle_driver"  # known: not added twice
    assert [c.name for c in scene.gsds.classes] == ["needle_driver", "grasper"]
    from blender_addon.blender.properties import _class_name_search

    assert _class_name_search(proxy.gsds, bpy.context, "GRAS") == ["grasper"]
    assert _class_name_search(proxy.gsds, bpy.context, "") == ["needle_driver", "grasper"]


def test_class_add_and_remove_operators(proxy):
    settings = bpy.context.scene.gsds
    bpy.ops.gsds.class_add(name="grasper")
    bpy.ops.gsds.class_add()
    bpy.ops.gsds.class_add(name="grasper")  # already there: selected, not duplicated
    assert [c.name for c in settings.classes] == ["grasper", "class_2"]
    assert settings.active_class_index == 0
    proxy.gsds.role, proxy.gsds.class_name = 'INSTRUMENT', "grasper"
    bpy.ops.gsds.class_remove()
    assert [c.name for c in settings.classes] == ["class_2"]
    assert proxy.gsds.class_name == "grasper"  # a plain string: left as it was
    bpy.ops.gsds.class_remove()
    assert len(settings.classes) == 0
    assert not bpy.ops.gsds.class_remove.poll()


# ------------------------------------------------------------------------------ panels


def test_panels_are_in_the_sidebar_tab(addon):
    for cls in panels.classes[1:]:
        registered = getattr(bpy.types, cls.__name__)
        assert registered.bl_space_type == 'VIEW_3D' and registered.bl_region_type == 'UI'
        assert registered.bl_category == "GS Dataset"


def test_object_panel_on_a_proxy(proxy, fake_layout):
    proxy.gsds.role = 'INSTRUMENT'
    layout = draw(panels.GSDS_PT_object, bpy.context, fake_layout)
    assert layout.props() == ["role", "class_name", "instance", "display_density"]
    assert "gsds.split_part" not in layout.operators()  # offered in Edit Mode only
    labels = layout.labels()
    assert "needle_driver.ply" in labels
    assert "Gaussians: 30" in labels and "SH degree: 2" in labels
    assert any("Set a class" in text for text in labels)
    proxy.gsds.class_name = "needle_driver"
    labels = draw(panels.GSDS_PT_object, bpy.context, fake_layout).labels()
    assert not any("Set a class" in text for text in labels)


def test_object_panel_names_the_other_parts_of_the_instance(proxy, fake_layout):
    proxy.gsds.role = 'INSTRUMENT'
    proxy.gsds.class_name = "grasper"
    jaw = proxy.copy()
    bpy.context.scene.collection.objects.link(jaw)
    jaw.name = "jaw"
    jaw.gsds.instance = proxy.name  # names the proxy, whose instance is its own name
    labels = draw(panels.GSDS_PT_object, bpy.context, fake_layout).labels()
    assert f"One instance with {', '.join(sorted([proxy.name, 'jaw']))}" in labels
    jaw.gsds.role = 'BACKGROUND'
    labels = draw(panels.GSDS_PT_object, bpy.context, fake_layout).labels()
    assert not any(text.startswith("One instance") for text in labels)
    proxy.gsds.role = 'BACKGROUND'
    assert "instance" not in draw(panels.GSDS_PT_object, bpy.context, fake_layout).props()


def test_object_panel_offers_the_split_in_edit_mode(proxy, fake_layout):
    proxy.gsds.role = 'INSTRUMENT'
    bpy.ops.object.mode_set(mode='EDIT')
    try:
        assert "gsds.split_part" in draw(panels.GSDS_PT_object, bpy.context,
                                         fake_layout).operators()
    finally:
        bpy.ops.object.mode_set(mode='OBJECT')


def test_object_panel_shows_edited_and_missing_sources(proxy, fake_layout, tmp_path):
    mesh = bmesh.new()
    mesh.from_mesh(proxy.data)
    bmesh.ops.delete(mesh, geom=list(mesh.verts)[:10], context='VERTS')
    mesh.to_mesh(proxy.data)
    mesh.free()
    proxy.gsds.source_path = str(tmp_path / "moved_away.ply")
    labels = draw(panels.GSDS_PT_object, bpy.context, fake_layout).labels()
    assert "Kept in this proxy: 20" in labels
    assert "Source file not found" in labels


def test_object_panel_without_a_proxy(addon, fake_layout):
    bpy.ops.mesh.primitive_cube_add()
    layout = draw(panels.GSDS_PT_object, bpy.context, fake_layout)
    assert layout.props() == []
    assert layout.operators() == ["gsds.import_ply"]
    bpy.context.view_layer.objects.active = None
    assert not panels.GSDS_PT_object.poll(bpy.context)


def test_dataset_panel(addon, fake_layout):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    scene.render.resolution_percentage = 50
    bpy.ops.gsds.class_add(name="grasper")
    layout = draw(panels.GSDS_PT_dataset, bpy.context, fake_layout)
    assert layout.props() == ["output_dir", "overwrite", "frames", "yolo_task", "coco",
                              "masks", "amodal", "depth", "val_fraction", "image_format"]
    assert layout.operators() == ["gsds.class_add", "gsds.class_remove"]
    assert "960 x 540 px" in layout.labels()
    # The size shown is the size exported: Blender's integer arithmetic, not float rounding.
    scene.render.resolution_x, scene.render.resolution_y = 100, 300
    scene.render.resolution_percentage = 29
    assert "29 x 87 px" in draw(panels.GSDS_PT_dataset, bpy.context, fake_layout).labels()
    (args, _), = layout.called("template_list")
    assert args[0] == "GSDS_UL_classes" and args[3] == "classes"
    # The list's rows: index (the class id in the labels) and the editable name.
    row = fake_layout()
    item = scene.gsds.classes[0]
    panels.GSDS_UL_classes.draw_item(None, bpy.context, row, scene.gsds, item, 0,
                                     scene.gsds, "active_class_index", 0)
    assert row.labels() == ["0"] and row.props() == ["name"]


def test_render_panel_idle_and_rendering(addon, fake_layout):
    settings = bpy.context.window_manager.gsds_session
    layout = draw(panels.GSDS_PT_render, bpy.context, fake_layout)
    assert layout.operators() == ["gsds.render_dataset", "gsds.export_scenario"]
    assert layout.called("progress") == []
    settings.is_rendering, settings.progress, settings.status = True, 0.25, "Frame 10/40"
    settings.last_summary = "40 frames, 75 instances\n12.5 s"
    layout = draw(panels.GSDS_PT_render, bpy.context, fake_layout)
    assert layout.operators() == ["gsds.cancel_render"]
    (_, kwargs), = layout.called("progress")
    assert kwargs == {"factor": 0.25, "type": 'BAR', "text": "Frame 10/40 (25%)"}
    assert layout.labels()[-2:] == ["40 frames, 75 instances", "12.5 s"]


def test_status_bar_shows_progress_only_while_rendering(addon, fake_layout):
    assert panels.draw_status_bar in bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()
    owner = SimpleNamespace(layout=fake_layout())
    panels.draw_status_bar(owner, bpy.context)
    assert owner.layout.calls == []
    settings = bpy.context.window_manager.gsds_session
    settings.is_rendering, settings.progress = True, 0.5
    panels.draw_status_bar(owner, bpy.context)
    (_, kwargs), = owner.layout.called("progress")
    assert kwargs["factor"] == 0.5 and kwargs["text"] == "Rendering 50%"


def test_file_import_menu_entry(addon, fake_layout):
    from blender_addon.blender.operators_import import menu_func_import

    assert menu_func_import in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
    owner = SimpleNamespace(layout=fake_layout())
    menu_func_import(owner, bpy.context)
    assert owner.layout.operators() == ["gsds.import_ply"]


def test_import_dialog_draw(addon, fake_layout):
    from blender_addon.blender.operators_import import GSDS_OT_import_ply

    owner = SimpleNamespace(layout=fake_layout(), role='INSTRUMENT',
                            bl_rna=bpy.ops.gsds.import_ply.get_rna_type())
    GSDS_OT_import_ply.draw(owner, bpy.context)
    assert owner.layout.props() == ["upright", "role", "class_name", "display_density",
                                    "point_size"]


# ------------------------------------------------------------------------ registration


def test_unregister_removes_everything_and_register_restores_it(registered_addon):
    registered_addon.unregister()
    try:
        assert not hasattr(bpy.types.Object, "gsds") and not hasattr(bpy.types.Scene, "gsds")
        assert not hasattr(bpy.types.WindowManager, "gsds_session")
        for idname in ("import_ply", "class_add", "class_remove", "split_part"):
            with pytest.raises(KeyError):
                getattr(bpy.ops.gsds, idname).get_rna_type()
        assert not hasattr(bpy.types, "GSDS_PT_object")
        from blender_addon.blender.operators_import import menu_func_import

        assert menu_func_import not in bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
        assert panels.draw_status_bar not in \
            bpy.types.STATUSBAR_HT_header._dyn_ui_initialize()
    finally:
        registered_addon.register()
    assert hasattr(bpy.types.Object, "gsds")
    bpy.ops.gsds.import_ply.get_rna_type()
