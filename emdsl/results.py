"""The result of ``Model.fit`` as users see it (:class:`Fitted`: a FitResult that knows
its model: predict, score, BIC / AIC, plots, notebooks, pickling), and saving and loading
it: ``result.save("fit.npz")`` and ``emdsl.load_result("fit.npz")``.

One ``.npz`` file (numpy arrays only, read back with ``allow_pickle=False``): the params,
the trace, the posterior (the latent's responsibilities and each q factor's fields), and a
JSON record of the rest (the model's source and name, the algorithm, the fit's dims and
hypers, n_iter, converged). A loaded result carries its model, recompiled from the saved
source, so it predicts and scores new data like the fit that made it.
"""
from __future__ import annotations

import html
import io
import json
import zipfile

import numpy as np

from .errors import EmmDataError, EmmError
from .runtime.batch import FitResult

FORMAT = "emdsl-result-1"


def criteria(loglik: float, p: int, n: int) -> dict:
    """{"bic": -2 log L + p log N, "aic": -2 log L + 2 p} (lower is better)."""
    return {"bic": -2.0 * loglik + p * np.log(n), "aic": -2.0 * loglik + 2.0 * p}


POINT_ESTIMATES = ("EM", "MAP-EM")   # the algorithms whose params BIC and AIC count


def _fields(result: FitResult) -> dict:
    return {f: getattr(result, f) for f in FitResult.__dataclass_fields__}


class Fitted(FitResult):
    """A FitResult with its ``model`` and the fit's dims and hypers (``fixed``): it
    predicts and scores new data given by the same keywords as ``fit``."""

    def __init__(self, result: FitResult, model, fixed: dict):
        super().__init__(**_fields(result))
        self.model, self.fixed = model, dict(fixed)

    def __reduce__(self):   # the posterior held (a lazy one evaluated); the model pickles
        plain = FitResult(**{**_fields(self), "posterior": dict(self.posterior)})   # as
        return (Fitted, (plain, self.model, self.fixed))   # its source (Model.__reduce__)

    def _evaluate(self, data: dict):
        return self.model.evaluate(self, data)

    def predict_proba(self, **data) -> np.ndarray:
        """The latent's responsibilities (N, K) of new items (keyword data, as for fit)
        at the fitted params."""
        return self._evaluate(data)[0]

    def predict(self, **data) -> np.ndarray:
        """The most probable value of the latent for each new item (N,)."""
        return np.argmax(self.predict_proba(**data), axis=1)

    def score(self, **data) -> float:
        """The mean log likelihood per item of new data (scikit-learn's ``score``; for a
        variational fit, the data's part of the ELBO per item)."""
        _, loglik, n, _ = self._evaluate(data)
        return loglik / n

    def score_samples(self, **data) -> np.ndarray:
        """Each new item's log likelihood log p(x_n | params) (N,) (scikit-learn's
        ``score_samples``; for a variational fit, its part of the ELBO)."""
        return self._evaluate(data)[3]

    @property
    def n_parameters(self) -> int:
        """Free parameters of the fit, counted from the model's declarations (a simplex[K]
        has K - 1, an spd[D] D (D + 1) / 2, a real[D] D, per element of its plate)."""
        return self.model.n_parameters(self.fixed)

    def bic(self, **data) -> float:
        """Bayesian information criterion of the data: -2 log L + p log N (lower is
        better; p = ``n_parameters``), as scikit-learn's ``bic``."""
        _, loglik, n, _ = self._ml(data)
        return criteria(loglik, self.n_parameters, n)["bic"]

    def aic(self, **data) -> float:
        """Akaike information criterion: -2 log L + 2 p."""
        _, loglik, n, _ = self._ml(data)
        return criteria(loglik, self.n_parameters, n)["aic"]

    def plot(self, path=None, x=None, ax=None):
        """The objective's trace, or with ``x`` (1-D or 2-D data) the items by their most
        probable component (matplotlib: ``pip install 'emdsl[plot]'``); saved to ``path``
        when given. Returns the figure."""
        from . import plots
        fig = plots.trace(self, ax) if x is None else plots.clusters(self, x, ax)
        if path is not None:
            plots.save(fig, path)
        return fig

    def _repr_html_(self) -> str:
        """In a notebook: the fit's summary, a table of its params and the objective's
        trace (an inline SVG when matplotlib is installed)."""
        return html_summary(self)

    def save(self, path) -> None:
        """Write the result (params, trace, posterior, the model's source, the fit's dims
        and hypers) to a .npz file; ``emdsl.load_result`` reads it back."""
        save_result(self, path)

    def _ml(self, data):
        if self.algorithm not in POINT_ESTIMATES:
            raise ValueError(f"BIC and AIC count the params of a point estimate; this fit is "
                             f"{self.algorithm} (compare variational fits by their ELBO)")
        return self._evaluate(data)


