"""The ``emdsl`` command line (INTERFACE.md): compile | derive | fit | sample | graph | check.

Exit status: 0 success, 1 a model, data or numerical error (``file:line:col: error: ...`` on
stderr, no traceback), 2 bad usage (argparse), 3 an internal compiler error.  Output files
are written to a temporary file and renamed only when everything succeeded.  Warnings are
printed as one ``warning: ...`` line each.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .errors import EmmDataError, EmmError, InternalError

STAGES = ("ast", "graph", "conj", "updates", "code")
FORMATS = {"md": "markdown", "tex": "latex", "text": "text"}


# ----------------------------------------------------------------------------- helpers
def _set_value(text: str):
    """``K=3`` -> ("K", 3); ``a=0.5`` -> ("a", 0.5); anything else is a usage error."""
    name, eq, val = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        num = float(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected a number, got {val!r}") from None
    return name.strip(), int(num) if num.is_integer() and abs(num) < 2**53 else num


def _sets(args) -> dict:
    return dict(args.set or [])


def _write(path: str, write) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: str, text: str) -> None:
    _write(path, lambda fh: fh.write(text.encode("utf-8")))


def _source(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EmmError(f"cannot read model file '{path}': {exc.strerror}") from None


def _stages(path: str, upto: str):
    """Run the pipeline up to ``upto`` (a STAGES name) and return that stage's object."""
    from .check import check
    from .graph import build_graph
    from .parse import parse
    source = _source(path)
    try:
        tree = parse(source, path)
        if upto == "ast":
            return tree
        fg = build_graph(check(tree))
        if upto == "graph":
            return fg
        from .conjugacy import analyse
        report = analyse(fg)
        if upto == "conj":
            return report
        from .derive import derive
        return derive(report, fg.model)
    except EmmError as exc:
        exc.source = exc.source or source
        raise


def _load(path: str):
    from .api import load
    return load(path)


# ----------------------------------------------------------------------------- dumps
def _dump_ast(tree) -> str:
    from . import ast

    def stmt(s, depth):
        pad, at = "  " * depth, f"{s.span.line}:{s.span.col}"
        if isinstance(s, ast.For):
            yield f"{at:>7}  {pad}for {s.var} in {ast.show(s.start)}:{ast.show(s.stop)}"
            for b in s.body:
                yield from stmt(b, depth + 1)
        elif isinstance(s, ast.Sample):
            yield f"{at:>7}  {pad}{ast.show(s.target)} ~ {ast.show(s.dist)}"
        elif isinstance(s, ast.Let):
            yield f"{at:>7}  {pad}let {s.name} = {ast.show(s.value)}"
        elif isinstance(s, ast.DimDecl):
            dflt = f" = {ast.show(s.default)}" if s.default is not None else ""
            yield f"{at:>7}  dim {s.name}{dflt}"
        elif isinstance(s, ast.VarDecl):
            shape = f"[{', '.join(map(ast.show, s.shape))}]" if s.shape else ""
            dims = f"[{', '.join(map(ast.show, s.type.dims))}]" if s.type.dims else ""
            dflt = f" = {ast.show(s.default)}" if s.default is not None else ""
            yield f"{at:>7}  {s.role} {s.name}{shape} : {s.type.kind}{dims}{dflt}"
        elif isinstance(s, ast.FamilyDecl):
            ps = ", ".join(f"{p.name} : {p.type.kind}" for p in s.params)
            yield f"{at:>7}  family {s.name}({ps}) logpdf({s.var}) = {ast.show(s.logpdf)}"
    return "\n".join([f"model {tree.name}"] + [x for it in tree.items for x in stmt(it, 0)])


def _dump_conj(r) -> str:
    from .derive import axes_text
    out = [f"algorithm {r.algorithm}", f"latent {r.latent.name} over plate {r.plate.var}",
           f"assign  line {r.assign.span.line}: {r.assign.text}"]
    for e in r.emissions:
        refs = ", ".join(f"{p.param}[{axes_text(p.axes)}]" if p.axes else p.param
                         for p in e.refs)
        out.append(f"emission line {e.factor.span.line} ({e.kind}): {e.factor.text}  "
                   f"params: {refs}")
    out += [f"prior   line {f.span.line}: {f.text}" for f in r.priors.values()]
    return "\n".join(out)


def _dump_updates(us) -> str:
    out = [_dump_conj(us.report)]
    for g in us.groups:
        out += [f"M-step {p} = {sol}" for p, sol in g.closed.items()]
        out += [f"M-step {p}: Newton on dQ/d{p} = 0 (no closed form)" for p in g.numeric]
    out += [f"M-step {s.param}: {s.lagrange}" for s in us.simplex]
    out += [f"M-step {', '.join(gu.params)}: Gaussian inverse mean map" for gu in us.gaussian]
    return "\n".join(out)


def cmd_compile(args) -> int:
    if args.print and args.print != "code":
        obj = _stages(args.model, args.print)
        dump = {"ast": _dump_ast, "graph": lambda fg: fg.to_dot().rstrip("\n"),
                "conj": _dump_conj, "updates": _dump_updates}[args.print]
        print(dump(obj))
        if not args.output:
            return 0
    code = _load(args.model).code
    if args.output:
        _write_text(args.output, code)
    else:
        sys.stdout.write(code)
    return 0


