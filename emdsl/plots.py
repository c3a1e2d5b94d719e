"""Pictures of fits (matplotlib, an optional extra: ``pip install 'emdsl[plot]'``).

- :func:`trace`: the objective after each iteration (or pass);
- :func:`clusters`: 1-D data as a histogram per most probable component, 2-D data as
  points coloured by it, with the fitted means when the model has them;
- :func:`selection`: a criterion (BIC, AIC) against the values of a dim (``emdsl select``).

Each draws on ``ax`` (a new figure when None) and returns the figure; :func:`save` writes
one to a file (format from its suffix) without a display.
"""
from __future__ import annotations

import numpy as np

from .errors import EmmError


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise EmmError("plots need matplotlib: pip install 'emdsl[plot]'") from None
    return plt


def _axes(ax):
    if ax is not None:
        return ax.figure, ax
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    return fig, ax


def trace(result, ax=None):
    """The objective (``result.elbo``) against the iteration."""
    fig, ax = _axes(ax)
    values = np.asarray(result.elbo, dtype=float)
    ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel(result.objective_name)
    ax.set_title(f"{result.algorithm}: {result.objective_name} "
                 f"{'converged' if result.converged else 'not converged'} after "
                 f"{result.n_iter} iterations")
    ax.grid(alpha=0.3)
    return fig


def clusters(result, x, ax=None, means: str | None = None):
    """Items ``x`` (N,) or (N, 2) by their most probable component; ``means``: the name
    of a param (K, D) or (K,) drawn as crosses (the model's first real param of that
    shape when None)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] != 2):
        raise EmmError(f"clusters are drawn for 1-D or 2-D data, got shape {x.shape}")
    latent = next((k for k, v in result.posterior.items() if isinstance(v, np.ndarray)
                   and v.ndim == 2 and len(v) == len(x)), None)
    if latent is None:
        raise EmmError("clusters need the responsibilities of the items (a model with a "
                       "discrete latent per item)")
    label = np.argmax(np.asarray(result.posterior[latent]), axis=1)
    K = np.asarray(result.posterior[latent]).shape[1]
    fig, ax = _axes(ax)
    colours = [f"C{k % 10}" for k in range(K)]
    if x.ndim == 1:
        bins = np.histogram_bin_edges(x, bins="auto")
        for k in range(K):
            ax.hist(x[label == k], bins=bins, color=colours[k], alpha=0.6, label=f"{k}")
        ax.set_xlabel("x")
        ax.set_ylabel("items")
    else:
        for k in range(K):
            ax.scatter(*x[label == k].T, s=8, color=colours[k], alpha=0.7, label=f"{k}")
        ax.set_xlabel("x[:, 0]")
        ax.set_ylabel("x[:, 1]")
    centre = _means(result, K, x, means)
    if centre is not None:
        if x.ndim == 1:
            for k, c in enumerate(centre):
                ax.axvline(c, color=colours[k], linestyle="--")
        else:
            ax.scatter(*centre.T, marker="x", s=80, c="black", label="means")
    ax.legend(title=latent, fontsize="small")
    ax.set_title(f"items by their most probable {latent}")
    return fig


def _means(result, K, x, name):
    """The component means to draw: param ``name``, else the first real-valued param of
    shape (K,) / (K, 2) (not weights, rates or variances), else a variational factor's
    mean of that shape; None if none."""
    want = (K,) if x.ndim == 1 else (K, 2)
    if name is not None:
        return np.asarray(result.params[name])
    kinds = getattr(getattr(result, "model", None), "module", None)
    kinds = getattr(kinds, "PARAM_KINDS", {})
    for k, v in result.params.items():
        v = np.asarray(v)
        if kinds.get(k) == "real" and v.shape == want:
            return v
    for q in result.posterior.values():   # a variational mean ("mu": {"mean": ...})
        if isinstance(q, dict) and np.shape(q.get("mean")) == want:
            return np.asarray(q["mean"])
    return None


def selection(table, ax=None):
    """The criterion of a :class:`emdsl.selection.Selection` against the dim's values, the
    chosen value marked."""
    fig, ax = _axes(ax)
    values = [row["value"] for row in table.rows]
    scores = [row[table.criterion] for row in table.rows]
    ax.plot(values, scores, marker="o")
    ax.axvline(table.best, color="C3", linestyle="--", label=f"{table.dim} = {table.best}")
    ax.set_xlabel(table.dim)
    ax.set_ylabel(table.criterion.upper() + " (lower is better)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def save(fig, path) -> None:
    """Write ``fig`` to ``path`` (png, svg, pdf ... from the suffix)."""
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as exc:
        raise EmmError(f"cannot write the picture '{path}': {exc}") from None
    finally:
        _pyplot().close(fig)
