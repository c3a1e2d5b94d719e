"""Updates for MvNormal emissions from the family table's messages and modes.

For x ~ N(m, Sigma) with statistics per cell c (sum_x, sum_xx, N_c) of the centred data,
the expected complete-data log likelihood sends (MvNormal entry, ``MESSAGES``)

    to the mean m:          (Lambda_c (sum_x_c - N_c b),  -N_c/2 Lambda_c)   on (m, m m^T)
    to the covariance:      (-1/2 scatter_c, -N_c/2)        on (Sigma^-1, log|Sigma|)
    to the precision:       (-1/2 scatter_c,  N_c/2)        on (Lambda, log|Lambda|)

A param receives the messages of every cell it appears in (a tied covariance sums them
over the components), plus the natural parameters of its conjugate prior (MvNormal on a
mean, InvWishart on a covariance, Wishart on a precision; a mean prior whose precision is
the emission's precision param scaled, Normal-Wishart, also sends a message to it), and
its update is the mode of that conjugate form (Linderman eq. 50-51; the MAP for a prior,
the ML estimate without).  Mean first, then the spread given the new mean (ECM; exact when
the mean's update does not depend on the spread).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..frontend import ast
from ..frontend.check import CheckedModel, Factor
from .conjugacy import ConjugacyReport, Emission
from ..errors import NonConjugateError
from ..families import VECTOR_FAMILIES


@dataclass
class Slot:
    """One argument of an MvNormal: ``sign * P * scale + offset`` (mean) or ``P * scale``
    / ``P / scale`` (spread) with P a param, or a ``known`` expression."""
    param: str | None
    axes: tuple = ()
    offset: ast.Expr | None = None   # mean: a known vector added
    sign: int = 1                    # mean: +P or (only with an offset) -P
    scale: ast.Expr | None = None    # a known factor (mean: a number or a vector)
    divide: bool = False             # P / scale
    known: ast.Expr | None = None


@dataclass
class GaussianUpdate:
    emission: Emission
    mean: Slot
    spread: Slot
    keyword: str                # 'cov' or 'prec': what the spread argument is
    grid: tuple                 # the cells: the union of the two slots' axes
    mean_prior: Factor | None = None
    prior_spread: Slot | None = None   # the mean prior's spread (known, or the spread param)
    prior_keyword: str = "cov"
    spread_prior: Factor | None = None

    @property
    def params(self) -> tuple:
        return tuple(p for p in (self.mean.param, self.spread.param) if p)


def gaussian_updates(cm: CheckedModel, report: ConjugacyReport) -> list:
    out = []
    for e in report.emissions:
        if e.kind != "mvnormal":
            continue
        f = e.factor
        kw = dict(f.keywords).get("cov", "cov")
        axes = {r.param: r.axes for r in e.refs}
        mean = _mean_slot(cm, f.arg["mean"], axes)
        spread = _spread_slot(cm, f.arg["cov"], axes, "cov")
        grid = tuple(dict.fromkeys(mean.axes + spread.axes))
        gu = GaussianUpdate(e, mean, spread, kw, grid)
        for p in gu.params:
            if sum(p in g.params for g in out):
                raise NonConjugateError(f"not supported yet: param '{p}' in two MvNormal "
                                        "statements", f.span, None, cm.model.source)
        if mean.param and mean.param in report.priors:
            _mean_prior(cm, gu, report.priors[mean.param])
        if spread.param and spread.param in report.priors:
            _spread_prior(cm, gu, report.priors[spread.param])
        out.append(gu)
    return out


def _ref(cm, e: ast.Expr):
    """The param that ``e`` is (``mu`` or ``mu[z[n]]``), else None."""
    base = e.base if isinstance(e, ast.Index) else e
    if isinstance(base, ast.Name) and cm.role(base.id) == "param":
        return base.id
    return None


def _known(cm, e: ast.Expr, what: str) -> bool:
    """Whether ``e`` holds no param, latent or datum (raises, naming it, when it does)."""
    for sub in ast.walk_expr(e):
        if isinstance(sub, ast.Name) and cm.role(sub.id) == "latent":
            raise NonConjugateError(f"not supported yet: a known factor of an MvNormal {what} "
                                    f"that depends on the latent '{sub.id}' (one per "
                                    "component)", sub.span, "a known factor the same for "
                                    f"every component is derived (`c * S`, `mu[{sub.id}[n]] "
                                    "+ m0`); per component, make it a param", cm.model.source)
        if isinstance(sub, ast.Name) and cm.role(sub.id) in ("param", "data"):
            raise NonConjugateError(f"not supported yet: an MvNormal {what} that is an "
                                    f"expression of '{sub.id}'", sub.span,
                                    f"write the {what} as a param"
                                    + (" plus a known vector" if what == "mean" else
                                       " times a known number"), cm.model.source)
    return True


def _scaled_ref(cm, e: ast.Expr):
    """(param, known scale or None, divide) when ``e`` is a param, ``c * P``, ``P * c``
    or ``P / c`` with c known (a number or a vector, element by element); else None."""
    p = _ref(cm, e)
    if p:
        return p, None, False
    if isinstance(e, ast.BinOp) and e.op in "*/":
        for side, other in ((e.left, e.right), (e.right, e.left)):
            p = _ref(cm, side)
            if p and not (e.op == "/" and side is e.right) and _known(cm, other, "mean"):
                return p, other, e.op == "/"
    return None


def _mean_slot(cm, e: ast.Expr, axes: dict) -> Slot:
    """``sign * P * scale + offset``: a param, scaled by a known factor and shifted by a
    known vector - a bijective map of P, so the maximum-likelihood P is the mean's MLE
    mapped back."""
    found = _scaled_ref(cm, e)
    if found:
        p, scale, divide = found
        return Slot(p, axes.get(p, ()), scale=scale, divide=divide)
    if isinstance(e, ast.BinOp) and e.op in "+-":
        for side, other, sign in ((e.left, e.right, 1), (e.right, e.left, -1 if e.op == "-"
                                                         else 1)):
            found = _scaled_ref(cm, side)
            if found and _known(cm, other, "mean"):
                p, scale, divide = found
                if side is e.left:
                    offset = other if e.op == "+" else ast.Neg(other, other.span)
                    return Slot(p, axes.get(p, ()), offset=offset, scale=scale, divide=divide)
                return Slot(p, axes.get(p, ()), offset=other, sign=sign, scale=scale,
                            divide=divide)
    _known(cm, e, "mean")
    return Slot(None, known=e)


def _spread_slot(cm, e: ast.Expr, axes: dict, what: str) -> Slot:
    p = _ref(cm, e)
    if p:
        return Slot(p, axes.get(p, ()))
    if isinstance(e, ast.BinOp) and e.op in "*/":
        for side, other in ((e.left, e.right), (e.right, e.left)):
            p = _ref(cm, side)
            if p and not (e.op == "/" and side is e.right) and _known(cm, other, what):
                return Slot(p, axes.get(p, ()), scale=other, divide=e.op == "/")
    _known(cm, e, what)
    return Slot(None, known=e)


def _mean_prior(cm, gu: GaussianUpdate, pf: Factor):
    """A MvNormal prior on the mean param: known mean; known spread, or the emission's
    spread param scaled by a known number (the Normal-Wishart pattern)."""
    want = VECTOR_FAMILIES["MvNormal"].numerics.MESSAGES["mean"][0]
    if gu.mean.scale is not None:
        raise NonConjugateError(f"not supported yet: a prior on '{gu.mean.param}', which the "
                                "MvNormal's mean scales by a known factor", pf.span,
                                f"write the mean as '{gu.mean.param}' plus a known vector to "
                                "give it a prior", cm.model.source)
    if pf.family.name != want:
        raise NonConjugateError(f"not supported yet: a {pf.family.name} prior on mean "
                                f"'{gu.mean.param}'", pf.span, f"use a {want} prior (conjugate)",
                                cm.model.source)
    _known(cm, pf.arg["mean"], "mean")
    kw = dict(pf.keywords).get("cov", "cov")
    spread = _spread_slot(cm, pf.arg["cov"], {}, "prior covariance") \
        if _ref(cm, pf.arg["cov"]) or isinstance(pf.arg["cov"], ast.BinOp) else None
    if spread is None or spread.param is None:
        _known(cm, pf.arg["cov"], "prior covariance")
        spread = Slot(None, known=pf.arg["cov"])
    elif spread.param != gu.spread.param or kw != gu.keyword:
        raise NonConjugateError(
            f"not supported yet: a prior on mean '{gu.mean.param}' whose {kw} is not the "
            f"{gu.keyword} param of its emission", pf.span,
            f"write e.g. `{gu.mean.param}[k] ~ MvNormal(m0, {gu.keyword}="
            f"{gu.spread.param}[k] / kappa0)`", cm.model.source)
    gu.mean_prior, gu.prior_spread, gu.prior_keyword = pf, spread, kw


def _spread_prior(cm, gu: GaussianUpdate, pf: Factor):
    """A Wishart prior on a precision param, an InvWishart prior on a covariance param."""
    want = VECTOR_FAMILIES["MvNormal"].numerics.MESSAGES[gu.keyword][0]
    if pf.family.name != want:
        raise NonConjugateError(
            f"not supported yet: a {pf.family.name} prior on the {gu.keyword} param "
            f"'{gu.spread.param}' (not conjugate)", pf.span,
            f"use a {want} prior on a `{gu.keyword}=` argument", cm.model.source)
    if gu.spread.scale is not None:
        raise NonConjugateError(f"not supported yet: a prior on '{gu.spread.param}' used "
                                "scaled in its emission", pf.span, None, cm.model.source)
    for _, a in pf.args:
        _known(cm, a, f"{want} argument")
    gu.spread_prior = pf