def cmd_derive(args) -> int:
    print(_load(args.model).derivation(FORMATS[args.format]))
    return 0


def cmd_graph(args) -> int:
    dot = _stages(args.model, "graph").to_dot()
    if not args.output:
        sys.stdout.write(dot)
        return 0
    suffix = Path(args.output).suffix.lower().lstrip(".")
    if suffix in ("dot", "gv"):
        _write_text(args.output, dot)
        return 0
    exe = shutil.which("dot")
    if exe is None:
        raise EmmError(f"writing '{args.output}' needs Graphviz's `dot` program, which is "
                       "not installed", hint="install Graphviz, or write DOT text with "
                       "-o graph.dot")
    done = subprocess.run([exe, f"-T{suffix or 'svg'}"], input=dot.encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise EmmError(f"Graphviz could not write '{args.output}': "
                       f"{done.stderr.decode(errors='replace').strip()}")
    _write(args.output, lambda fh: fh.write(done.stdout))
    return 0


# ----------------------------------------------------------------------------- fit
def _fit(model, values: dict, args):
    opts = {k: getattr(args, k) for k in ("seed", "method", "max_iter", "tol", "n_init", "reg")
            if getattr(args, k, None) is not None}
    if sys.stderr.isatty():
        last = []

        def progress(it, value, params):
            change = value - last[-1] if last else float("nan")
            last.append(value)
            sys.stderr.write(f"\riter {it + 1:5d}  elbo {value:.10g}  change {change:.3g}   ")
        opts["callback"] = progress
    try:
        return model.fit(**values, **opts)
    finally:
        if "callback" in opts:
            sys.stderr.write("\n")


def _data_values(model, path: str, sets: dict) -> dict:
    from .data import read_data_file
    arrays, dims = read_data_file(path, model.checked)
    return {**{k: v for k, v in dims.items() if k not in sets}, **arrays, **sets}


def _show_params(params: dict) -> str:
    out = []
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        for name, val in params.items():
            val = np.asarray(val)
            body = np.array2string(val, prefix="  ")
            out.append(f"{name}  shape {val.shape}\n  {body}")
    return "\n".join(out)


def cmd_fit(args) -> int:
    model = _load(args.model)
    res = _fit(model, _data_values(model, args.data, _sets(args)), args)
    print(f"{model.name} ({model.module.ALGORITHM}) fitted to {args.data}")
    print(_show_params(res.params))
    print(f"n_iter {res.n_iter}, converged {res.converged}, final ELBO {res.elbo[-1]:.10g}")
    if args.output:
        doc = {"model": model.name, "algorithm": model.module.ALGORITHM,
               "params": {k: np.asarray(v).tolist() for k, v in res.params.items()},
               "elbo": np.asarray(res.elbo, dtype=float).tolist(),
               "n_iter": int(res.n_iter), "converged": bool(res.converged)}
        _write_text(args.output, json.dumps(doc, indent=1) + "\n")
    return 0


# ----------------------------------------------------------------------------- sample, check
def _csv_bytes(model, arrays: dict) -> bytes:
    """Data (and latents of the same length) as CSV columns ``y`` or ``x_1 .. x_D``."""
    cols = [(k, a) for k, a in arrays.items() if model.checked.role(k) == "data"]
    rows = {a.shape[0] for _, a in cols if a.ndim}
    if len(rows) != 1 or any(a.ndim not in (1, 2) for _, a in cols):
        raise EmmDataError("these data do not fit in one CSV table",
                           hint="write a .npz file instead")
    n = rows.pop()
    cols += [(k, a) for k, a in arrays.items() if model.checked.role(k) == "latent"
             and a.ndim in (1, 2) and a.shape[0] == n]
    header = [k if a.ndim == 1 else f"{k}_{j + 1}" for k, a in cols
              for j in range(a.shape[1] if a.ndim == 2 else 1)]
    table = zip(*[c for _, a in cols for c in a.reshape(n, -1).T.tolist()])
    lines = [",".join(header)] + [",".join(map(repr, row)) for row in table]
    return ("\n".join(lines) + "\n").encode()


def cmd_sample(args) -> int:
    model = _load(args.model)
    sets = _sets(args)
    sim = {k: np.asarray(v) for k, v in model.sample(seed=args.seed, **sets).items()}
    suffix = Path(args.output).suffix.lower()
    if suffix == ".npz":
        dims = {k: np.asarray(v) for k, v in sets.items() if model.checked.role(k) == "dim"}
        _write(args.output, lambda fh: np.savez(fh, **sim, **dims))
    elif suffix == ".csv":
        text = _csv_bytes(model, sim)
        _write(args.output, lambda fh: fh.write(text))
    else:
        raise EmmDataError(f"cannot write '{args.output}': use a .npz or .csv file name")
    print(f"wrote {', '.join(f'{k} {v.shape}' for k, v in sim.items())} to {args.output}")
    return 0


def cmd_check(args) -> int:
    """Simulate from the model, fit the simulation, report how well the params come back."""
    from scipy.optimize import linear_sum_assignment

    from .data import bind
    model, sets = _load(args.model), _sets(args)
    sim = {k: np.asarray(v) for k, v in model.sample(seed=args.seed, **sets).items()}
    data = {k: v for k, v in sim.items() if model.checked.role(k) == "data"}
    res = model.fit(**data, **sets, seed=args.seed + 1, n_init=args.n_init)
    print(f"{model.name}: fitted {', '.join(f'{k} {v.shape}' for k, v in data.items())} "
          f"simulated with seed {args.seed}; n_iter {res.n_iter}, converged {res.converged}")
    truth = {k: sim[k] for k in res.params if k in sim and sim[k].shape == res.params[k].shape}
    if not truth:
        print("the simulation holds no true params to compare with")
        return 0
    K = bind(model.checked, {**data, **sets}).dims[model.module.COMPONENTS]
    est = {k: np.asarray(res.params[k], dtype=float) for k in truth}
    lead = [k for k in truth if truth[k].ndim and truth[k].shape[0] == K]
    cost = sum(np.abs(truth[k][:, None] - est[k][None]).reshape(K, K, -1).sum(-1) for k in lead)
    perm = linear_sum_assignment(cost)[1] if lead else np.arange(K)  # label switching
    worst = 0.0
    for k, true in truth.items():
        e = est[k][perm] if k in lead else est[k][..., perm] if true.ndim and \
            true.shape[-1] == K else est[k]
        err = float(np.max(np.abs(e - true)))
        scale = float(np.max(np.abs(true))) or 1.0
        worst = max(worst, err / scale)
        print(f"  {k:<10} max |estimate - truth| = {err:.4g}  (relative {err / scale:.3g})")
    print(f"worst relative error {worst:.3g}: "
          + ("recovered" if worst < args.tolerance else "NOT recovered; try a larger N"))
    return 0 if worst < args.tolerance else 1


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    ap = argparse.ArgumentParser(prog="emdsl", description="Derive and run EM for .emm models.")
    ap.add_argument("--version", action="version", version=f"emdsl {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, help_, func):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("model", metavar="MODEL", help="the .emm model file")
        p.set_defaults(func=func)
        return p

    def sets(p, required=False):
        p.add_argument("--set", nargs="+", action="extend", type=_set_value, metavar="NAME=V",
                       required=required, help="dims and hypers, e.g. --set K=3 alpha=0.5")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    p = cmd("compile", "write the generated numpy module", cmd_compile)
    p.add_argument("-o", "--output", metavar="OUT.py", help="write here instead of stdout")
    p.add_argument("--print", choices=STAGES, help="print one stage of the pipeline")
    p = cmd("derive", "print the derivation of the updates", cmd_derive)
    p.add_argument("--format", choices=tuple(FORMATS), default="md")
    p = cmd("fit", "fit the model to a data file", cmd_fit)
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .npz, .npy or .ldac")
    sets(p)
    p.add_argument("--method", choices=("batch", "stepwise", "incremental"))
    p.add_argument("--max-iter", type=int, dest="max_iter", metavar="N")
    p.add_argument("--tol", type=float, metavar="T", help="relative ELBO change to stop at")
    p.add_argument("--n-init", type=int, dest="n_init", metavar="N", help="restarts")
    p.add_argument("--reg", type=float, metavar="R", help="added to covariance diagonals")
    p.add_argument("-o", "--output", metavar="RESULT.json")
    p = cmd("sample", "simulate data from the model", cmd_sample)
    sets(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=".npz or .csv")
    p = cmd("graph", "print or draw the factor graph", cmd_graph)
    p.add_argument("-o", "--output", metavar="graph.dot|graph.svg")
    p = cmd("check", "simulate, fit and report parameter recovery", cmd_check)
    sets(p)
    p.add_argument("--n-init", type=int, dest="n_init", default=3, metavar="N")
    p.add_argument("--tolerance", type=float, default=0.2, metavar="T",
                   help="largest accepted relative error (default 0.2)")
    return ap


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 3 bug)."""
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = _run(args)
    seen = set()
    for w in caught:
        text = f"warning: {w.message}".splitlines()[0]
        if text not in seen:
            seen.add(text)
            print(text, file=sys.stderr)
    return status


def _run(args) -> int:
    try:
        with np.errstate(divide="ignore", under="ignore"):
            return args.func(args)
    except EmmError as exc:
        print(exc.format(), file=sys.stderr)
    except FloatingPointError as exc:
        print(f"error: the fit failed numerically: {exc}\n"
              "hint: check that the data lie in the support of the model's families, try "
              "another --seed, more restarts (--n-init) or a larger --reg", file=sys.stderr)
    except InternalError as exc:
        print(exc.format(), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - anything else is a bug in emdsl
        print(f"internal compiler error: {type(exc).__name__}: {exc}\n"
              "This is a bug in emdsl, please report it with the model and the command "
              "that triggered it.", file=sys.stderr)
        return 3
    return 1


if __name__ == "__main__":
    sys.exit(main())