def save_result(result, path) -> None:
    """Write ``result`` (a :class:`Fitted`) to ``path`` atomically."""
    arrays = {f"params/{k}": np.asarray(v) for k, v in result.params.items()}
    arrays["elbo"] = np.asarray(result.elbo, dtype=float)
    arrays.update(flat_posterior(result.posterior, "posterior/"))
    meta = {"format": FORMAT, "model": result.model.name,
            "source": result.model.checked.model.source, "algorithm": result.algorithm,
            "n_iter": int(result.n_iter), "converged": bool(result.converged),
            "fixed": {k: np.asarray(v).tolist() for k, v in result.fixed.items()},
            "warnings": [str(w[1]) for w in result.warnings]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    from .io.files import atomic_write
    try:
        atomic_write(path, lambda fh: np.savez(fh, **arrays))
    except OSError as exc:
        raise EmmError(f"cannot write '{path}': {exc.strerror}") from None


def flat_posterior(posterior, prefix: str = "") -> dict:
    """Arrays by key: the latent's responsibilities under its name, each q factor's fields
    as "var/field" (after ``prefix``)."""
    out = {}
    for name, value in posterior.items():
        if isinstance(value, dict):
            out.update({f"{prefix}{name}/{f}": np.asarray(v) for f, v in value.items()})
        else:
            out[f"{prefix}{name}"] = np.asarray(value)
    return out


def load_result(path):
    """The FitResult saved in ``path``, with its model recompiled from the saved source."""
    from .api import loads
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        meta = json.loads(bytes(stored.pop("meta")).decode())
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise EmmDataError(f"'{path}' is not a saved emdsl result ({exc})") from None
    if meta.get("format") != FORMAT:
        raise EmmDataError(f"'{path}' is not a saved emdsl result (format "
                           f"{meta.get('format')!r}, expected {FORMAT!r})")
    model = loads(meta["source"], name=meta["model"])
    params = {k[len("params/"):]: v for k, v in stored.items() if k.startswith("params/")}
    posterior: dict = {}
    for k, v in stored.items():
        if not k.startswith("posterior/"):
            continue
        parts = k.split("/")
        if len(parts) == 2:
            posterior[parts[1]] = v
        else:
            posterior.setdefault(parts[1], {})[parts[2]] = v
    fixed = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in meta["fixed"].items()}
    return Fitted(FitResult(params, posterior, stored["elbo"], meta["n_iter"],
                            meta["converged"], [(UserWarning, w) for w in meta["warnings"]],
                            meta["algorithm"]), model, fixed)


def html_summary(result) -> str:
    """HTML of a FitResult for notebooks: summary line, params table, the trace."""
    name = getattr(result.model, "name", "")
    rows = []
    with np.printoptions(precision=4, suppress=True, threshold=40, edgeitems=3,
                         linewidth=80):
        for k, v in result.params.items():
            v = np.asarray(v)
            rows.append(f"<tr><td><code>{html.escape(k)}</code></td><td>{v.shape}</td>"
                        f"<td><pre>{html.escape(np.array2string(v))}</pre></td></tr>")
    head = (f"<p><b>{html.escape(name)}</b> fitted by {html.escape(result.algorithm)}: "
            f"{html.escape(result.objective_name)} {result.objective:.10g} after "
            f"{result.n_iter} iterations ({'converged' if result.converged else 'not converged'}"
            f")</p>")
    table = ("<table><tr><th>param</th><th>shape</th><th>value</th></tr>" + "".join(rows)
             + "</table>")
    return head + table + _trace_svg(result)


def _trace_svg(result) -> str:
    try:
        from . import plots
        fig = plots.trace(result)
    except EmmError:   # no matplotlib: the trace's ends in words
        values = np.asarray(result.elbo)
        return (f"<p>trace: {values[0]:.6g} &rarr; {values[-1]:.6g}</p>" if len(values)
                else "")
    buf = io.StringIO()
    fig.set_size_inches(5, 3)
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plots._pyplot().close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]
