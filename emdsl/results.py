"""Saving and loading fitted results: ``result.save("fit.npz")`` and
``emdsl.load_result("fit.npz")``.

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
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import EmmDataError, EmmError

FORMAT = "emdsl-result-1"


def save_result(result, path) -> None:
    """Write ``result`` (a FitResult made by ``Model.fit``) to ``path`` atomically."""
    if result.model is None:
        raise EmmError("this result does not know its model (made outside Model.fit)")
    arrays = {f"params/{k}": np.asarray(v) for k, v in result.params.items()}
    arrays["elbo"] = np.asarray(result.elbo, dtype=float)
    arrays.update(flat_posterior(result.posterior, "posterior/"))
    meta = {"format": FORMAT, "model": result.model.name,
            "source": result.model.checked.model.source, "algorithm": result.algorithm,
            "n_iter": int(result.n_iter), "converged": bool(result.converged),
            "fixed": {k: np.asarray(v).tolist() for k, v in result.fixed.items()},
            "warnings": [str(w[1]) for w in result.warnings]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                               dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
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
    from .runtime.batch import FitResult
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
        meta = json.loads(bytes(stored.pop("meta")).decode())
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
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
    return FitResult(params, posterior, stored["elbo"], meta["n_iter"], meta["converged"],
                     [(UserWarning, w) for w in meta["warnings"]], meta["algorithm"],
                     model, fixed)


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
