"""Point proxies: a Blender mesh standing for the Gaussians of one file.

One vertex per Gaussian (no edges, no faces), at the Gaussian's centre in the file's
coordinates, with POINT attributes:

* ``gs_index`` (INT): the Gaussian's row in the source file. Deleting vertices deletes
  those Gaussians from the dataset (the exporter writes the kept rows as ``keep``).
* ``gs_color`` (BYTE_COLOR): the DC colour ``clip(0.5 + C0 * f_dc, 0, 1)``, stored as
  sRGB bytes (the values a backend render writes to its images), alpha 1.
* ``gs_opacity`` (FLOAT): the opacity, in (0, 1).
* ``gs_scale`` (FLOAT): the largest of the three standard deviations, in the file's units.
* ``gs_palette`` (INT): ``gs_color`` rounded to a 4 x 4 x 4 palette, for Solid mode.

A geometry-nodes modifier (:data:`MODIFIER_NAME`, node group :data:`NODE_GROUP_NAME`,
built here in Python) draws the vertices as points of radius ``gs_scale * Point Size``
and keeps a random ``Display Density`` share of them. It only changes what the viewport
shows, never the mesh. Colours:

* Material Preview / Rendered: every point shows its exact ``gs_color`` (an Attribute
  node feeding an Emission shader, so the colour is shown unlit, as splats are).
* Solid mode, colour "Material" (Blender's default): Blender's Solid mode draws one
  colour per point cloud and cannot show a per-point attribute, so the points are split
  by ``gs_palette`` into 64 point clouds whose materials' viewport colours are the
  palette colours.

The data is never rotated: an upright conversion goes into the object's rotation
(:data:`UPRIGHT_ROTATIONS`), so the object's matrix stays "file coordinates -> world".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np
from bpy.types import Collection, Material, Mesh, NodeTree, Object

from gs_contract.splats import SplatData, usable_rows

NODE_GROUP_NAME = "GSDS Point Proxy"
NODE_GROUP_VERSION = 1  # bump when the group changes: older files get a new group
MATERIAL_PREFIX = ".GSDS Splat Colour"  # a leading dot hides them from material lists
PALETTE_LEVELS = 4  # per channel: 4**3 = 64 Solid-mode colours
MODIFIER_NAME = "GS Points"
DENSITY_SOCKET = "Display Density"
POINT_SIZE_SOCKET = "Point Size"
ATTR_INDEX = "gs_index"
ATTR_COLOR = "gs_color"
ATTR_OPACITY = "gs_opacity"
ATTR_SCALE = "gs_scale"
ATTR_PALETTE = "gs_palette"

# The one place where capture axis conventions meet Blender's: XYZ Euler angles (radians)
# of the object rotation that stands a file upright in Blender (z up, looking along +y).
# The choices (and their descriptions) are properties.UPRIGHT_ITEMS.
UPRIGHT_ROTATIONS: dict[str, tuple[float, float, float]] = {
    'NONE': (0.0, 0.0, 0.0),
    'Y_DOWN': (-math.pi / 2, 0.0, 0.0),  # file -y (up) -> +z, file +z (forward) -> +y
    'Y_UP': (math.pi / 2, 0.0, 0.0),  # file +y (up) -> +z, file -z (forward) -> +y
}


@dataclass(frozen=True)
class ProxyArrays:
    """Per-vertex arrays of a proxy, C-contiguous and typed for ``foreach_set``.

    Attributes:
        positions: ``[M, 3]`` float32 centres (file coordinates).
        index: ``[M]`` int32 row of each vertex in the source file.
        color: ``[M, 4]`` float32 sRGB RGBA in [0, 1] (alpha 1).
        opacity: ``[M]`` float32 in (0, 1).
        scale: ``[M]`` float32 largest standard deviation.
        palette: ``[M]`` int32 Solid-mode palette entry (see :func:`palette_index`).
        skipped: rows left out (non-finite values or a zero quaternion).
    """

    positions: np.ndarray
    index: np.ndarray
    color: np.ndarray
    opacity: np.ndarray
    scale: np.ndarray
    palette: np.ndarray
    skipped: int


def palette_index(srgb: np.ndarray) -> np.ndarray:
    """``[M, 3]`` sRGB colours in [0, 1] -> ``[M]`` int32 nearest palette entry.

    Entry ``r + L g + L^2 b`` for levels ``r, g, b`` in ``0..L-1`` (L = PALETTE_LEVELS),
    level ``round(c * (L - 1))``.
    """
    levels = np.rint(srgb * (PALETTE_LEVELS - 1)).astype(np.int32)
    return levels[:, 0] + PALETTE_LEVELS * levels[:, 1] + PALETTE_LEVELS**2 * levels[:, 2]


def proxy_arrays(splat: SplatData) -> ProxyArrays:
    """Vertex arrays for ``splat``, leaving out the rows the backend drops too
    (:func:`gs_contract.splats.usable_rows`). Pure numpy (no Blender), vectorised."""
    usable = usable_rows(splat)
    if usable.all():
        rows = np.arange(splat.count, dtype=np.int32)
        pick = np.ascontiguousarray
    else:  # rare: leave the unusable rows out
        rows = np.flatnonzero(usable).astype(np.int32)
        pick = (lambda a: np.ascontiguousarray(a[rows]))  # noqa: E731
    color = np.ones((rows.size, 4), dtype=np.float32)
    color[:, :3] = pick(splat.dc_colors())
    return ProxyArrays(
        positions=pick(splat.means).astype(np.float32, copy=False),
        index=rows,
        color=color,
        opacity=pick(splat.opacities),
        scale=pick(splat.scales.max(axis=1)),
        palette=palette_index(color[:, :3]),
        skipped=splat.count - rows.size,
    )


def build_proxy_mesh(name: str, arrays: ProxyArrays) -> Mesh:
    """A new mesh with one vertex per row of ``arrays`` and the ``gs_*`` POINT attributes."""
    mesh = bpy.data.meshes.new(name)
    try:
        mesh.vertices.add(arrays.index.size)
        # The "position" attribute takes the buffer as is (vertices' "co" converts per item).
        mesh.attributes["position"].data.foreach_set("vector", arrays.positions.ravel())
        mesh.attributes.new(ATTR_INDEX, 'INT', 'POINT').data.foreach_set("value", arrays.index)
        color = mesh.attributes.new(ATTR_COLOR, 'BYTE_COLOR', 'POINT')
        color.data.foreach_set("color_srgb", arrays.color.ravel())
        mesh.attributes.new(ATTR_OPACITY, 'FLOAT', 'POINT').data.foreach_set(
            "value", arrays.opacity)
        mesh.attributes.new(ATTR_SCALE, 'FLOAT', 'POINT').data.foreach_set("value", arrays.scale)
        mesh.attributes.new(ATTR_PALETTE, 'INT', 'POINT').data.foreach_set(
            "value", arrays.palette)
        mesh.color_attributes.active_color_name = ATTR_COLOR  # Solid mode, colour "Attribute"
        mesh.color_attributes.default_color_name = ATTR_COLOR  # the one renderers use
        mesh.update()
    except Exception:
        bpy.data.meshes.remove(mesh)
        raise
    return mesh


# ------------------------------------------------------------------------------ material


def _srgb_to_linear(value: float) -> float:
    if value <= 0.04045:
        return value / 12.92
    return ((value + 0.055) / 1.055) ** 2.4


def palette_colors() -> list[tuple[float, float, float]]:
    """sRGB colour of each palette entry, in entry order."""
    top = PALETTE_LEVELS - 1
    return [((k % PALETTE_LEVELS) / top, (k // PALETTE_LEVELS % PALETTE_LEVELS) / top,
             (k // PALETTE_LEVELS**2) / top) for k in range(PALETTE_LEVELS**3)]


def ensure_materials() -> list[Material]:
    """The proxy materials, one per palette entry (shared by every proxy of the file).

    Each shows the exact ``gs_color`` in Material Preview (Attribute -> Emission) and its
    palette colour in Solid mode (``diffuse_color``, scene-linear).
    """
    materials = []
    for entry, srgb in enumerate(palette_colors()):
        name = f"{MATERIAL_PREFIX} {entry:02d}"
        material = bpy.data.materials.get(name)
        if material is None or material.get("gsds_version") != NODE_GROUP_VERSION:
            material = _new_material(name)
        material.diffuse_color = (*(_srgb_to_linear(c) for c in srgb), 1.0)
        materials.append(material)
    return materials


def _new_material(name: str) -> Material:
    material = bpy.data.materials.new(name)
    material["gsds_version"] = NODE_GROUP_VERSION
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True  # always on (and deprecated) from Blender 5.0
    nodes = material.node_tree.nodes
    nodes.clear()
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_type = 'GEOMETRY'
    attribute.attribute_name = ATTR_COLOR
    attribute.location = (-400, 0)
    emission = nodes.new("ShaderNodeEmission")
    emission.location = (-150, 0)
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (100, 0)
    links = material.node_tree.links
    links.new(attribute.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


# ---------------------------------------------------------------------------- node group


def _output_of_type(node: bpy.types.Node, socket_type: str) -> bpy.types.NodeSocket:
    """The enabled output of ``node`` of ``socket_type`` (nodes with per-type outputs)."""
    for socket in node.outputs:
        if socket.type == socket_type and socket.enabled:
            return socket
    raise LookupError(f"node {node.bl_idname} has no enabled {socket_type} output")


def _input_named(node: bpy.types.Node, name: str) -> bpy.types.NodeSocket:
    for socket in node.inputs:
        if socket.name == name and socket.enabled:
            return socket
    raise LookupError(f"node {node.bl_idname} has no enabled input {name!r}")


def ensure_node_group() -> NodeTree:
    """The geometry-nodes group that draws a proxy (built once per .blend, then shared).

    Geometry -> Delete Geometry (points whose random draw, seeded by ``gs_index``, falls
    above the density) -> Mesh to Points (radius ``gs_scale * Point Size``) -> one
    Separate Geometry + Set Material per palette entry -> Geometry to Instance. Built
    with the ``NodeTree.interface`` API (Blender 4.0+).
    """
    group = bpy.data.node_groups.get(NODE_GROUP_NAME)
    if group is not None and group.get("gsds_version") == NODE_GROUP_VERSION:
        return group
    group = bpy.data.node_groups.new(NODE_GROUP_NAME, 'GeometryNodeTree')
    group["gsds_version"] = NODE_GROUP_VERSION
    interface = group.interface
    interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
    density = interface.new_socket(DENSITY_SOCKET, in_out='INPUT',
                                   socket_type='NodeSocketFloat')
    density.default_value, density.min_value, density.max_value = 1.0, 0.0, 1.0
    density.description = "Share of the points drawn (display only)"
    if hasattr(density, "subtype"):
        density.subtype = 'FACTOR'
    size = interface.new_socket(POINT_SIZE_SOCKET, in_out='INPUT',
                                socket_type='NodeSocketFloat')
    size.default_value, size.min_value, size.max_value = 1.0, 0.0, 100.0
    size.description = "Point radius in units of each Gaussian's largest standard deviation"
    interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')

    nodes, links = group.nodes, group.links
    group_in = nodes.new("NodeGroupInput")
    group_in.location = (-1100, 0)

    def named_attribute(name: str, data_type: str, y: float) -> bpy.types.NodeSocket:
        node = nodes.new("GeometryNodeInputNamedAttribute")
        node.data_type = data_type
        _input_named(node, "Name").default_value = name
        node.location = (-1100, y)
        return _output_of_type(node, 'VALUE' if data_type == 'FLOAT' else data_type)

    # Display density: delete the points whose random boolean (P = 1 - density) is true.
    drop_share = nodes.new("ShaderNodeMath")
    drop_share.operation = 'SUBTRACT'
    drop_share.inputs[0].default_value = 1.0
    drop_share.location = (-850, -100)
    draw = nodes.new("FunctionNodeRandomValue")
    draw.data_type = 'BOOLEAN'
    draw.location = (-650, -150)
    delete = nodes.new("GeometryNodeDeleteGeometry")
    delete.domain, delete.mode = 'POINT', 'ALL'
    delete.location = (-450, 0)
    links.new(group_in.outputs[DENSITY_SOCKET], drop_share.inputs[1])
    links.new(drop_share.outputs[0], _input_named(draw, "Probability"))
    links.new(named_attribute(ATTR_INDEX, 'INT', -250), _input_named(draw, "ID"))
    links.new(group_in.outputs["Geometry"], _input_named(delete, "Geometry"))
    links.new(_output_of_type(draw, 'BOOLEAN'), _input_named(delete, "Selection"))

    # Points sized by the Gaussians.
    radius = nodes.new("ShaderNodeMath")
    radius.operation = 'MULTIPLY'
    radius.location = (-450, -300)
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = 'VERTICES'
    to_points.location = (-250, 0)
    links.new(named_attribute(ATTR_SCALE, 'FLOAT', -400), radius.inputs[0])
    links.new(group_in.outputs[POINT_SIZE_SOCKET], radius.inputs[1])
    links.new(delete.outputs["Geometry"], _input_named(to_points, "Mesh"))
    links.new(radius.outputs[0], _input_named(to_points, "Radius"))

    # One point cloud (one material) per palette entry, kept apart as instances.
    palette = named_attribute(ATTR_PALETTE, 'INT', -600)
    to_instance = nodes.new("GeometryNodeGeometryToInstance")
    to_instance.location = (700, 0)
    for entry, material in enumerate(ensure_materials()):
        y = -150.0 * entry
        is_entry = nodes.new("FunctionNodeCompare")
        is_entry.data_type, is_entry.operation = 'INT', 'EQUAL'
        is_entry.location = (0, y)
        compare_inputs = [s for s in is_entry.inputs if s.enabled and s.type == 'INT']
        links.new(palette, compare_inputs[0])
        compare_inputs[1].default_value = entry
        separate = nodes.new("GeometryNodeSeparateGeometry")
        separate.domain = 'POINT'
        separate.location = (200, y)
        links.new(to_points.outputs["Points"], _input_named(separate, "Geometry"))
        links.new(is_entry.outputs[0], _input_named(separate, "Selection"))
        set_material = nodes.new("GeometryNodeSetMaterial")
        _input_named(set_material, "Material").default_value = material
        set_material.location = (450, y)
        links.new(separate.outputs[0], _input_named(set_material, "Geometry"))
        links.new(set_material.outputs["Geometry"], to_instance.inputs[0])
    group_out = nodes.new("NodeGroupOutput")
    group_out.location = (900, 0)
    links.new(to_instance.outputs[0], group_out.inputs[0])
    return group


def _socket_identifier(group: NodeTree, name: str) -> str:
    for item in group.interface.items_tree:
        if getattr(item, "in_out", None) == 'INPUT' and item.name == name:
            return item.identifier
    raise LookupError(f"node group {group.name!r} has no input {name!r}")


def display_modifier(obj: Object) -> bpy.types.NodesModifier | None:
    """The proxy's display modifier, or None."""
    modifier = obj.modifiers.get(MODIFIER_NAME)
    if modifier is None or modifier.type != 'NODES' or modifier.node_group is None:
        return None
    return modifier


