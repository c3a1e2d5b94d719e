"""The exponential-family knowledge of emdsl, as data, in one place.

Scalar families are declared by their log density alone: the built-in ones in
``prelude.emm`` (parsed with the same front end as user models), user ones in a model's
``family`` block.  :func:`decompose` finds, with sympy, the exponential-family form

    log p(x | theta) = eta(theta) . t(x) - A(theta) + log h(x)

for whichever family arguments are unknown.  Vector and matrix families carry the same
information in Python (:data:`VECTOR_FAMILIES`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

import sympy as sp

from . import ast
from .errors import EmmSemanticError, NonConjugateError, Span
from .parse import parse

# type kind -> sympy assumptions for a symbol of that kind
ASSUMPTIONS = {
    "real": dict(real=True), "pos": dict(positive=True), "unit": dict(positive=True),
    # no integer=True: sympy would turn loggamma(n + 1) into log(gamma(n + 1))
    "count": dict(nonnegative=True), "bin": dict(nonnegative=True),
    "cat": dict(positive=True), "simplex": dict(positive=True),
    "spd": dict(real=True),
}

# the support/type lattice: a value of type A may be used where B is expected
SUBTYPES = {
    "bin": {"bin", "count", "real", "cat"}, "count": {"count", "real"},
    "unit": {"unit", "pos", "real"}, "pos": {"pos", "real"}, "real": {"real"},
    "cat": {"cat"}, "simplex": {"simplex", "real", "pos"}, "spd": {"spd", "real"},
}

FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "lgamma": sp.loggamma,
    "digamma": sp.digamma,
}


def is_subtype(have: str, want: str) -> bool:
    return want in SUBTYPES.get(have, {have})


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


def decompose(logp: sp.Expr, x: sp.Symbol, unknowns: set) -> ExpFamForm:
    """Split ``logp`` into eta(unknowns) . t(x) - A(unknowns) + log h(x).

    Assumes every term of the expanded log density that involves both ``x`` and an
    unknown is a product of a factor in ``x`` (and knowns) and a factor in the unknowns;
    raises :class:`NotExponentialFamily` naming the first term that is not.
    """
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
        if x not in syms:
            neg_a += term
            continue
        xpart, upart = sp.Integer(1), sp.Integer(1)
        for f in sp.Mul.make_args(term):
            fs = f.free_symbols
            if x in fs and fs & unknowns:
                raise NotExponentialFamily(term)
            if x in fs:
                xpart *= f
            else:
                upart *= f
        stats[xpart] = stats.get(xpart, sp.Integer(0)) + upart
    keys = sorted(stats, key=sp.default_sort_key)
    return ExpFamForm(tuple(_loggamma(k) for k in keys),
                      tuple(_loggamma(sp.simplify(stats[k])) for k in keys),
                      _loggamma(sp.simplify(-neg_a)), _loggamma(logh))


def _loggamma(e: sp.Expr) -> sp.Expr:
    """Undo sympy's rewriting of loggamma(z) as log(gamma(z)) (which overflows)."""
    return e.replace(lambda a: isinstance(a, sp.log) and isinstance(a.args[0], sp.gamma),
                     lambda a: sp.loggamma(a.args[0].args[0]))


# ----------------------------------------------------------------------------- families
@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: str       # type kind of the argument
    rank: int       # 0 scalar, 1 vector, 2 matrix


@dataclass(frozen=True)
class Family:
    """One family: its signature, and for scalar families its symbolic log density."""
    name: str
    params: tuple[ParamSpec, ...]
    support: str
    support_rank: int
    # keyword -> (canonical parameter, sympy map from the keyword's value to it)
    alternatives: dict = field(default_factory=dict, compare=False)
    var: sp.Symbol | None = None
    symbols: tuple[sp.Symbol, ...] = ()
    logpdf: sp.Expr | None = None
    span: Span | None = None

    @property
    def scalar(self) -> bool:
        return self.logpdf is not None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def log_density(self, x, *args) -> sp.Expr:
        """The log density with ``x`` and the parameters substituted."""
        subs = {self.var: x, **dict(zip(self.symbols, args))}
        return self.logpdf.xreplace(subs)

    def expfam(self, unknown=None) -> ExpFamForm:
        """The exponential-family form with the parameters named in ``unknown`` free."""
        names = set(self.param_names if unknown is None else unknown)
        unknowns = {s for s, p in zip(self.symbols, self.params) if p.name in names}
        return decompose(self.logpdf, self.var, unknowns)


