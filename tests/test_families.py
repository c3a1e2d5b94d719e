"""Property tests of the exponential-family forms that :mod:`emdsl.families` derives.

Every prelude family is checked against an independent reference, ``scipy.stats``
(in the spirit of NumPyro's ``_DIST_MAP``):

* the log density and its split ``eta . t(x) - A + log h(x)`` match scipy's logpdf/logpmf;
* the mean parameters ``grad_eta A`` equal ``E[t(x)]`` (chain rule, and for one-parameter
  families also a finite difference of ``A(eta)``);
* ``decompose`` on user ``family`` blocks, including the non-exponential error path.
"""
from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import pytest
import scipy.stats as st
import sympy as sp
from hypothesis import given, settings, strategies as hst

from emdsl.errors import NonConjugateError
from emdsl.families import NotExponentialFamily, prelude, scalar_family
from emdsl.frontend.parse import parse

MODULES = ["scipy", "numpy"]
TOL = dict(rtol=1e-9, atol=1e-9)

# name -> (scipy.stats frozen distribution from the family's parameters,
#          sampler of valid parameters from a numpy Generator)
DIST_MAP = {
    "Normal": (lambda m, v: st.norm(loc=m, scale=np.sqrt(v)),
               lambda r: (r.uniform(-3, 3), r.uniform(0.3, 4))),
    "Bernoulli": (lambda p: st.bernoulli(p), lambda r: (r.uniform(0.05, 0.95),)),
    "Binomial": (lambda n, p: st.binom(n, p),
                 lambda r: (int(r.integers(1, 21)), r.uniform(0.05, 0.95))),
    "Poisson": (lambda lam: st.poisson(lam), lambda r: (r.uniform(0.2, 10),)),
    "Exponential": (lambda lam: st.expon(scale=1 / lam), lambda r: (r.uniform(0.2, 5),)),
    "Gamma": (lambda a, b: st.gamma(a, scale=1 / b),
              lambda r: (r.uniform(0.5, 6), r.uniform(0.2, 5))),
    "InvGamma": (lambda a, b: st.invgamma(a, scale=b),
                 lambda r: (r.uniform(1.5, 6), r.uniform(0.5, 5))),
    "Beta": (lambda a, b: st.beta(a, b), lambda r: (r.uniform(0.5, 5), r.uniform(0.5, 5))),
    "Geometric": (lambda p: st.geom(p, loc=-1), lambda r: (r.uniform(0.1, 0.9),)),
}
# parameters that are *not* unknown in the exponential-family form (n is a count)
UNKNOWN = {"Binomial": ["p"]}
ONE_UNKNOWN = ["Poisson", "Exponential", "Bernoulli", "Geometric", "Binomial"]


def _cases(names, draws=3, seed=20240601):
    """``pytest.param(name, theta)`` for ``draws`` seeded parameter draws per family."""
    rng = np.random.default_rng(seed)
    return [pytest.param(name, DIST_MAP[name][1](rng), id=f"{name}-{i}")
            for name in names for i in range(draws)]


CASES = _cases(DIST_MAP)


@functools.lru_cache(maxsize=None)
def form(name):
    """The family and its (cached) exponential-family form."""
    fam = prelude()[name]
    return fam, fam.expfam(UNKNOWN.get(name))


def numeric(expr, fam, theta):
    """``expr`` as a numpy function of ``x`` with the parameters fixed to ``theta``."""
    f = sp.lambdify((fam.var, *fam.symbols), expr, modules=MODULES)
    return lambda x: np.asarray(f(x, *theta), dtype=float) + 0 * np.asarray(x, dtype=float)


def support_points(name, theta, rng, k=6):
    """A few points of the support: scipy draws, plus 0 for the discrete families."""
    dist = DIST_MAP[name][0](*theta)
    xs = dist.rvs(size=k, random_state=rng)
    if isinstance(dist.dist, st.rv_discrete):
        xs = np.unique(np.append(xs, 0))
    return np.asarray(xs, dtype=float)