def add_display_modifier(obj: Object, density: float = 1.0,
                         point_size: float = 1.0) -> bpy.types.NodesModifier:
    """Give ``obj`` the point-drawing modifier (see :func:`ensure_node_group`)."""
    modifier = obj.modifiers.new(MODIFIER_NAME, 'NODES')
    modifier.node_group = ensure_node_group()
    modifier[_socket_identifier(modifier.node_group, POINT_SIZE_SOCKET)] = float(point_size)
    set_display_density(obj, density)
    return modifier


def set_display_density(obj: Object, density: float) -> None:
    """Show ``density`` (0-1) of the proxy's points; the mesh itself is left alone."""
    modifier = display_modifier(obj)
    if modifier is None:
        return
    identifier = _socket_identifier(modifier.node_group, DENSITY_SOCKET)
    value = min(max(float(density), 0.0), 1.0)
    if modifier.get(identifier) != value:
        modifier[identifier] = value
        obj.update_tag()


# -------------------------------------------------------------------------------- object


def is_proxy(obj: Object | None) -> bool:
    """True for a mesh object with a ``gs_index`` point attribute."""
    if obj is None or obj.type != 'MESH':
        return False
    attribute = obj.data.attributes.get(ATTR_INDEX)
    return attribute is not None and attribute.domain == 'POINT'


