"""Stage 3: :class:`~emdsl.check.CheckedModel` -> :class:`FactorGraph` (networkx).

Variable nodes carry ``role``, ``type`` and ``plate`` (the dims of their shape); factor
nodes carry ``family``, ``span``, ``index`` (position in ``CheckedModel.factors``) and
``plates`` (their loops, outermost first).  There is one edge per reference of a factor to
a variable, with ``arg`` (the family argument, ``'target'`` for the sampled variable,
``'index'`` for a selector used inside an index), ``kind`` (``whole``, ``direct``,
``group``, ``gate``, ``lag``; see :mod:`emdsl.graph.index`) and ``ref`` (the
:class:`~emdsl.graph.index.Ref` with its index map).  Later stages read Markov blankets,
complete conditionals and plate sums from here, never from the AST.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..frontend import ast
from ..frontend.check import CheckedModel, Factor, Loop
from .index import Ref, references

UNOBSERVED = ("param", "latent")


@dataclass(frozen=True)
class Plate:
    """A loop ``for var in start:stop`` and the factors inside it."""
    var: str
    start: str
    stop: str
    factors: tuple[int, ...]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.var, self.start, self.stop)

    def show(self) -> str:
        return f"{self.var} in {self.start}:{self.stop}"


def plate_key(loop: Loop) -> tuple[str, str, str]:
    return (loop.var, ast.show(loop.start), ast.show(loop.stop))


@dataclass
class FactorGraph:
    model: CheckedModel
    g: nx.MultiGraph

    # ------------------------------------------------------------------ nodes
    @staticmethod
    def fid(i: int, f: Factor) -> str:
        return f"f{i}:{f.family.name}({f.target})"

    def factor_nodes(self) -> list[str]:
        return [n for n, d in self.g.nodes(data=True) if d["kind"] == "factor"]

    def factor(self, i: int) -> Factor:
        return self.model.factors[i]

    def node_of(self, i: int) -> str:
        return self.fid(i, self.model.factors[i])

    # ------------------------------------------------------------------ edges
    def refs(self, i: int) -> list[Ref]:
        """Every reference of factor ``i``, in the order they appear (target first)."""
        return [d["ref"] for _, _, d in sorted(self.g.edges(self.node_of(i), data=True),
                                               key=lambda e: e[2]["order"])]

    def refs_to(self, i: int, var: str) -> list[Ref]:
        """The references of factor ``i`` to ``var``."""
        return [r for r in self.refs(i) if r.var == var]

    def edges_of(self, var: str) -> list[tuple[int, Ref]]:
        """(factor index, reference) for every reference to ``var``, by factor."""
        out = [(self.g.nodes[f]["index"], d["ref"]) for _, f, d in self.g.edges(var, data=True)]
        return sorted(out, key=lambda e: (e[0], e[1].arg == "index"))

    def factors_of(self, var: str) -> list[int]:
        """Indices (into ``model.factors``) of the factors that mention ``var``."""
        return sorted({self.g.nodes[f]["index"] for f in self.g.neighbors(var)})

    def sampling_factors(self, var: str) -> list[int]:
        """Indices of the factors that sample ``var`` (its prior or likelihood)."""
        return sorted({i for i, r in self.edges_of(var) if r.arg == "target"})

    def child_factors(self, var: str) -> list[int]:
        """Indices of the factors that use ``var`` without sampling it."""
        own = set(self.sampling_factors(var))
        return [i for i in self.factors_of(var) if i not in own]

    # ------------------------------------------------------------------ structure
    def markov_blanket(self, var: str) -> set[str]:
        """The variables sharing a factor with ``var`` (hypers and data included)."""
        out = set()
        for f in self.g.neighbors(var):
            out.update(v for v in self.g.neighbors(f) if v != var)
        return out

    def unobserved_blanket(self, var: str) -> set[str]:
        """The params and latents in the Markov blanket of ``var``."""
        return {v for v in self.markov_blanket(var) if self.model.role(v) in UNOBSERVED}

    def plates(self) -> list[Plate]:
        """Every distinct loop of the model, in the order they first appear."""
        found: dict[tuple, list[int]] = {}
        for i, f in enumerate(self.model.factors):
            for lp in f.loops:
                found.setdefault(plate_key(lp), []).append(i)
        return [Plate(*k, tuple(v)) for k, v in found.items()]

    def roles(self, role: str) -> list[str]:
        return [n for n, v in self.model.vars.items() if v.role == role]

    # ------------------------------------------------------------------ output
    def to_text(self) -> str:
        """A stable text dump (``emdsl compile --print graph``)."""
        from .draw import text
        return text(self)

    def to_dot(self) -> str:
        """Graphviz DOT: plates as boxes around their factors, edges labelled by kind."""
        from .draw import dot
        return dot(self)


def build_graph(cm: CheckedModel) -> FactorGraph:
    g = nx.MultiGraph(name=cm.name)
    for v in cm.vars.values():
        t = v.kind + (f"[{', '.join(ast.show(d) for d in v.elem_dims)}]" if v.elem_dims else "")
        g.add_node(v.name, kind="var", role=v.role, type=t,
                   plate=tuple(ast.show(s) for s in v.shape), span=v.span)

    for i, f in enumerate(cm.factors):
        fid = FactorGraph.fid(i, f)
        g.add_node(fid, kind="factor", family=f.family.name, span=f.span, index=i,
                   plates=tuple(plate_key(lp) for lp in f.loops), text=f.text)
        for order, r in enumerate(factor_references(cm, f)):
            g.add_edge(fid, r.var, arg=r.arg, kind=r.kind, ref=r, order=order)
    return FactorGraph(cm, g)


def factor_references(cm: CheckedModel, f: Factor) -> list[Ref]:
    """Every reference of a factor to a model variable, its target first, each with its
    index map (also for factors a later stage makes, like a factorised MvNormal)."""
    def cat_role(name):
        v = cm.vars.get(name)
        return v.role if v is not None and v.kind == "cat" else None

    def is_var(name):
        return name in cm.vars

    loop_vars = {lp.var for lp in f.loops}
    target = ast.Index(ast.Name(f.target, f.span), f.index, f.span) if f.index \
        else ast.Name(f.target, f.span)
    refs = references(target, "target", is_var, loop_vars, cat_role)
    for arg, e in f.args:
        refs += references(e, arg, is_var, loop_vars, cat_role)
    return refs
