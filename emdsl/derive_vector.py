"""M-steps for MvNormal params: the inverse mean map of the Gaussian family.

For x ~ N(mu, Sigma) the sufficient statistics are t(x) = (x, x x^T) and the expected
complete-data log likelihood of one component is (Linderman eq. 49)

    Q = -1/2 tr(Sigma^-1 Sxx) + mu^T Sigma^-1 Sx - N/2 mu^T Sigma^-1 mu - N/2 log|Sigma|.

Setting dQ/dmu = 0 and dQ/dSigma = 0 inverts the mean map (eq. 51):
    mu = Sx / N,   Sigma = Sxx / N - mu mu^T   (+ reg * I).
With a known covariance C and a conjugate prior mu ~ N(m0, C0) (eq. 13, 32), completing the
square gives  (N C^-1 + C0^-1) mu = C^-1 Sx + C0^-1 m0.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ast
from .check import CheckedModel, Factor
from .conjugacy import ConjugacyReport, Emission
from .errors import NonConjugateError


@dataclass
class GaussianUpdate:
    emission: Emission
    mean: str | None            # param name, or None when the mean is known
    mean_known: ast.Expr | None
    cov: str | None             # param name, or None when the covariance is known
    cov_known: ast.Expr | None
    cov_keyword: str            # 'cov' or 'prec'
    prior: Factor | None        # MvNormal prior on the mean
    axes: tuple

    @property
    def params(self) -> tuple:
        return tuple(p for p in (self.mean, self.cov) if p)


def gaussian_updates(cm: CheckedModel, report: ConjugacyReport) -> list:
    out = []
    for e in report.emissions:
        if e.kind != "mvnormal":
            continue
        f = e.factor
        mean_e, cov_e = f.arg["mean"], f.arg["cov"]
        kw = dict(f.keywords).get("cov", "cov")
        mean = _param_of(cm, mean_e, "mean", f)
        cov = _param_of(cm, cov_e, "cov", f)
        prior = report.priors.get(mean) if mean else None
        if prior is not None:
            if prior.family.name != "MvNormal" or cov is not None:
                raise NonConjugateError(
                    f"not supported yet: a {prior.family.name} prior on mean '{mean}' "
                    + ("with an unknown covariance" if cov else ""), prior.span,
                    "MAP means need a MvNormal prior and a known covariance",
                    cm.model.source)
        if cov and cov in report.priors:
            raise NonConjugateError(f"not supported yet: a prior on covariance '{cov}'",
                                    report.priors[cov].span, None, cm.model.source)
        for p in (mean, cov):
            if p and sum(p in g.params for g in out):
                raise NonConjugateError(f"not supported yet: param '{p}' in two MvNormal "
                                        "statements", f.span, None, cm.model.source)
        axes = e.refs[0].axes if e.refs else ()
        out.append(GaussianUpdate(e, mean, None if mean else mean_e, cov,
                                  None if cov else cov_e, kw, prior, axes))
    return out


def _param_of(cm: CheckedModel, e: ast.Expr, what: str, f: Factor) -> str | None:
    """The param that ``e`` is (``mu`` or ``mu[z[n]]``), None when ``e`` is known."""
    base = e.base if isinstance(e, ast.Index) else e
    if isinstance(base, ast.Name) and cm.role(base.id) == "param":
        return base.id
    for sub in ast.walk_expr(e):
        if isinstance(sub, ast.Name) and cm.role(sub.id) in ("param", "latent", "data"):
            raise NonConjugateError(f"not supported yet: an MvNormal {what} that is an "
                                    f"expression of '{sub.id}'", sub.span,
                                    f"pass the param itself as the {what}", cm.model.source)
    return None
