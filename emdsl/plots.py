"""Pictures of fits (matplotlib, an optional extra: ``pip install 'emdsl[plot]'``).

- :func:`trace`: the objective after each iteration (or pass);
- :func:`clusters`: 1-D data as a histogram per most probable component, 2-D data as
  points coloured by it, with the fitted means when the model has them;
- :func:`selection`: a criterion (BIC, AIC) against the values of a dim (``emdsl select``);
- :func:`factor_graph`: a model's factor graph with its plates (``emdsl graph -o F.png``).

Each draws on ``ax`` (a new figure when None) and returns the figure; :func:`save` writes
one to a file (format from its suffix) without a display.
"""
from __future__ import annotations

from pathlib import Path

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


_FILL = {"data": "#c8c8c8", "latent": "white", "param": "#d6e6f5"}


def factor_graph(fg, ax=None):
    """The factor graph of a model (``model.factor_graph``) with its plates, drawn without
    Graphviz (layout: :mod:`emdsl.graph.layout`): variables as circles (data shaded, params
    blue, latents white, hypers small dots), factors as black squares labelled by their
    family, plates as rounded rectangles labelled by their range; dashed edges are index
    and covariate references."""
    from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

    from .graph.layout import layout
    lay = layout(fg)
    if ax is None:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(min(16, 1.5 + 1.25 * lay.width),
                                        min(14, 1.0 + 1.05 * lay.height)))
    fig = ax.figure
    for box in lay.plates:
        ax.add_patch(FancyBboxPatch((box.x0, box.y0), box.x1 - box.x0, box.y1 - box.y0,
                                    linewidth=1.1, boxstyle="round,pad=0,rounding_size=0.12",
                                    facecolor="none", edgecolor="0.35"))
        ax.text(box.x1 - 0.08, box.y0 + 0.06, box.label, ha="right", va="bottom", fontsize=8,
                color="0.25")
    for f, v, dashed in lay.edges:
        (x0, y0), (x1, y1) = lay.positions[f], lay.positions[v]
        ax.plot([x0, x1], [y0, y1], color="0.3", linewidth=0.9, zorder=1,
                linestyle="--" if dashed else "-")
    r = 0.3
    for node, (x, y) in lay.positions.items():
        label = lay.labels[node]
        if node not in lay.roles:   # a factor
            ax.add_patch(Rectangle((x - 0.08, y - 0.08), 0.16, 0.16, color="black", zorder=3))
            ax.text(x + 0.13, y, label, ha="left", va="center", fontsize=7, color="0.2",
                    zorder=4)
        elif lay.roles[node] == "hyper":
            ax.add_patch(Circle((x, y), 0.05, color="black", zorder=3))
            ax.text(x, y + 0.12, label, ha="center", va="bottom", fontsize=8, zorder=4)
        else:
            ax.add_patch(Circle((x, y), r, facecolor=_FILL.get(lay.roles[node], "white"),
                                edgecolor="black", linewidth=1.0, zorder=3))
            ax.text(x, y, label, ha="center", va="center", zorder=4,
                    fontsize=max(5.0, min(10.0, 52.0 / max(len(label), 1))))
    ax.set_xlim(-0.2, lay.width + 0.2)
    ax.set_ylim(-lay.height - 0.1, 0.7)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{fg.model.name}: factor graph", fontsize=10)
    return fig


def save(fig, path) -> None:
    """Write ``fig`` to ``path`` (png, svg, pdf ... from the suffix)."""
    from .io.files import atomic_write
    fmt = Path(path).suffix.lstrip(".").lower() or None
    try:   # atomically, as every output: a failed drawing leaves no half picture
        atomic_write(path, lambda fh: fig.savefig(fh, format=fmt, dpi=120,
                                                  bbox_inches="tight"))
    except (OSError, ValueError) as exc:
        raise EmmError(f"cannot write the picture '{path}': {exc}") from None
    finally:
        _pyplot().close(fig)
