"""The ``emdsl`` command line (INTERFACE.md): compile | derive | fit | sample | graph | check.

Exit status: 0 success; 1 a model, data or numerical error (``file:line:col: error: ...`` on
stderr, no traceback); 2 bad usage (argparse); 3 an internal compiler error.  Output files
go to a temporary file renamed at the very end, so an error never leaves one behind.
Warnings are printed as one ``warning: ...`` line each.
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

STAGES = ("ast", "graph", "plan", "conj", "updates", "code")
FORMATS = {"md": "markdown", "tex": "latex", "text": "text"}


# ----------------------------------------------------------------------------- helpers
def _set_value(text: str):
    """``K=3`` -> ("K", 3), ``a=0.5`` -> ("a", 0.5); anything else is a usage error."""
    name, eq, val = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if ".." in val or "," in val:   # a range or list of values (emdsl select)
        from .selection import parse_range
        try:
            return name.strip(), parse_range(val)
        except EmmError as exc:
            raise argparse.ArgumentTypeError(f"{name}: {exc.msg}") from None
    try:
        num = float(val)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name}: expected a number, got {val!r}") from None
    return name.strip(), int(num) if num.is_integer() and abs(num) < 2**53 else num


def _write(path: str, content) -> None:
    """Write ``content`` (str, bytes, or a function of a binary file) to a temporary file
    next to ``path``, then rename it over ``path``."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise EmmError(f"cannot write '{path}': {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: str):
    from .api import load
    return load(path)


# ----------------------------------------------------------------------------- compile
def cmd_compile(args) -> int:
    if args.print and args.print != "code":
        from .dump import dump_ast, dump_conj, dump_updates, run_stages
        dump = {"ast": dump_ast, "graph": lambda fg: fg.to_text(),
                "plan": lambda plan: plan.dump(), "conj": dump_conj, "updates": dump_updates}[args.print]
        print(dump(run_stages(args.model, args.print)))
        if not args.output:
            return 0
    code = _load(args.model).code
    if args.output:
        _write(args.output, code)
    else:
        sys.stdout.write(code)
    return 0


def cmd_derive(args) -> int:
    print(_load(args.model).derivation(FORMATS[args.format]))
    return 0


