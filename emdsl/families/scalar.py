"""The symbolic half of the family table (sympy): expressions, the exponential-family
decomposition of a log density, and the symbolic log density of a scalar family.

Kept apart from ``table.py`` so that loading a cached model never imports sympy.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp

from ..frontend import ast
from ..errors import EmmSemanticError, NonConjugateError

# type kind -> sympy assumptions for a symbol of that kind
ASSUMPTIONS = {
    "real": dict(real=True), "pos": dict(positive=True), "unit": dict(positive=True),
    # no integer=True: sympy would turn loggamma(n + 1) into log(gamma(n + 1))
    "count": dict(nonnegative=True), "bin": dict(nonnegative=True),
    "cat": dict(positive=True), "simplex": dict(positive=True),
    "spd": dict(real=True),
}

FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "lgamma": sp.loggamma,
    "digamma": sp.digamma,
}


def to_sympy(expr: ast.Expr, env, on_index=None) -> sp.Expr:
    """Translate a scalar AST expression to sympy.

    ``env`` maps names to sympy expressions; ``on_index(index_node)`` translates
    indexed references (it is required when the expression indexes anything).
    """
    rec = functools.partial(to_sympy, env=env, on_index=on_index)
    if isinstance(expr, ast.Num):
        return sp.Integer(int(expr.value)) if expr.is_int else sp.Float(expr.value)
    if isinstance(expr, ast.Name):
        if expr.id in env:
            return env[expr.id]
        if expr.id == "pi":
            return sp.pi
        raise EmmSemanticError(f"undeclared name '{expr.id}'", expr.span,
                               "declare it or fix the spelling")
    if isinstance(expr, ast.Neg):
        return -rec(expr.operand)
    if isinstance(expr, ast.BinOp):
        a, b = rec(expr.left), rec(expr.right)
        ops = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
               "/": lambda: a / b, "^": lambda: a ** b}
        if expr.op not in ops:
            raise NonConjugateError(f"'{expr.op}' on scalars is not supported here",
                                    expr.span, "use '*' for scalar products")
        return ops[expr.op]()
    if isinstance(expr, ast.Call) and expr.func in FUNCTIONS and len(expr.args) == 1:
        return FUNCTIONS[expr.func](rec(expr.args[0]))
    if isinstance(expr, ast.Index) and on_index is not None:
        return on_index(expr)
    raise NonConjugateError(f"'{ast.show(expr)}' is not supported in a scalar expression yet",
                            expr.span, "scalar arguments may use + - * / ^, exp, log, sqrt, "
                            "lgamma, digamma, numbers, dims, hypers and params")


# ----------------------------------------------------------------------------- exp. family form
@dataclass(frozen=True)
class ExpFamForm:
    """log p = sum_s eta[s] * t[s] - A + logh; all sympy expressions."""
    t: tuple[sp.Expr, ...]
    eta: tuple[sp.Expr, ...]
    A: sp.Expr
    logh: sp.Expr


class NotExponentialFamily(Exception):
    def __init__(self, term):
        super().__init__(str(term))
        self.term = term


def decompose(logp: sp.Expr, x: sp.Symbol, unknowns: set, simplify: bool = True,
              along=frozenset()) -> ExpFamForm:
    """Split ``logp`` into eta(unknowns) . t(x) - A(unknowns) + log h(x).

    Assumes every term of the expanded log density that involves both ``x`` and an
    unknown is a product of a factor in ``x`` (and knowns) and a factor in the unknowns;
    raises :class:`NotExponentialFamily` naming the first term that is not.  With
    ``simplify`` False the coefficients are left expanded (for callers that only collect
    them: most of the cost of a variational derivation is in ``tidy``).  ``along``: known
    symbols that vary with x (a covariate of the same item, an eight-schools variance):
    factors in them go with x into the statistics, so t may hold them without x.
    """
    xs = {x} | set(along)
    expanded = sp.expand(sp.expand_log(logp, force=True))
    stats: dict[sp.Expr, sp.Expr] = {}
    neg_a = sp.Integer(0)
    logh = sp.Integer(0)
    for term in sp.Add.make_args(expanded):
        syms = term.free_symbols
        has_u = bool(syms & unknowns)
        if not has_u:
            logh += term
            continue
        if not syms & xs:
            neg_a += term
            continue
        xpart, upart = sp.Integer(1), sp.Integer(1)
        for f in sp.Mul.make_args(term):
            fs = f.free_symbols
            if fs & xs and fs & unknowns:
                raise NotExponentialFamily(term)
            if fs & xs:
                xpart *= f
            else:
                upart *= f
        stats[xpart] = stats.get(xpart, sp.Integer(0)) + upart
    keys = sorted(stats, key=sp.default_sort_key)
    neat = tidy if simplify else (lambda e: e)
    return ExpFamForm(tuple(_loggamma(k) for k in keys),
                      tuple(_loggamma(neat(stats[k])) for k in keys),
                      _loggamma(neat(-neg_a)), _loggamma(logh))


def tidy(e) -> sp.Expr:
    """A shorter equal form of ``e``. Where every function (log, exp, gamma, digamma, ...)
    is applied to a symbol or a number, the fewest operations among e, factor_terms,
    cancel, both, and powsimp: what sympy's ``simplify`` gives for these log densities, at
    a fraction of its cost (its first call also imports sympy.physics.units, ~0.5 s of a
    cold compile). Otherwise sympy's ``simplify``, whose passes see through identities of
    composite arguments that matter numerically: log(1 - 1/(1 + exp(-a))) + log(1 + exp(-a))
    is a, gamma(a + 1)/gamma(a) is a (the first form overflows for large a)."""
    e = sp.sympify(e)
    if any(not (arg.is_Symbol or arg.is_number) for f in e.atoms(sp.Function)
           for arg in f.args):
        return sp.simplify(e)
    candidates = [e]
    for step in (sp.factor_terms, sp.cancel, lambda a: sp.factor_terms(sp.cancel(a)),
                 sp.powsimp):
        try:
            candidates.append(step(e))
        except (sp.PolynomialError, TypeError, ValueError):  # pragma: no cover - defensive
            continue
    return min(candidates, key=lambda c: (sp.count_ops(c), len(str(c))))


def _loggamma(e: sp.Expr) -> sp.Expr:
    """Undo sympy's rewriting of loggamma(z) as log(gamma(z)) (which overflows)."""
    return e.replace(lambda a: isinstance(a, sp.log) and isinstance(a.args[0], sp.gamma),
                     lambda a: sp.loggamma(a.args[0].args[0]))




