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
import sys
import warnings
from pathlib import Path

import numpy as np

from .errors import EmmDataError, EmmError, EmmFitError, InternalError

STAGES = ("ast", "graph", "plan", "conj", "updates", "code")
FORMATS = {"md": "markdown", "tex": "latex", "html": "html", "text": "text"}


# ----------------------------------------------------------------------------- helpers
def _set_value(text: str):
    """``K=3`` -> ("K", 3), ``a=0.5`` -> ("a", 0.5), ``K=1..4`` -> ("K", [1, 2, 3, 4]) (a
    range, for emdsl select), ``s=1.5,4,9`` -> ("s", [1.5, 4, 9]) (a list: a vector hyper,
    or the values of a dim for select); anything else is a usage error."""
    name, eq, val = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if ".." in val:   # a range of values (emdsl select)
        from .selection import parse_range
        try:
            return name.strip(), parse_range(val)
        except EmmError as exc:
            raise argparse.ArgumentTypeError(f"{name}: {exc.msg}") from None
    try:
        nums = [float(v) for v in val.split(",")]
    except ValueError:
        want = "a list of numbers such as 1.5,4,9" if "," in val else "a number"
        raise argparse.ArgumentTypeError(f"{name}: expected {want}, got {val!r}") from None
    nums = [int(n) if n.is_integer() and abs(n) < 2**53 else n for n in nums]
    return name.strip(), nums if "," in val else nums[0]


class _Sets(argparse.Action):
    """``--set NAME=V ...`` (repeatable) into one dict; a name given twice with different
    values is a usage error naming both (the last one won silently)."""

    def __call__(self, parser, namespace, values, option_string=None):
        sets = dict(getattr(namespace, self.dest, None) or {})
        for name, val in values:
            if name in sets and sets[name] != val:
                parser.error(f"--set {name} is given twice: {name}={_shown(sets[name])} and "
                             f"{name}={_shown(val)}")
            sets[name] = val
        setattr(namespace, self.dest, sets)


def _shown(val) -> str:
    return ",".join(map(str, val)) if isinstance(val, list) else str(val)


