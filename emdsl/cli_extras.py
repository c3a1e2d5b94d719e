"""Presentation helpers of the command line (``cli.py``): a topic model's top words,
the picture of a fit, and ``emdsl select``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import EmmError


def top_words(model, res, vocab: Path, n: int = 10) -> None:
    """The n most probable words of each topic: every (K, V) simplex param or Dirichlet
    factor over the vocabulary (one word per line of ``vocab``)."""
    words = vocab.read_text(encoding="utf-8").rstrip("\n").split("\n")
    kinds = model.module.PARAM_KINDS
    for name, value in res.params.items():
        value = np.asarray(value)
        topic_like = kinds.get(name) == "simplex" or name.endswith(".concentration")
        if not topic_like or value.ndim != 2 or value.shape[1] != len(words):
            continue
        print(f"top words of {name} ({vocab.name}):")
        for k, row in enumerate(value / value.sum(axis=1, keepdims=True)):
            top = np.argsort(row)[::-1][:n]
            print(f"  {k}: " + " ".join(words[i] for i in top))


def plot_fit(res, arrays: dict, path) -> None:
    from . import plots
    plt = plots._pyplot()
    x = next((np.asarray(a) for a in arrays.values()
              if np.ndim(a) == 1 and np.issubdtype(np.asarray(a).dtype, np.floating)
              or np.ndim(a) == 2 and np.shape(a)[1] <= 2), None)
    drawable = x is not None and any(np.ndim(v) == 2 and len(v) == len(x)
                                     for v in res.posterior.values()
                                     if isinstance(v, np.ndarray))
    fig, axes = plt.subplots(1, 2 if drawable else 1, figsize=(11 if drawable else 6, 4))
    axes = np.atleast_1d(axes)
    plots.trace(res, axes[0])
    if drawable:
        plots.clusters(res, x, axes[1])
    plots.save(fig, path)
    print(f"wrote {path}")


def select_command(args, load, agree, write) -> int:
    """``emdsl select``: one fit per value of the dim given as a range."""
    from .io.data import read_data_file
    from .selection import select
    model, sets = load(args.model), dict(args.set or [])
    ranges = [k for k, v in sets.items() if isinstance(v, list)
              and model.checked.role(k) == "dim"]   # (a list for a hyper is its vector)
    if len(ranges) != 1:
        raise EmmError("select needs one dim given as a range, e.g. --set K=1..10")
    if not all(isinstance(v, int) for v in sets[ranges[0]]):
        raise EmmError(f"the values of dim {ranges[0]} must be whole numbers, got "
                       f"{sets[ranges[0]]}")
    dim = ranges[0]
    values = sets.pop(dim)
    arrays, dims = read_data_file(args.data, model.checked, drop_missing=args.drop_missing)
    if dim in dims:
        raise EmmError(f"select varies dim {dim}, but the data file {Path(args.data).name} "
                       f"fixes it ({dim} = {dims[dim]})", hint=f"take {dim} out of the data "
                       "file, or select another dim")
    agree(sets, {k: (v, f"from {Path(args.data).name}") for k, v in dims.items()})
    opts = {k: getattr(args, k) for k in ("seed", "max_iter", "tol", "n_init", "reg")
            if getattr(args, k, None) is not None}
    sel = select(model, dim, values, args.criterion, **{**dims, **arrays, **sets}, **opts)
    print(sel.table())
    if args.plot:
        sel.plot(args.plot)
        print(f"wrote {args.plot}")
    if args.output:
        write(args.output, json.dumps({"dim": dim, "criterion": sel.criterion,
                                        "best": sel.best, "rows": sel.rows}, indent=1) + "\n")
    return 0
