"""Forward simulation from a checked model (``Model.sample``).

Statements are executed in source order; each plate element is drawn in turn, so
indices are evaluated exactly as the model states them (1-based in the language,
0-based in the returned arrays).  Params without a prior must be given; params with
a prior are drawn from it when not given.
"""
from __future__ import annotations

import itertools

import numpy as np

from .. import ast
from ..errors import EmmDataError

_SCALAR = {
    "Normal": lambda r, a: r.normal(a["mean"], np.sqrt(a["var"])),
    "Bernoulli": lambda r, a: r.binomial(1, a["p"]),
    "Binomial": lambda r, a: r.binomial(int(a["n"]), a["p"]),
    "Poisson": lambda r, a: r.poisson(a["rate"]),
    "Exponential": lambda r, a: r.exponential(1 / a["rate"]),
    "Gamma": lambda r, a: r.gamma(a["shape"], 1 / a["rate"]),
    "InvGamma": lambda r, a: a["scale"] / r.gamma(a["shape"], 1.0),
    "Beta": lambda r, a: r.beta(a["a"], a["b"]),
    "Geometric": lambda r, a: r.geometric(a["p"]) - 1,
    "Categorical": lambda r, a: r.choice(len(a["p"]), p=a["p"] / np.sum(a["p"])),
    "Dirichlet": lambda r, a: r.dirichlet(a["alpha"]),
    "Multinomial": lambda r, a: r.multinomial(int(a["n"]), a["p"]),
    "MvNormal": lambda r, a: r.multivariate_normal(a["mean"], a["cov"]),
}


def simulate(model, params: dict, seed, values: dict) -> dict:
    """Draw every data and latent variable; returns a dict name -> numpy array."""
    from ..data import eval_const
    cm = model.checked
    rng = np.random.default_rng(seed)
    dims = {}
    for name, d in cm.dims.items():
        if name in values:
            dims[name] = int(values[name])
        elif d.default is not None:
            dims[name] = int(eval_const(d.default, dims))
    env = dict(dims)
    for v in cm.vars.values():
        if v.role == "hyper":
            env[v.name] = np.asarray(values.get(v.name, eval_const(v.default, env)
                                                if v.default is not None else None))
    sampled = {f.target for f in cm.factors}
    for v in cm.vars.values():
        if v.role == "data" and v.name not in sampled:
            if v.name not in values:
                raise EmmDataError(f"sample needs the covariate '{v.name}'",
                                   hint=f"pass {v.name}=array")
            env[v.name] = np.asarray(values[v.name])
        if v.role == "param":
            if v.name in params:
                env[v.name] = np.asarray(params[v.name], dtype=float)
            elif v.name not in sampled:
                raise EmmDataError(f"sample needs a value for param '{v.name}'",
                                   hint="pass params={...}")
    for name in cm.dims:
        if name not in env:
            raise EmmDataError(f"sample needs dim '{name}'", hint=f"pass {name}=...")
    out = {}
    for f in cm.factors:
        v = cm.vars[f.target]
        if v.role == "param" and v.name in params:
            continue
        if v.name not in env:
            shape = tuple(int(eval_const(s, env)) for s in v.shape) + _elem_shape(v, env)
            dtype = np.int64 if v.kind in ("cat", "count", "bin") else float
            env[v.name] = np.zeros(shape, dtype=dtype)
        draw = _SCALAR.get(f.family.name) or _InverseCdf(f.family)
        ranges = [range(int(eval_const(lp.start, env)), int(eval_const(lp.stop, env)) + 1)
                  for lp in f.loops]
        for combo in itertools.product(*ranges):
            loop = {lp.var: i for lp, i in zip(f.loops, combo)}
            args = {n: _eval(e, env, loop, cm) for n, e in f.args}
            kw = dict(f.keywords)
            if kw.get("var") == "prec":
                args["var"] = 1 / args["var"]
            elif kw.get("var") == "sd":
                args["var"] = args["var"] ** 2
            if kw.get("cov") == "prec":
                args["cov"] = np.linalg.inv(args["cov"])
            if f.family.name == "Dirichlet":
                args["alpha"] = np.broadcast_to(args["alpha"], _elem_shape(v, env))
            idx = tuple(int(_eval(i, env, loop, cm)) - 1 for i in f.index)
            env[v.name][idx] = draw(rng, args)
        out[v.name] = env[v.name]
    return out