def _write(path: str, content, *more) -> None:
    """Write ``content`` (str, bytes, or a function of a binary file) to ``path``
    atomically (``io.files.atomic_write_all``); ``more``: further (path, content) pairs
    written with it as one (all of them, or none)."""
    from .io.files import atomic_write_all

    def writer(content):
        def write(fh):
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        return write
    files = [(path, content), *more]
    try:
        atomic_write_all([(p, writer(c)) for p, c in files])
    except OSError as exc:   # named by the file asked for, not by its temporary
        raise EmmError(f"cannot write '{getattr(exc, 'target', path)}': "
                       f"{exc.strerror or exc}") from None


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
    fmt = args.format
    if fmt is None and args.output:
        fmt = {".md": "md", ".markdown": "md", ".tex": "tex", ".html": "html", ".htm": "html",
               ".txt": "text"}.get(Path(args.output).suffix.lower())
        if fmt is None:
            raise EmmError(f"cannot tell the derivation's format from '{args.output}'",
                           hint="name it .md, .tex, .html or .txt, or give --format")
    text = _load(args.model).derivation(FORMATS[fmt or "md"])
    if args.output:
        _write(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_graph(args) -> int:
    from .dump import run_stages
    fg = run_stages(args.model, "graph")
    suffix = Path(args.output or "").suffix.lower().lstrip(".")
    if not args.output:
        sys.stdout.write(fg.to_dot())
        return 0
    if suffix in ("dot", "gv", ""):
        _write(args.output, fg.to_dot())
        return 0
    from . import plots   # a picture (png, svg, pdf ...), drawn by matplotlib: no Graphviz
    plots.save(plots.factor_graph(fg), args.output)
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
    if args.output and Path(args.output).suffix.lower() not in (".json", ".npz"):
        raise EmmError(f"cannot write the result to '{args.output}'",
                       hint="name it RESULT.json (params and trace; the posterior beside "
                       "it) or RESULT.npz (everything, read back by emdsl.load_result)")
    model, sets = _load(args.model), dict(args.set or [])
    if args.chunk_rows is not None:   # streamed: the file is read chunk by chunk, every pass
        from .io.chunks import chunks
        res = _fit(model, sets, args, stream=chunks(args.data, rows=args.chunk_rows,
                                                    drop_missing=args.drop_missing))
    else:
        columns: dict = {}
        arrays, dims = read_data_file(args.data, model.checked, columns, args.drop_missing)
        _agree(sets, {k: (v, f"from {Path(args.data).name}") for k, v in dims.items()})
        res = _fit(model, {**dims, **arrays, **sets}, args)
    print(f"{model.name} ({model.module.ALGORITHM}) fitted to {args.data}")
    for name, used in (columns if args.chunk_rows is None else {}).items():
        if len(used) > 1:   # what the last axis of the params of this datum means
            print(f"columns of {name}: {', '.join(used)}")
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
        _write(args.output, json.dumps(doc, indent=1) + "\n",
               (beside, lambda fh: np.savez(fh, **flat_posterior(posterior))))
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
def cmd_sample(args) -> int:
    from .cli_simulate import sample_command
    return sample_command(args, _load, _write)


def cmd_check(args) -> int:
    from .cli_simulate import check_command
    return check_command(args, _load)


# ----------------------------------------------------------------------------- main
def _data_options(p) -> None:
    """The data file of ``fit`` and ``select``, and what to do with its missing values."""
    p.add_argument("--data", required=True, metavar="FILE", help=".csv, .npz, .npy or .ldac")
    p.add_argument("--drop-missing", action="store_true", dest="drop_missing",
                   help="drop CSV rows with a missing value in a column used (default: such "
                        "a row is an error naming its row and column)")


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
            p.add_argument("--set", nargs="+", action=_Sets, type=_set_value,
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
    p.add_argument("--format", choices=tuple(FORMATS),
                   help="md (default), tex (a standalone LaTeX document), html (a "
                        "self-contained page) or text; -o FILE's suffix chooses it when absent")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p = cmd("fit", "fit the model to a data file", cmd_fit, sets=True)
    _data_options(p)
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
    _data_options(p)
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
    p.add_argument("-o", "--output", metavar="FILE",
                   help="graph.dot (DOT text), or a picture graph.png | .svg | .pdf drawn "
                        "with matplotlib (no Graphviz needed)")
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
        for category in (DeprecationWarning, PendingDeprecationWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)  # for developers, not for users
        status, message = _run(args)
    seen = []
    for w in caught:  # one line each, in order, without source locations
        text = _cli_words(f"warning: {w.message}".splitlines()[0], args)
        if text not in seen:
            seen.append(text)
            print(text, file=sys.stderr)
    if message:
        print(message, file=sys.stderr)
    return status


# fit options as the Python API spells them in messages -> the command line's flags
_FLAGS = ("seed", "method", "max_iter", "tol", "n_init", "reg", "batch_size", "kappa", "delay")
_BARE = ("max_iter", "n_init", "batch_size", "tol", "seed", "reg")   # flags also in prose


def _cli_words(text: str, args) -> str:
    """A message for the command line: ``method='batch'`` -> ``--method batch``,
    ``max_iter`` -> ``--max-iter``, `` `reg` `` -> ``--reg`` in its first line and its
    hint, for the flags the running command has (``args``: its parsed arguments); the API's
    messages name its keyword arguments; a model's source lines and quoted names are left
    as they are."""
    flags = [opt for opt in _FLAGS if hasattr(args, opt)]
    lines = text.split("\n")
    return "\n".join(_flags(s, flags) if i == 0 or s.startswith("hint:") else s
                     for i, s in enumerate(lines))


def _flags(text: str, flags) -> str:
    import re
    for opt in flags:
        flag = "--" + opt.replace("_", "-")
        text = re.sub(rf"`?(?<![\w./\\'-]){opt}`?=(['\"]?)([^\s,;)'\"]+)\1", rf"{flag} \2",
                      text)
        if opt in _BARE:   # (not inside a path or a dotted name)
            text = re.sub(rf"`?(?<![\w./\\'-]){opt}(?![\w/\\]|\.\w|\s*[=(])`?", flag, text)
    return text


def _run(args) -> tuple[int, str]:
    """Run the subcommand; return (exit status, error message)."""
    try:
        with np.errstate(divide="ignore", under="ignore"):
            return args.func(args), ""
    except (EmmDataError, EmmFitError) as exc:   # about the run: its options as flags
        return 1, _cli_words(exc.format(), args)
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