def cmd_graph(args) -> int:
    from .dump import run_stages
    dot = run_stages(args.model, "graph").to_dot()
    suffix = Path(args.output or "").suffix.lower().lstrip(".")
    if not args.output:
        sys.stdout.write(dot)
        return 0
    if suffix in ("dot", "gv", ""):
        _write(args.output, dot)
        return 0
    exe = shutil.which("dot")
    if exe is None:
        raise EmmError(f"writing '{args.output}' needs Graphviz's `dot` program, which is not "
                       "installed", hint="install Graphviz, or write DOT text with -o graph.dot")
    done = subprocess.run([exe, f"-T{suffix}"], input=dot.encode(), capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise EmmError(f"Graphviz could not write '{args.output}': "
                       f"{done.stderr.decode(errors='replace').strip()}")
    _write(args.output, done.stdout)
    return 0


# ----------------------------------------------------------------------------- fit
def _fit(model, values: dict, args, stream=None):
    """``model.fit`` with the command line's options; a progress line on a terminal."""
    opts = {k: getattr(args, k) for k in ("seed", "method", "max_iter", "tol", "n_init", "reg",
                                          "batch_size", "kappa", "delay", "checkpoint",
                                          "checkpoint_every", "resume")
            if getattr(args, k, None) is not None}
    from .progress import Progress
    bar = Progress(model, values, opts.get("max_iter")) if sys.stderr.isatty() else None
    if bar is not None:
        opts["callback"] = bar.update
    elif getattr(args, "verbose", False):   # not a terminal: a line per iteration
        opts["verbose"] = True
    try:
        return model.fit(stream, **values, **opts)
    finally:
        if bar is not None:
            bar.close()


def _agree(sets: dict, found: dict) -> None:
    """Dims that a data file determines (``found``: name -> (value, where from)) must agree
    with the ones given with ``--set``; a dim given twice with different values is an error
    naming both."""
    for name, (val, where) in found.items():
        if name in sets and sets[name] != val:
            raise EmmDataError(
                f"dim '{name}' is given twice with different values: {name} = {val} ({where}) "
                f"and {name} = {sets[name]} (given as --set {name}={sets[name]})",
                hint=f"leave out --set {name}=... (the data file determines it), or use data "
                     "that agree with it")


def cmd_fit(args) -> int:
    from .io.data import read_data_file
    model, sets = _load(args.model), dict(args.set or [])
    if args.chunk_rows is not None:   # streamed: the file is read chunk by chunk, every pass
        from .io.chunks import chunks
        res = _fit(model, sets, args, stream=chunks(args.data, rows=args.chunk_rows))
    else:
        arrays, dims = read_data_file(args.data, model.checked)
        _agree(sets, {k: (v, f"from {Path(args.data).name}") for k, v in dims.items()})
        res = _fit(model, {**dims, **arrays, **sets}, args)
    print(f"{model.name} ({model.module.ALGORITHM}) fitted to {args.data}")
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        for name, val in res.params.items():
            val = np.asarray(val)
            print(f"{name}  shape {val.shape}\n  {np.array2string(val, prefix='  ')}")
    print(f"n_iter {res.n_iter}, converged {res.converged}, final {res.objective_name} "
          f"{res.objective:.10g}")
    vocab = args.vocab or (Path(args.data).with_suffix(".tokens")
                           if Path(args.data).suffix.lower() == ".ldac" else None)
    if vocab is not None and Path(vocab).is_file():
        from .cli_extras import top_words
        top_words(model, res, Path(vocab))
    elif args.vocab:
        raise EmmError(f"vocabulary file '{args.vocab}' does not exist")
    if args.plot:   # the trace, and the items by component when they are 1-D or 2-D
        from .cli_extras import plot_fit
        plot_fit(res, arrays if args.chunk_rows is None else {}, args.plot)
    if args.output and Path(args.output).suffix.lower() == ".npz":
        res.save(args.output)   # everything, read back by emdsl.load_result
    elif args.output:
        beside = Path(args.output).with_suffix(".posterior.npz")
        doc = {"model": model.name, "algorithm": model.module.ALGORITHM,
               "params": {k: np.asarray(v).tolist() for k, v in res.params.items()},
               "elbo": np.asarray(res.elbo, dtype=float).tolist(),
               "objective": res.objective, "objective_name": res.objective_name,
               "n_iter": int(res.n_iter), "converged": bool(res.converged)}
        from .results import flat_posterior
        latent = model.module.LATENT if args.chunk_rows is not None else None
        # a streamed fit's responsibilities are not held in memory: left out
        posterior = {k: res.posterior[k] for k in res.posterior if k != latent}
        _write(beside, lambda fh: np.savez(fh, **flat_posterior(posterior)))
        _write(args.output, json.dumps(doc, indent=1) + "\n")
    return 0



def cmd_examples(args) -> int:
    from .examples import copy_to
    models = copy_to(args.directory)
    print(f"copied {len(models)} example models and their data to {args.directory}:")
    for m in models:
        print(f"  {m}")
    return 0


def cmd_select(args) -> int:
    from .cli_extras import select_command
    return select_command(args, _load, _agree, _write)


# ----------------------------------------------------------------------------- sample, check
def _csv_bytes(model, arrays: dict) -> str:
    """Data (then latents of the same length) as CSV columns ``y`` or ``x_1 .. x_D``."""
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
    return "\n".join([",".join(header)] + [",".join(map(repr, r)) for r in table]) + "\n"


def _read_covariates(model, path, sets: dict) -> dict:
    """The covariates (data the model conditions on but does not draw) in the data file
    ``path``, read as ``fit`` reads data.  Dims that the file or the covariates' shapes
    determine, and hypers stored in it, are added to ``sets`` (a disagreement with ``--set``
    is an error); the data that the model draws are ignored."""
    import dataclasses

    from .frontend import ast
    from .io.data import read_data_file
    cm, name = model.checked, Path(path).name
    sampled = {f.target for f in cm.factors}
    covs = [v for v in cm.vars.values() if v.role == "data" and v.name not in sampled]
    if not covs:
        raise EmmDataError(f"model {cm.name} has no covariates (data that it conditions on "
                           "but does not draw), so there is nothing to read from --data",
                           hint="leave out --data and give the sizes with --set")
    view = cm  # an .ldac file holds both the document index and the drawn word
    if Path(path).suffix.lower() != ".ldac":  # else the drawn data need not be in the file
        view = dataclasses.replace(cm, vars={
            k: dataclasses.replace(v, role="latent") if v.role == "data" and k in sampled
            else v for k, v in cm.vars.items()})
    arrays, dims = read_data_file(path, view)
    found: dict = {}

    def put(dim, val, where):
        if found.setdefault(dim, (val, where))[0] != val:
            raise EmmDataError(f"dim '{dim}' is given twice with different values: {dim} = "
                               f"{found[dim][0]} ({found[dim][1]}) and {dim} = {val} ({where})",
                               hint="make the data agree")

    for dim, val in dims.items():
        put(dim, val, f"from {name}")
    for v in covs:  # plate axes, and element axes when the array has them (as bind does)
        arr = np.asarray(arrays[v.name])
        elem = () if v.kind == "cat" else (v.elem_dims[0],) * 2 if v.kind == "spd" \
            else tuple(v.elem_dims)
        exprs = tuple(v.shape) + elem
        exprs = exprs if arr.ndim == len(exprs) else v.shape if arr.ndim >= len(v.shape) else ()
        for ax, e in enumerate(exprs):
            if isinstance(e, ast.Name) and e.id in cm.dims:
                put(e.id, arr.shape[ax], f"from {v.name}.shape[{ax}] in {name}")
    _agree(sets, found)
    sets.update({k: val for k, (val, _) in found.items()})
    for k, arr in arrays.items():
        if cm.role(k) == "hyper":
            if k in sets and not np.array_equal(np.asarray(sets[k]), arr):
                raise EmmDataError(f"hyper '{k}' is given twice with different values: in "
                                   f"{name} and as --set {k}={sets[k]}")
            sets[k] = arr
    return {v.name: arrays[v.name] for v in covs}


def _default_sizes(model, sets: dict) -> None:
    """For ``check``: sizes the user did not give (2000 items in the latent's plate, 3 for
    any other size) and uniformly drawn covariates, so that it runs with no options."""
    from .frontend import ast
    cm = model.checked
    latent = next((v for v in cm.vars.values() if v.role == "latent" and v.kind == "cat"
                   and v.shape), None) or next((v for v in cm.vars.values()
                                                if v.role == "data" and v.shape), None)
    plate = {e.id for e in (latent.shape if latent else ()) if isinstance(e, ast.Name)}
    for name, d in cm.dims.items():
        if name not in sets and d.default is None:
            sets[name] = 2000 if name in plate else 3


def _covariates(model, sets: dict, seed: int, given=()) -> dict:
    """Uniformly drawn values for the data the model conditions on (e.g. ``doc[t]``) that
    are not in ``given``."""
    from .io.data import eval_const
    cm, rng, out = model.checked, np.random.default_rng(seed), {}
    sampled = {f.target for f in cm.factors}
    for v in cm.vars.values():
        if v.role == "data" and v.name not in sampled and v.name not in given:
            shape = tuple(int(eval_const(e, sets)) for e in v.shape)
            if v.kind == "real":   # standard normal covariates (a design matrix)
                elem = tuple(int(eval_const(e, sets)) for e in v.elem_dims)
                out[v.name] = rng.normal(size=shape + elem)
                continue
            if v.kind != "cat":
                raise EmmDataError(f"check cannot invent the covariate '{v.name}' ({v.kind})",
                                   hint="give it in a data file with --data FILE, or use "
                                        "`emdsl fit` with your own data")
            size = int(eval_const(v.elem_dims[0], sets))
            out[v.name] = rng.integers(0, size, shape)
    return out


def _true_params(model, args, sets: dict) -> dict:
    """Params to simulate from: ``--params`` (a ``fit -o`` JSON or a .npz; dims not in
    ``sets`` are read off their shapes), else drawn at random from ``--seed``."""
    from .frontend import ast
    from .io.data import eval_const
    from .runtime.sample import dim_value
    cm, given = model.checked, {}
    if args.params:
        path = Path(args.params)
        try:
            if path.suffix.lower() == ".json":
                doc = json.loads(path.read_text(encoding="utf-8"))["params"]
                given = {k: np.asarray(v, dtype=float) for k, v in doc.items()}
            else:
                with np.load(path, allow_pickle=False) as z:
                    given = {k: z[k] for k in z.files if cm.role(k) == "param"}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EmmDataError(f"cannot read params from '{path}': {exc}",
                               hint="use the JSON written by `emdsl fit -o` or a .npz") from None
        for name, arr in given.items():
            v = cm.vars.get(name)
            for e, n in zip(v.shape + v.elem_dims if v else (), arr.shape):
                if isinstance(e, ast.Name) and e.id in cm.dims:
                    sets.setdefault(e.id, n)
    env = {}
    for name, d in cm.dims.items():
        if name in sets:
            env[name] = dim_value(name, sets[name])
        elif d.default is None:
            raise EmmDataError(f"dim '{name}' has no default; give it with --set {name}=...")
        else:
            env[name] = dim_value(name, eval_const(d.default, env),
                                  f" (its default {ast.show(d.default)})")
    rng, out = np.random.default_rng(args.seed), {}
    for v in (v for v in cm.vars.values() if v.role == "param" and v.name not in given):
        plate = tuple(int(eval_const(e, env)) for e in v.shape)
        elem = tuple(int(eval_const(e, env)) for e in v.elem_dims)
        out[v.name] = (  # means spread out, so that mixture components are distinct
            rng.dirichlet(np.full(elem[0], 5.0), size=plate) if v.kind == "simplex"
            else np.broadcast_to(np.eye(elem[0]), plate + elem * 2).copy() if v.kind == "spd"
            else rng.uniform(0.2, 0.8, plate + elem) if v.kind == "unit"
            else rng.gamma(5.0, 1.0, plate + elem) if v.kind == "pos"
            else rng.normal(0.0, 5.0, plate + elem))
    return {**out, **given}


def _simulate(model, args, auto=False) -> tuple[dict, dict, dict]:
    """(true params, the simulation, the dims and hypers used); ``auto`` fills in sizes
    and covariates that were not given (for ``check``)."""
    from .io.data import INT_KINDS
    sets = dict(args.set or [])
    given = _read_covariates(model, args.data, sets) if args.data else {}
    sampled = {f.target for f in model.checked.factors}
    missing = [v.name for v in model.checked.vars.values()
               if v.role == "data" and v.name not in sampled and v.name not in given]
    if missing and not auto:
        raise EmmDataError(f"model {model.name} conditions on the covariate(s) "
                           f"{', '.join(missing)}, which sample does not draw",
                           hint="give them in a data file with --data FILE (.csv, .npz, .npy "
                                "or .ldac)")
    if auto:
        _default_sizes(model, sets)
    truth = _true_params(model, args, sets)
    covariates = {**(_covariates(model, sets, args.seed, given) if auto else {}), **given}
    sim = model.sample(params=truth, seed=args.seed, **sets, **covariates)
    covariates = {k: np.asarray(a, dtype=np.int64 if model.checked.vars[k].kind in INT_KINDS
                                else float) for k, a in covariates.items()}  # as validated
    return truth, {k: np.asarray(v) for k, v in {**covariates, **sim}.items()}, sets


def cmd_sample(args) -> int:
    model, suffix = _load(args.model), Path(args.output).suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise EmmDataError(f"cannot write '{args.output}': use a .npz or .csv file name")
    truth, sim, sets = _simulate(model, args)
    if suffix == ".npz":
        dims = {k: np.asarray(v) for k, v in sets.items() if model.checked.role(k) == "dim"}
        _write(args.output, lambda fh: np.savez(fh, **{**dims, **truth, **sim}))
    else:
        _write(args.output, _csv_bytes(model, sim))
    print(f"wrote {', '.join(f'{k} {v.shape}' for k, v in sim.items())} to {args.output}")
    return 0


def _n_components(model, bound) -> int:
    """The number of values of the latent, evaluated from the bound dims and hypers."""
    from .io.data import eval_const
    h = {**bound.dims, **bound.hypers}
    if hasattr(model.module, "n_components"):
        return int(model.module.n_components(h))
    name = getattr(model.module, "COMPONENTS", None)  # modules generated before n_components
    if isinstance(name, str) and name in bound.dims:
        return bound.dims[name]
    latent = model.checked.vars[model.module.LATENT]  # a literal (cat[2]) or an expression
    return int(eval_const(latent.elem_dims[0], h))


def cmd_check(args) -> int:
    """Simulate from the model, fit the simulation, report how well the params come back."""
    from scipy.optimize import linear_sum_assignment

    from .io.data import bind
    model = _load(args.model)
    truth, sim, sets = _simulate(model, args, auto=True)
    sim = {**truth, **sim}
    data = {k: v for k, v in sim.items() if model.checked.role(k) == "data"}
    res = model.fit(**data, **sets, seed=args.seed + 1, n_init=args.n_init)
    print(f"{model.name}: fitted {', '.join(f'{k} {v.shape}' for k, v in data.items())} "
          f"simulated with seed {args.seed}; n_iter {res.n_iter}, converged {res.converged}")
    estimates = {k: np.asarray(v) for k, v in res.params.items()}
    for var, q in getattr(model.module, "Q_FACTORS", {}).items():   # a latent's posterior
        post = res.posterior[var]                                   # mean against its draw
        mean = post.get("mean", post.get(f"E[{var}]"))
        if mean is not None and var in sim:
            estimates[var] = np.asarray(mean)
    truth = {k: sim[k] for k in estimates if k in sim and sim[k].shape == estimates[k].shape}
    if not truth:
        print("the simulation holds no true params to compare with")
        return 0
    K = _n_components(model, bind(model.checked, {**data, **sets})) \
        if getattr(model.module, "LATENT", None) else 0
    est = {k: np.asarray(estimates[k], dtype=float) for k in truth}
    lead = [k for k in truth if truth[k].ndim and truth[k].shape[0] == K]
    cost = sum(np.abs(truth[k][:, None] - est[k][None]).reshape(K, K, -1).sum(-1) for k in lead)
    perm = linear_sum_assignment(cost)[1] if lead else np.arange(K)  # undo label switching
    perm = perm if K else slice(None)
    worst = 0.0
    for k, true in truth.items():
        e = est[k][perm] if k in lead else est[k][..., perm] if true.ndim and \
            true.shape[-1] == K else est[k]
        err, scale = float(np.max(np.abs(e - true))), float(np.max(np.abs(true))) or 1.0
        worst = max(worst, err / scale)
        print(f"  {k:<10} max |estimate - truth| = {err:.4g}  (relative {err / scale:.3g})")
    ok = worst < args.tolerance
    verdict = "recovered" if ok else f"NOT recovered (tolerance {args.tolerance:g}); try larger N"
    print(f"worst relative error {worst:.3g}: {verdict}")
    return 0 if ok else 1


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    ap = argparse.ArgumentParser(prog="emdsl", description="Derive and run EM for .emm models.")
    ap.add_argument("--version", action="version", version=f"emdsl {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name, help_, func, sets=False):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("model", metavar="MODEL", help="the .emm model file")
        p.set_defaults(func=func)
        if sets:
            p.add_argument("--set", nargs="+", action="extend", type=_set_value,
                           metavar="NAME=V", help="dims and hypers, e.g. --set K=3 alpha=0.5")
            p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        if func in (cmd_sample, cmd_check):
            p.add_argument("--params", metavar="FILE", help="true params: the JSON of "
                           "`fit -o` or a .npz (default: drawn at random)")
            p.add_argument("--data", metavar="FILE", help="covariates (data the model "
                           "conditions on, e.g. doc in topics_em): .csv, .npz, .npy or .ldac")
        return p

    p = cmd("compile", "write the generated numpy module", cmd_compile)
    p.add_argument("-o", "--output", metavar="OUT.py", help="write here instead of stdout")
    p.add_argument("--print", choices=STAGES, help="print one stage of the pipeline")
    p = cmd("derive", "print the derivation of the updates", cmd_derive)
    p.add_argument("--format", choices=tuple(FORMATS), default="md")
    p = cmd("fit", "fit the model to a data file", cmd_fit, sets=True)
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .npz, .npy or .ldac")
    p.add_argument("--method", choices=("batch", "stepwise", "incremental", "svi"))
    p.add_argument("--delay", type=float, metavar="TAU",
                   help="SVI's delay: step sizes (delay + t)^-kappa (default 10)")
    p.add_argument("--batch-size", type=int, dest="batch_size", metavar="B",
                   help="items per minibatch (stepwise), block (incremental) or groups "
                   "per minibatch (svi)")
    p.add_argument("--kappa", type=float, metavar="K",
                   help="step size exponent in (0.5, 1] of stepwise EM (default 0.6) and SVI "
                   "(0.7)")
    p.add_argument("--chunk-rows", type=int, dest="chunk_rows", metavar="R",
                   help="stream the data file (.csv, .npy, .npz) R items at a time (an "
                   ".ldac file: R documents at a time)")
    p.add_argument("--checkpoint", metavar="PATH.npz",
                   help="save the fit's state here (atomically) every --checkpoint-every passes")
    p.add_argument("--checkpoint-every", type=int, dest="checkpoint_every", metavar="N")
    p.add_argument("--resume", metavar="PATH.npz",
                   help="continue a fit from its checkpoint (bit for bit)")
    p.add_argument("--max-iter", type=int, dest="max_iter", metavar="N")
    p.add_argument("--tol", type=float, metavar="T", help="relative ELBO change to stop at")
    p.add_argument("--n-init", type=int, dest="n_init", metavar="N", help="restarts")
    p.add_argument("--reg", type=float, metavar="R", help="added to covariance diagonals")
    p.add_argument("-o", "--output", metavar="RESULT.json|RESULT.npz",
                   help="the result: JSON (params, trace; the posterior written beside as "
                   "RESULT.posterior.npz) or .npz (everything: emdsl.load_result)")
    p.add_argument("--verbose", action="store_true",
                   help="a line per iteration (on a terminal: the progress bar)")
    p.add_argument("--vocab", metavar="FILE", help="words, one per line, to print each "
                   "topic's top words (default for an .ldac file: its sibling .tokens)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the objective's trace (and 1-D "
                   "or 2-D data by component) to this file (needs emdsl[plot])")
    p = cmd("select", "choose a dim (e.g. K) by BIC or AIC: one fit per value", cmd_select,
            sets=True)
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .npz, .npy or .ldac")
    p.add_argument("--criterion", choices=("bic", "aic"), default="bic")
    p.add_argument("--max-iter", type=int, dest="max_iter", metavar="N")
    p.add_argument("--tol", type=float, metavar="T")
    p.add_argument("--n-init", type=int, dest="n_init", default=3, metavar="N",
                   help="restarts per value (default 3)")
    p.add_argument("--reg", type=float, metavar="R")
    p.add_argument("--plot", metavar="FILE.png", help="draw the criterion against the values")
    p.add_argument("-o", "--output", metavar="TABLE.json")
    p = cmd("sample", "simulate data from the model", cmd_sample, sets=True)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=".npz or .csv")
    p = cmd("graph", "print or draw the factor graph", cmd_graph)
    p.add_argument("-o", "--output", metavar="graph.dot|graph.svg")
    p = cmd("check", "simulate, fit and report parameter recovery (exit 1 if not "
            "recovered)", cmd_check, sets=True)
    p.add_argument("--n-init", type=int, dest="n_init", default=3, metavar="N")
    p.add_argument("--tolerance", type=float, default=0.2, metavar="T",
                   help="largest accepted relative error (default 0.2)")
    p = sub.add_parser("examples", help="copy the example models and their data into a "
                       "directory", description="copy the example models and their data "
                       "into a directory")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=cmd_examples)
    return ap