class _InverseCdf:
    """Draws from a scalar family known only by its log density (a ``family`` block):
    the density is tabulated on a grid over its support (first on a transformed scale that
    covers many orders of magnitude, then refined where the mass is) and inverted."""

    GRID = 20001

    def __init__(self, family):
        import sympy as sp
        self.family = family
        self.logpdf = sp.lambdify((family.var, *family.symbols), family.logpdf,
                                  modules=["scipy", "numpy"])
        self.tables: dict = {}

    def __call__(self, rng, args):
        key = tuple(float(args[p]) for p in self.family.param_names)
        if key not in self.tables:
            self.tables[key] = self._table(key)
        xs, cdf = self.tables[key]
        if xs.dtype.kind == "i":
            return xs[min(np.searchsorted(cdf, rng.random()), len(xs) - 1)]
        return float(np.interp(rng.random(), cdf, xs))

    def _density(self, x, key):
        with np.errstate(all="ignore"):
            lp = np.asarray(self.logpdf(x, *key), dtype=float) * np.ones_like(x)
        lp[~np.isfinite(lp)] = -np.inf
        return np.exp(lp - lp.max()) if np.isfinite(lp.max()) else np.zeros_like(x)

    def _table(self, key):
        support = self.family.support
        if support in ("count", "bin"):
            top = 1 if support == "bin" else 64
            while True:
                xs = np.arange(top + 1)
                p = self._density(xs.astype(float), key)
                if support == "bin" or p[-1] < 1e-16 * p.sum() or top > 2 ** 24:
                    break
                top *= 4
            return xs, np.cumsum(p) / p.sum()
        u = np.linspace(-40, 40, self.GRID)
        x = {"pos": np.exp(u), "unit": 1 / (1 + np.exp(-u)), "real": np.sinh(u)}[support]
        mass = self._density(x, key) * np.gradient(x)
        if mass.sum() <= 0:
            raise EmmDataError(f"cannot simulate from {self.family.name} with parameters {key}: "
                               "the density is zero everywhere", hint="check the parameters")
        keep = np.flatnonzero(mass > 1e-14 * mass.max())
        lo, hi = x[max(keep[0] - 1, 0)], x[min(keep[-1] + 1, len(x) - 1)]
        xs = np.linspace(lo, hi, self.GRID)
        p = self._density(xs, key)
        cdf = np.concatenate([[0.0], np.cumsum((p[1:] + p[:-1]) / 2)])
        return xs, cdf / cdf[-1]


def _elem_shape(v, env):
    from ..data import eval_const
    if v.kind == "cat":
        return ()
    d = tuple(int(eval_const(s, env)) for s in v.elem_dims)
    return d * 2 if v.kind == "spd" else d


def _eval(e, env, loop, cm):
    """Evaluate ``e``; loop variables and cat values are 1-based, as in the language."""
    from ..data import eval_const
    if isinstance(e, ast.Name) and e.id in loop:
        return loop[e.id]
    if isinstance(e, ast.Index):
        base = env[e.base.id]
        idx = tuple(int(_eval(i, env, loop, cm)) - 1 for i in e.indices)
        val = base[idx]
        v = cm.vars.get(e.base.id)
        return val + 1 if v is not None and v.kind == "cat" and np.ndim(val) == 0 else val
    if isinstance(e, ast.BinOp):
        a, b = _eval(e.left, env, loop, cm), _eval(e.right, env, loop, cm)
        if e.op == "@":
            return np.matmul(a, b)
        return {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide,
                "^": np.power}[e.op](a, b)
    if isinstance(e, ast.Neg):
        return -_eval(e.operand, env, loop, cm)
    if isinstance(e, ast.Call):
        sub = [_eval(a, env, loop, cm) for a in e.args]
        consts = {f"_a{i}": s for i, s in enumerate(sub)}
        call = ast.Call(e.func, tuple(ast.Name(k, e.span) for k in consts), (), e.span)
        return eval_const(call, {**env, **consts})
    return eval_const(e, env)
