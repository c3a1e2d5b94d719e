"""Stage 3: :class:`~emdsl.check.CheckedModel` -> :class:`FactorGraph` (networkx).

Variable nodes carry ``role``, ``type`` and ``plate`` (the dims of their shape); factor
nodes carry ``family``, ``span`` and ``plates`` (their loops).  An edge joins a factor to
every variable it mentions, with ``arg`` naming the family argument (``"target"`` for the
sampled variable).  Later stages read Markov blankets from it.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from . import ast
from .check import CheckedModel


@dataclass
class FactorGraph:
    model: CheckedModel
    g: nx.MultiGraph

    def factor_nodes(self) -> list[str]:
        return [n for n, d in self.g.nodes(data=True) if d["kind"] == "factor"]

    def markov_blanket(self, var: str) -> set[str]:
        """The variables sharing a factor with ``var``."""
        out = set()
        for f in self.g.neighbors(var):
            out.update(v for v in self.g.neighbors(f) if v != var)
        return out

    def factors_of(self, var: str) -> list[int]:
        """Indices (into ``model.factors``) of the factors that mention ``var``."""
        return sorted(self.g.nodes[f]["index"] for f in self.g.neighbors(var))

    def sampling_factors(self, var: str) -> list[int]:
        """Indices (into ``model.factors``) of the factors that sample ``var``."""
        return sorted(self.g.nodes[f]["index"] for _, f, d in self.g.edges(var, data=True)
                      if d["arg"] == "target")

    def to_dot(self) -> str:
        """The graph in Graphviz DOT: ellipses for variables, boxes for factors."""
        shade = {"data": "gray80", "latent": "white", "param": "lightblue",
                 "hyper": "lightyellow"}
        lines = [f'graph "{self.model.name}" {{', "  node [fontname=Helvetica];"]
        for n, d in self.g.nodes(data=True):
            if d["kind"] == "var":
                plate = f"[{', '.join(d['plate'])}]" if d["plate"] else ""
                label = f"{n}{plate}\\n{d['role']} : {d['type']}"
                lines.append(f'  "{n}" [shape=ellipse, style=filled, '
                             f'fillcolor={shade.get(d["role"], "white")}, label="{label}"];')
            else:
                label = f"{d['family']}\\nline {d['span'].line}"
                lines.append(f'  "{n}" [shape=box, label="{label}"];')
        for a, b, d in self.g.edges(data=True):
            lines.append(f'  "{a}" -- "{b}" [label="{d["arg"]}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"


def build_graph(cm: CheckedModel) -> FactorGraph:
    g = nx.MultiGraph(name=cm.name)
    for v in cm.vars.values():
        t = v.kind + (f"[{', '.join(ast.show(d) for d in v.elem_dims)}]" if v.elem_dims else "")
        g.add_node(v.name, kind="var", role=v.role, type=t,
                   plate=tuple(ast.show(s) for s in v.shape), span=v.span)
    for i, f in enumerate(cm.factors):
        fid = f"f{i}:{f.family.name}({f.target})"
        g.add_node(fid, kind="factor", family=f.family.name, span=f.span, index=i,
                   plates=tuple(lp.var for lp in f.loops), text=f.text)
        g.add_edge(fid, f.target, arg="target")
        for e in f.index:
            for name in _names(e, cm):
                g.add_edge(fid, name, arg="index")
        for arg, e in f.args:
            for name in _names(e, cm):
                g.add_edge(fid, name, arg=arg)
    return FactorGraph(cm, g)


def _names(e: ast.Expr, cm: CheckedModel) -> list[str]:
    """The model variables ``e`` mentions."""
    return [n for n in ast.names(e) if n in cm.vars]