@functools.lru_cache(maxsize=None)
def symbolic(decl: ast.FamilyDecl):
    """(x, parameter symbols, log density) of a scalar ``family`` block."""
    env = {p.name: sp.Symbol(p.name, **ASSUMPTIONS[p.type.kind]) for p in decl.params}
    x = sp.Symbol(decl.var, **ASSUMPTIONS[decl.support.kind])
    env[decl.var] = x
    return x, tuple(env[p.name] for p in decl.params), to_sympy(decl.logpdf, env)


def validate(fam) -> None:
    """A family must be exponential in at least one parameter; a parameter in which it is
    not (a Binomial's n) must be known wherever the family is used.  Its log density must
    depend on its variable and on every parameter (else data or params would be ignored)."""
    used = fam.logpdf.free_symbols
    if fam.var not in used:
        raise EmmSemanticError(f"family {fam.name}: the log density does not depend on its "
                               f"variable '{fam.decl.var}'", fam.decl.logpdf.span,
                               f"write logpdf({fam.decl.var}) in terms of {fam.decl.var}")
    for p, sym in zip(fam.params, fam.symbols):
        if sym not in used:
            raise EmmSemanticError(f"family {fam.name}: the log density ignores its parameter "
                                   f"'{p.name}'", fam.decl.logpdf.span,
                                   f"use '{p.name}' in the log density or remove it")
    failures = []
    for p in fam.params:
        try:
            fam.expfam([p.name])
        except NotExponentialFamily as exc:
            failures.append(exc.term)
    if len(failures) == len(fam.params):
        raise NonConjugateError(
            f"family {fam.name} is not an exponential family in its parameters: the "
            f"term {failures[0]} mixes x and a parameter", fam.decl.logpdf.span,
            "write the log density as a sum of (function of x) * (function of params)")