def create_proxy_object(splat: SplatData, name: str, collection: Collection, *,
                        upright: str = 'NONE', display_density: float = 1.0,
                        point_size: float = 1.0) -> tuple[Object, ProxyArrays]:
    """Build the proxy of ``splat`` as a new object linked into ``collection``.

    Args:
        splat: the file's Gaussians.
        name: object and mesh name (Blender adds a suffix when it is taken).
        collection: where the object is linked.
        upright: a key of :data:`UPRIGHT_ROTATIONS`, applied to the object's rotation.
        display_density: initial share of points drawn.
        point_size: radius factor of the drawn points.

    Returns:
        The object and the arrays it was built from (``skipped`` = unusable rows).
    """
    arrays = proxy_arrays(splat)
    mesh = build_proxy_mesh(name, arrays)
    obj = bpy.data.objects.new(name, mesh)
    try:
        obj.rotation_euler = UPRIGHT_ROTATIONS[upright]
        settings = obj.gsds
        settings.source_path = splat.path
        settings.gaussian_count = splat.count
        settings.nonfinite_count = arrays.skipped
        settings.sh_degree = splat.sh_degree
        settings.source_format = splat.format
        add_display_modifier(obj, display_density, point_size)
        settings.display_density = display_density
        collection.objects.link(obj)
    except Exception:
        bpy.data.objects.remove(obj)
        bpy.data.meshes.remove(mesh)
        raise
    return obj, arrays
