"""Text dumps of each pipeline stage (``emdsl compile --print ast|graph|plan|conj|updates``):
a stable, readable form of every intermediate object, as stanc3's ``--print-mir``."""
from __future__ import annotations

from pathlib import Path

from .errors import EmmError


def run_stages(path: str, upto: str):
    """Run the pipeline up to ``upto`` (one of STAGES) and return that stage's object."""
    from .frontend.check import check
    from .graph import build_graph
    from .frontend.parse import parse
    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EmmError(f"cannot read model file '{path}': {exc.strerror}") from None
    try:
        tree = parse(source, path)
        if upto == "ast":
            return tree
        fg = build_graph(check(tree))
        if upto == "graph":
            return fg
        from .inference import make_plan
        plan = make_plan(fg)
        if upto == "plan":
            return plan
        from .inference.derive import analyse_plan, derive_plan
        analysed = analyse_plan(plan)
        if upto == "conj" and analysed[0] is not None:
            return analysed[0]
        return derive_plan(plan, analysed)
    except EmmError as exc:
        exc.source = exc.source or source
        raise


def dump_ast(tree) -> str:
    from .frontend import ast

    def br(xs):
        return f"[{', '.join(map(ast.show, xs))}]" if xs else ""

    def eq(e):
        return f" = {ast.show(e)}" if e is not None else ""

    def stmt(s, pad):  # one line per node: line:col, node kind, the node printed back
        text = (f"for {s.var} in {ast.show(s.start)}:{ast.show(s.stop)}" if isinstance(s, ast.For)
                else f"{ast.show(s.target)} ~ {ast.show(s.dist)}" if isinstance(s, ast.Sample)
                else f"let {s.name}{eq(s.value)}" if isinstance(s, ast.Let)
                else f"dim {s.name}{eq(s.default)}" if isinstance(s, ast.DimDecl)
                else f"{s.role} {s.name}{br(s.shape)} : {s.type.kind}{br(s.type.dims)}"
                     f"{eq(s.default)}" if isinstance(s, ast.VarDecl)
                else f"family {s.name}({', '.join(p.name for p in s.params)}) "
                     f"logpdf({s.var}) = {ast.show(s.logpdf)}")
        yield f"{s.span.line:>4}:{s.span.col:<3} {pad}{type(s).__name__:<10} {text}"
        for b in getattr(s, "body", ()):
            yield from stmt(b, pad + "  ")
    return "\n".join([f"model {tree.name}"] + [x for it in tree.items for x in stmt(it, "")])


def dump_conj(r) -> str:
    from .inference.derive import axes_text
    if hasattr(r, "statements"):   # every latent global (inference/global_cavi.py)
        from .inference.global_cavi import describe
        return "\n".join(describe(r)[:1 + sum(1 + len(s.terms) for s in r.statements)])
    out = [f"algorithm {r.algorithm}", f"latent {r.latent.name} over plate {r.plate.var}",
           f"assign   line {r.assign.span.line}: {r.assign.text}"]
    for e in r.emissions:
        refs = ", ".join(f"{p.param}[{axes_text(p.axes)}]" if p.axes else p.param
                         for p in e.refs)
        out.append(f"emission line {e.factor.span.line} ({e.kind}): {e.factor.text}"
                   f"  params: {refs}")
    return "\n".join(out + [f"prior    line {f.span.line}: {f.text}" for f in r.priors.values()])


def dump_updates(us) -> str:
    if hasattr(us, "statements"):
        from .inference.global_cavi import describe
        return "\n".join([us.plan.dump()] + describe(us))
    out = [us.plan.dump(), dump_conj(us.report)] if us.plan else [dump_conj(us.report)]
    for g in us.groups:
        out += [f"M-step {p} = {sol}" for p, sol in g.closed.items()]
        out += [f"M-step {p}: Newton on dQ/d{p} = 0 (no closed form)" for p in g.numeric]
    out += [f"M-step {s.param}: {s.lagrange}" for s in us.simplex]
    out += [f"M-step {', '.join(gu.params)}: Gaussian inverse mean map" for gu in us.gaussian]
    return "\n".join(out)