def scalar_family(decl: ast.FamilyDecl) -> Family:
    """A :class:`Family` from a ``family`` block (checked: names, types, known functions)."""
    kinds_ok = ("real", "pos", "unit", "count", "bin")
    if decl.support.kind not in kinds_ok or decl.support.dims:
        raise EmmSemanticError(
            f"family {decl.name}: the support must be a scalar type, got '{decl.support.kind}'",
            decl.support.span, f"use one of {', '.join(kinds_ok)}")
    env, params = {}, []
    for p in decl.params:
        if p.type.kind not in ("real", "pos", "unit", "count", "bin") or p.type.dims:
            raise EmmSemanticError(f"family {decl.name}: parameter '{p.name}' must have a "
                                   "scalar type", p.type.span, "use real, pos, unit or count")
        if p.name in env or p.name == decl.var:
            raise EmmSemanticError(f"family {decl.name}: '{p.name}' is declared twice", p.span,
                                   "give each parameter its own name")
        env[p.name] = sp.Symbol(p.name, **ASSUMPTIONS[p.type.kind])
        params.append(ParamSpec(p.name, p.type.kind, 0))
    x = sp.Symbol(decl.var, **ASSUMPTIONS[decl.support.kind])
    env[decl.var] = x
    logpdf = to_sympy(decl.logpdf, env)
    fam = Family(decl.name, tuple(params), decl.support.kind, 0, {}, x,
                 tuple(env[p.name] for p in decl.params), logpdf, decl.span)
    # A parameter in which the density is not exponential (Binomial's n) must be known
    # wherever the family is used; at least one parameter must be exponential.
    failures = []
    for p in fam.params:
        try:
            fam.expfam([p.name])
        except NotExponentialFamily as exc:
            failures.append(exc.term)
    if len(failures) == len(fam.params):
        raise NonConjugateError(
            f"family {decl.name} is not an exponential family in its parameters: the "
            f"term {failures[0]} mixes x and a parameter", decl.logpdf.span,
            "write the log density as a sum of (function of x) * (function of params)")
    return fam


@functools.lru_cache(maxsize=1)
def prelude() -> dict[str, Family]:
    """The built-in scalar families, from ``prelude.emm``."""
    text = resources.files("emdsl").joinpath("prelude.emm").read_text(encoding="utf-8")
    model = parse(text, "<prelude>")
    fams = {d.name: scalar_family(d) for d in model.families}
    normal = fams["Normal"]
    var = normal.symbols[1]
    alt = {"prec": ("var", lambda v: 1 / v), "sd": ("var", lambda v: v ** 2)}
    fams["Normal"] = Family(normal.name, normal.params, normal.support, 0, alt, normal.var,
                            normal.symbols, normal.logpdf, normal.span)
    del var
    return fams


# Vector / matrix families: signature here; their derivations live in derive_vector.py.
VECTOR_FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("Categorical", (ParamSpec("p", "simplex", 1),), "cat", 0),
        Family("Dirichlet", (ParamSpec("alpha", "pos", 1),), "simplex", 1),
        Family("Multinomial", (ParamSpec("n", "count", 0), ParamSpec("p", "simplex", 1)),
               "count", 1),
        Family("MvNormal", (ParamSpec("mean", "real", 1), ParamSpec("cov", "spd", 2)), "real", 1,
               {"prec": ("cov", None)}),
        Family("Wishart", (ParamSpec("scale", "spd", 2), ParamSpec("df", "pos", 0)), "spd", 2),
        Family("InvWishart", (ParamSpec("scale", "spd", 2), ParamSpec("df", "pos", 0)), "spd", 2),
    )
}


def family_table(model: ast.Model | None = None) -> dict[str, Family]:
    """All families visible to ``model``: prelude, vector families, then its own blocks."""
    table = dict(prelude())
    table.update(VECTOR_FAMILIES)
    if model is not None:
        for decl in model.families:
            if decl.name in table:
                raise EmmSemanticError(f"family '{decl.name}' is already defined",
                                       decl.span, "choose another name for your family")
            table[decl.name] = scalar_family(decl)
    return table