def main(argv=None) -> int:
    """Run the command line; return the exit status (0 ok, 1 error, 2 usage, 3 bug)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # bad usage (2), or --help / --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.simplefilter("ignore", category)  # for developers, not for users
        status, message = _run(args)
    seen = []
    for w in caught:  # one line each, in order, without source locations
        text = f"warning: {w.message}".splitlines()[0]
        if text not in seen:
            seen.append(text)
            print(text, file=sys.stderr)
    if message:
        print(message, file=sys.stderr)
    return status


def _run(args) -> tuple[int, str]:
    """Run the subcommand; return (exit status, error message)."""
    try:
        with np.errstate(divide="ignore", under="ignore"):
            return args.func(args), ""
    except EmmError as exc:
        return 1, exc.format()
    except (FloatingPointError, np.linalg.LinAlgError) as exc:
        return 1, (f"error: the fit failed numerically: {exc}\nhint: check that the data lie "
                   "in the support of the model's families, try another --seed, more restarts "
                   "(--n-init) or a larger --reg")
    except InternalError as exc:
        return 3, exc.format()
    except BrokenPipeError:  # `emdsl derive m.emm | head`: the reader has gone, not a bug
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stop writes at exit failing
        except OSError:
            pass
        return 0, ""
    except Exception as exc:  # noqa: BLE001 - anything else is a bug in emdsl
        return 3, (f"internal compiler error: {type(exc).__name__}: {exc}\nThis is a bug in "
                   "emdsl, please report it with the model and the command that triggered it.")


if __name__ == "__main__":
    sys.exit(main())
