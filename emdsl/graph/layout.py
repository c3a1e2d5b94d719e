"""Where a picture of a :class:`~emdsl.graph.FactorGraph` puts things (no Graphviz):
variables and factors in layers of the generative order, plates as nested rectangles.

- Layers (y, top to bottom): a variable no factor samples is at layer 0; a factor one
  below the lowest variable its arguments read (indices included); the variable it samples
  one below the factor. So hypers sit on top and data at the bottom, and every edge from a
  factor's argument points down.
- Columns (x): the plate nest is a tree. Each tree node gets a horizontal band: its own
  variables and factors on the left (spread per layer), then one band per child plate to
  the right. Sibling plates never overlap and nested plates nest; a plate's rectangle
  spans its band and the layers of everything inside it.

Units: one column and one layer are 1; :func:`layout` returns plain numbers, which
``emdsl.plots.factor_graph`` draws with matplotlib.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..frontend import ast
from .factor_graph import FactorGraph, plate_key

PAD = 0.45          # a plate's margin around its contents (x)


@dataclass(frozen=True)
class PlateBox:
    """One plate's rectangle: ``path`` the plate keys from the outermost to this one (a
    loop over d inside k and another inside n are two boxes)."""
    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    path: tuple

    @property
    def depth(self) -> int:
        return len(self.path)


@dataclass
class Layout:
    """positions: node -> (x, y) (variables by name, factors by their graph node);
    labels: node -> text; roles: variable -> role; plates: PlateBoxes; edges: (factor
    node, variable, dashed: an index or covariate reference)."""
    positions: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    plates: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0


def _homes(fg: FactorGraph) -> dict:
    """node -> its plate path (a tuple of plate keys, outermost first): a factor's loops;
    a sampled variable's, those of the loops that sample it (as many as its plate axes);
    any other variable with a plate (a param without a prior, a covariate), one plate per
    declared axis: a loop over ``1:<that size>`` where the model has one, else a plate of
    its own (``k = 1..K``)."""
    cm, homes = fg.model, {}
    over: dict = {}   # a size's text -> the key of a loop 1..size
    for i, f in enumerate(cm.factors):
        homes[fg.node_of(i)] = tuple(plate_key(lp) for lp in f.loops)
        for lp in f.loops:
            if ast.show(lp.start) == "1":
                over.setdefault(ast.show(lp.stop), plate_key(lp))
    for name, v in cm.vars.items():
        rank, sampled = len(v.shape), fg.sampling_factors(name)
        if sampled:
            homes[name] = tuple(plate_key(lp) for lp in cm.factors[sampled[0]].loops)[:rank]
        else:
            homes[name] = tuple(over.get(ast.show(d), (ast.show(d).lower(), "1", ast.show(d)))
                                for d in v.shape)
    return homes


def _layers(fg: FactorGraph) -> dict:
    """node -> layer (see the module's docstring)."""
    cm, layer, busy = fg.model, {}, set()

    def of_var(name):
        if name in layer:
            return layer[name]
        sampled = fg.sampling_factors(name)
        if not sampled or name in busy:   # (a cycle cannot occur in a valid model)
            layer[name] = 0
            return 0
        busy.add(name)
        i = sampled[0]
        parents = {r.var for r in fg.refs(i) if r.arg != "target" and r.var != name}
        fl = 1 + max((of_var(p) for p in parents), default=0)
        layer[fg.node_of(i)] = fl
        layer[name] = fl + 1
        busy.discard(name)
        return fl + 1

    for name in cm.vars:
        of_var(name)
    for i in range(len(cm.factors)):   # factors of variables sampled twice (never valid)
        layer.setdefault(fg.node_of(i), 1)
    return layer


def layout(fg: FactorGraph) -> Layout:
    """The layout of ``fg``: see the module's docstring."""
    cm = fg.model
    homes, layers = _homes(fg), _layers(fg)
    tree: dict = {"nodes": [], "children": {}}
    for node, path in homes.items():
        t = tree
        for key in path:
            t = t["children"].setdefault(key, {"nodes": [], "children": {}})
        t["nodes"].append(node)
    out = Layout()

    def band(t, x0: float, depth: int, path: tuple = ()) -> tuple[float, int, int]:
        """Place subtree ``t`` from x0; returns (its width, min layer, max layer)."""
        by_layer: dict = {}
        for node in t["nodes"]:
            by_layer.setdefault(layers[node], []).append(node)
        inner = x0 + (PAD if depth else 0.0)
        own = max((len(v) for v in by_layer.values()), default=0)
        for lay, nodes in by_layer.items():
            start = inner + (own - len(nodes)) / 2
            for j, node in enumerate(sorted(nodes, key=_order(fg))):
                out.positions[node] = (start + j + 0.5, -float(lay))
        cursor = inner + own
        lo = min(by_layer, default=None)
        hi = max(by_layer, default=None)
        for key, child in t["children"].items():
            cursor += 0.3 if cursor > inner else 0.0
            w, clo, chi = band(child, cursor, depth + 1, path + (key,))
            pad_y = 0.42 + 0.3 * (_depth(child) - 1)   # room for nested plates' labels
            out.plates.append(PlateBox(f"{key[0]} = {key[1]}..{key[2]}", cursor,
                                       -chi - pad_y - 0.12, cursor + w, -clo + pad_y,
                                       path + (key,)))
            cursor += w
            lo = clo if lo is None else min(lo, clo)
            hi = chi if hi is None else max(hi, chi)
        width = cursor - x0 + (PAD if depth else 0.0)
        return width, (lo if lo is not None else 0), (hi if hi is not None else 0)

    width, lo, hi = band(tree, 0.0, 0)
    for node, (x, y) in out.positions.items():
        if node in cm.vars:
            out.labels[node] = node
            out.roles[node] = cm.vars[node].role
        else:
            out.labels[node] = fg.g.nodes[node]["family"]
    for i in range(len(cm.factors)):
        for r in fg.refs(i):
            covariate = r.arg != "target" and cm.vars[r.var].role == "data" \
                and not fg.sampling_factors(r.var)
            out.edges.append((fg.node_of(i), r.var, r.arg == "index" or covariate))
    out.width, out.height = width, hi - lo + 1
    return out


def _depth(t) -> int:
    return 1 + max((_depth(c) for c in t["children"].values()), default=0)


def _order(fg: FactorGraph):
    """Nodes of one layer: declaration order of the variables, factors in source order."""
    names = list(fg.model.vars)

    def key(node):
        return (0, names.index(node)) if node in fg.model.vars else \
            (1, fg.g.nodes[node]["index"])
    return key
