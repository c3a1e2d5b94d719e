"""Text and Graphviz DOT renderings of a :class:`~emdsl.graph.FactorGraph`."""
from __future__ import annotations

from ..frontend import ast

_SHADE = {"data": "gray80", "latent": "white", "param": "lightblue", "hyper": "lightyellow"}


def _var_line(fg, name) -> str:
    v = fg.model.vars[name]
    shape = f"[{', '.join(ast.show(d) for d in v.shape)}]" if v.shape else ""
    t = fg.g.nodes[name]["type"]
    sampled = fg.sampling_factors(name)
    how = (f"sampled by {', '.join(f'f{i}' for i in sampled)}" if sampled
           else "a covariate" if v.role == "data" else "")
    return f"  {v.role:<6} {name}{shape} : {t}" + (f"   ({how})" if how else "")


def text(fg) -> str:
    """One section each for plates, variables, factors (with every edge) and the Markov
    blankets of the unobserved variables."""
    cm = fg.model
    out = [f"factor graph {cm.name}", "plates"]
    for p in fg.plates():
        out.append(f"  for {p.show():<16} factors {' '.join(f'f{i}' for i in p.factors)}")
    out.append("variables")
    out += [_var_line(fg, n) for n in cm.vars]
    out.append("factors")
    for i, f in enumerate(cm.factors):
        plates = ", ".join(lp.var for lp in f.loops) or "-"
        out.append(f"  f{i}  line {f.span.line}: {f.text}   [plates {plates}]")
        for r in fg.refs(i):
            out.append(f"      {r.var:<10} {r.arg:<8} {r.kind:<7} {r.text}")
    out.append("markov blankets")
    for n, v in cm.vars.items():
        if v.role in ("param", "latent"):
            facs = " ".join(f"f{i}" for i in fg.factors_of(n))
            out.append(f"  {n}: factors {facs or '-'}; "
                       f"neighbours {' '.join(sorted(fg.markov_blanket(n))) or '-'}")
    return "\n".join(out)


def _q(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def dot(fg) -> str:
    """Variables are ellipses (shaded by role), factors boxes; every plate is a cluster
    labelled ``for n in 1:N`` around its factors and the variables they sample; edges are
    labelled with their kind and the reference (``gate mu[z[n]]``)."""
    cm = fg.model
    lines = [f'graph "{_q(cm.name)}" {{', "  node [fontname=Helvetica];",
             "  edge [fontname=Helvetica, fontsize=10];"]
    # the plate nest: each factor sits in the cluster of its full loop path
    home = {}
    for n in cm.vars:
        sampled = fg.sampling_factors(n)
        if sampled and cm.vars[n].shape:
            home[n] = tuple(_key(lp) for lp in cm.factors[sampled[0]].loops)
    tree: dict = {}
    for i, f in enumerate(cm.factors):
        path = tuple(_key(lp) for lp in f.loops)
        _insert(tree, path)["factors"].append(i)
    for n, path in home.items():
        _insert(tree, path)["vars"].append(n)
    placed = set(home)
    if tree:
        _emit_node(fg, tree[()], lines, 1, [0])
    for n in cm.vars:
        if n not in placed:
            lines.append("  " + _var_node(fg, n))
    for a, b, d in fg.g.edges(data=True):
        r = d["ref"]
        style = ", style=dashed" if r.arg == "index" else ""
        lines.append(f'  "{_q(a)}" -- "{_q(b)}" [label="{_q(r.kind + " " + r.text)}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _key(lp):
    return f"for {lp.var} in {ast.show(lp.start)}:{ast.show(lp.stop)}"


def _insert(tree, path):
    """The node of the plate nest ``tree`` at ``path`` (created on first use)."""
    node = tree.setdefault((), {"factors": [], "vars": [], "children": {}})
    for p in path:
        node = node["children"].setdefault(p, {"factors": [], "vars": [], "children": {}})
    return node


def _var_node(fg, n) -> str:
    d = fg.g.nodes[n]
    plate = f"[{', '.join(d['plate'])}]" if d["plate"] else ""
    label = f"{_q(n + plate)}\\n{d['role']} : {_q(d['type'])}"
    return (f'"{_q(n)}" [shape=ellipse, style=filled, fillcolor={_SHADE.get(d["role"], "white")}, '
            f'label="{label}"];')


def _emit_node(fg, node, lines, depth, counter):
    pad = "  " * depth
    for i in node["factors"]:
        f = fg.model.factors[i]
        label = f"{f.family.name}\\nline {f.span.line}"
        lines.append(f'{pad}"{_q(fg.node_of(i))}" [shape=box, label="{label}"];')
    for n in node["vars"]:
        lines.append(pad + _var_node(fg, n))
    for label, child in node["children"].items():
        counter[0] += 1
        lines.append(f"{pad}subgraph cluster_{counter[0]} {{")
        lines.append(f'{pad}  label="{_q(label)}"; style=rounded;')
        _emit_node(fg, child, lines, depth + 1, counter)
        lines.append(f"{pad}}}")