def reference_logpdf(name, theta, xs):
    dist = DIST_MAP[name][0](*theta)
    return dist.logpmf(xs) if isinstance(dist.dist, st.rv_discrete) else dist.logpdf(xs)


def mean_stats(name, theta):
    """E[t(x)] for every sufficient statistic, from scipy alone (sum or quadrature)."""
    fam, ef = form(name)
    dist = DIST_MAP[name][0](*theta)
    kw = {} if isinstance(dist.dist, st.rv_discrete) else dict(epsabs=1e-12, epsrel=1e-11)
    return np.array([dist.expect(numeric(t, fam, theta), **kw) for t in ef.t])


# ----------------------------------------------------------------------------- 1. densities
@pytest.mark.parametrize("name, theta", CASES)
def test_logpdf_and_expfam_split_match_scipy(name, theta):
    """``logpdf`` and ``eta . t - A + log h`` both equal scipy's log density."""
    fam, ef = form(name)
    xs = support_points(name, theta, np.random.default_rng(1))
    ref = reference_logpdf(name, theta, xs)
    split = sum(e * t for e, t in zip(ef.eta, ef.t)) - ef.A + ef.logh
    np.testing.assert_allclose(numeric(fam.logpdf, fam, theta)(xs), ref, **TOL)
    np.testing.assert_allclose(numeric(split, fam, theta)(xs), ref, **TOL)
    # and via sympy's own evaluation of Family.log_density at one point
    x0 = xs[len(xs) // 2]
    x0 = sp.Integer(int(x0)) if float(x0).is_integer() else sp.Float(x0, 30)
    val = float(fam.log_density(x0, *map(sp.Float, theta)).evalf(30))
    np.testing.assert_allclose(val, reference_logpdf(name, theta, float(x0)), **TOL)


# ----------------------------------------------------------------------------- 2. mean params
@pytest.mark.parametrize("name, theta", CASES)
def test_grad_log_normaliser_is_mean_of_stats(name, theta):
    """grad_eta A = J^-T grad_theta A equals E[t(x)] (J[s, i] = d eta_s / d theta_i)."""
    fam, ef = form(name)
    names = UNKNOWN.get(name, fam.param_names)
    u = [s for s, p in zip(fam.symbols, fam.param_names) if p in names]
    J = sp.Matrix(ef.eta).jacobian(u)
    assert J.shape == (len(u), len(u)), "expected a minimal (square) parametrisation"
    grad_theta = sp.Matrix([ef.A]).jacobian(u).T
    at = dict(zip(fam.symbols, map(sp.Float, theta)))
    Jn = np.array(J.subs(at).evalf(), dtype=float)
    gn = np.array(grad_theta.subs(at).evalf(), dtype=float).ravel()
    grad_eta = np.linalg.solve(Jn.T, gn)
    np.testing.assert_allclose(grad_eta, mean_stats(name, theta), rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- 3. finite diff.
@pytest.mark.parametrize("name, theta", _cases(ONE_UNKNOWN, seed=7))
def test_finite_difference_of_A_in_eta(name, theta):
    """Invert eta(theta) symbolically; (A(eta + h) - A(eta - h)) / 2h equals E[t(x)]."""
    fam, ef = form(name)
    (eta,), (unk,) = ef.eta, [s for s in fam.symbols if ef.eta[0].has(s)]
    e = sp.Symbol("e", real=True)
    sols = sp.solve(sp.Eq(e, eta), unk)
    assert len(sols) == 1, sols
    known = {s: v for s, v in zip(fam.symbols, theta) if s != unk}
    A_of_eta = sp.lambdify(e, ef.A.subs(unk, sols[0]).subs(known), modules=MODULES)
    eta0 = float(eta.subs(dict(zip(fam.symbols, theta))))
    h = 1e-5
    fd = (A_of_eta(eta0 + h) - A_of_eta(eta0 - h)) / (2 * h)
    np.testing.assert_allclose(fd, mean_stats(name, theta)[0], rtol=1e-6)


# ----------------------------------------------------------------------------- 4. user families
def _user_family(params, support, body):
    src = f"model T\nfamily F({params}) on {support} {{\n    logpdf(x) = {body}\n}}\n"
    return parse(src, "t.emm").families[0]


def test_user_rayleigh_decomposes():
    fam = scalar_family(_user_family("s2 : pos", "pos", "log(x) - log(s2) - x^2 / (2 * s2)"))
    ef = fam.expfam()
    x, (s2,) = fam.var, fam.symbols
    assert len(ef.t) == len(ef.eta) == 1
    assert sp.simplify(ef.t[0] - x**2) == 0
    assert sp.simplify(ef.eta[0] + 1 / (2 * s2)) == 0
    assert sp.simplify(ef.A - sp.log(s2)) == 0
    assert sp.simplify(ef.logh - sp.log(x)) == 0


def test_non_exponential_user_family_is_rejected():
    """A Cauchy-like density: the error names the (expanded) offending term."""
    decl = _user_family("m : real, s : pos", "real", "-log(1 + (x - m)^2 / s)")
    with pytest.raises(NonConjugateError) as info:
        scalar_family(decl)
    msg = info.value.msg
    assert "family F" in msg and "mixes x" in msg
    term = re.search(r"the term (.*) mixes x", msg).group(1)
    x, m, s = sp.symbols("x m s")
    assert sp.simplify(sp.sympify(term) + sp.log(1 + (x - m) ** 2 / s)) == 0


def test_binomial_is_not_exponential_in_n():
    fam = prelude()["Binomial"]
    with pytest.raises(NotExponentialFamily):
        fam.expfam(["n"])


@pytest.mark.parametrize("name, unknown", [
    pytest.param(n, sub, id=f"{n}-{'+'.join(sub) or 'none'}")
    for n, f in prelude().items()
    for k in range(len(f.params) + 1) for sub in itertools.combinations(f.param_names, k)
    if not (n == "Binomial" and "n" in sub)])
def test_every_unknown_subset_reproduces_logpdf(name, unknown):
    """For each subset of unknown parameters the split sums back to the log density,
    and eta / A depend on no x while t depends on no unknown."""
    fam = prelude()[name]
    ef = fam.expfam(list(unknown))
    us = {s for s, p in zip(fam.symbols, fam.param_names) if p in unknown}
    back = sum(e * t for e, t in zip(ef.eta, ef.t)) - ef.A + ef.logh
    assert sp.simplify(sp.expand_log(back - fam.logpdf, force=True)) == 0
    assert not any(fam.var in e.free_symbols for e in (*ef.eta, ef.A))
    assert not any(t.free_symbols & us for t in (*ef.t, ef.logh))


# ----------------------------------------------------------------------------- 5. hypothesis
pos = hst.floats(0.05, 20.0)
HYP = {
    "Normal": hst.tuples(hst.floats(-10, 10), pos, hst.floats(-15, 15)),
    "Gamma": hst.tuples(pos, pos, hst.floats(0.01, 40.0)),
    "Beta": hst.tuples(pos, pos, hst.floats(0.01, 0.99)),
}


@pytest.mark.parametrize("name", list(HYP))
def test_decomposition_reproduces_logpdf_hypothesis(name):
    """Random valid (params, x): eta . t - A + log h == logpdf == scipy, numerically."""
    fam, ef = form(name)
    split = sum(e * t for e, t in zip(ef.eta, ef.t)) - ef.A + ef.logh
    f_split = sp.lambdify((fam.var, *fam.symbols), split, modules=MODULES)
    f_log = sp.lambdify((fam.var, *fam.symbols), fam.logpdf, modules=MODULES)

    @settings(max_examples=25, deadline=None, database=None)
    @given(HYP[name])
    def check(draw):
        *theta, x = draw
        ref = reference_logpdf(name, theta, x)
        np.testing.assert_allclose(f_log(x, *theta), ref, **TOL)
        np.testing.assert_allclose(f_split(x, *theta), ref, **TOL)

    check()
