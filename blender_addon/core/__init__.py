"""The add-on's pure modules: no bpy, importable and tested outside Blender (numpy 1 and 2).

Everything here works on plain values (arrays, dicts, paths, processes); the modules in
``blender_addon.blender`` read the Blender scene and call these.
"""
