"""The add-on's Blender modules: properties, operators, panels and handlers (import bpy).

They stay thin: they read the scene and hand plain values to ``blender_addon.core`` and
``gs_contract``.
"""
