"""Choosing a dim (the number of components) by an information criterion:
``emdsl.select(model, "K", range(1, 11), x=X)`` and ``emdsl select MODEL --data f.csv
--set K=1..10`` fit the model once per value and keep the one with the lowest BIC (or
AIC), printing a table and, with ``--plot``, drawing the criterion against the value.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field


from .errors import EmmDataError
from .results import POINT_ESTIMATES, criteria

CRITERIA = ("bic", "aic")


@dataclass
class Selection:
    """Fits of one model at each value of a dim: ``rows`` (value, objective,
    n_parameters, bic, aic, converged, n_iter), ``best`` (the value with the lowest
    ``criterion``) and ``results`` (value -> FitResult)."""
    dim: str
    criterion: str
    rows: list
    best: int
    results: dict = field(repr=False)

    def table(self) -> str:
        """The rows as aligned text, the chosen value marked with '*'."""
        head = f"{self.dim:>6} {'log L':>14} {'params':>7} {'BIC':>14} {'AIC':>14}  converged"
        lines = [head]
        for r in self.rows:
            mark = "*" if r["value"] == self.best else " "
            lines.append(f"{r['value']:>5}{mark} {r['objective']:>14.6g} {r['n_parameters']:>7d} "
                         f"{r['bic']:>14.6g} {r['aic']:>14.6g}  {r['converged']}")
        lines.append(f"chosen: {self.dim} = {self.best} (lowest {self.criterion.upper()})")
        return "\n".join(lines)

    def plot(self, path=None, ax=None):
        """The criterion against the values (matplotlib); saved to ``path`` when given."""
        from . import plots
        fig = plots.selection(self, ax)
        if path is not None:
            plots.save(fig, path)
        return fig


def select(model, dim: str, values, criterion: str = "bic", **kwargs) -> Selection:
    """Fit ``model`` with ``dim`` set to each of ``values`` (the other keywords as for
    ``fit``: data, dims, hypers and options) and choose by ``criterion``."""
    if criterion not in CRITERIA:
        raise EmmDataError(f"criterion '{criterion}' is not available", hint="use 'bic' or 'aic'")
    if model.checked.role(dim) != "dim":
        raise EmmDataError(f"'{dim}' is not a dim of model {model.name}",
                           hint="dims: " + ", ".join(model.checked.dims))
    values = [int(v) for v in values]
    if not values or min(values) < 1:
        raise EmmDataError(f"select needs positive values of {dim}, got {values}")
    if model.module.ALGORITHM not in POINT_ESTIMATES:
        raise EmmDataError(f"BIC and AIC count the params of a point estimate; model "
                           f"{model.name} is fitted by {model.module.ALGORITHM}",
                           hint="compare variational fits by their ELBO")
    data = {k: v for k, v in kwargs.items() if model.checked.role(k) == "data"}
    rows, results = [], {}
    for value in values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # (non-convergence is in the table)
            r = model.fit(**kwargs, **{dim: value})
        _, loglik, n, _ = r._evaluate(data)
        p = r.n_parameters
        rows.append({"value": value, "objective": loglik, "n_parameters": p,
                     **criteria(loglik, p, n), "converged": r.converged, "n_iter": r.n_iter})
        results[value] = r
    best = min(rows, key=lambda row: row[criterion])["value"]
    return Selection(dim, criterion, rows, best, results)


def parse_range(text: str) -> list:
    """``"1..10"`` -> [1, ..., 10]; ``"2,4,8"`` -> [2, 4, 8]."""
    try:
        if ".." in text:
            lo, hi = (int(t) for t in text.split("..", 1))
            return list(range(lo, hi + 1))
        return [int(t) for t in text.split(",")]
    except ValueError:
        raise EmmDataError(f"expected a range such as 1..10 or a list such as 2,4,8, got "
                           f"{text!r}") from None
