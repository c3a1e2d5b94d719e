"""The exponential-family knowledge of emdsl, as data, in one place.

Scalar families are declared by their log density alone: the built-in ones in
``prelude.emm`` (parsed with the same front end as user models), user ones in a model's
``family`` block.  ``scalar.decompose`` finds, with sympy, the exponential-family form

    log p(x | theta) = eta(theta) . t(x) - A(theta) + log h(x)

for whichever family arguments are unknown.  Vector and matrix families carry their
signature here and their numerics in one module each (``mvnormal``, ``wishart``,
``simplex``).  This module does not import
sympy (a cached model loads without it); the symbolic parts are computed on first use.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources

from ..frontend import ast
from ..errors import EmmSemanticError, Span
from ..frontend.parse import parse
from . import mvnormal as _mvnormal
from . import simplex as _simplex
from . import wishart as _wishart

# the support/type lattice: a value of type A may be used where B is expected
SUBTYPES = {
    "bin": {"bin", "count", "real", "cat"}, "count": {"count", "real"},
    "unit": {"unit", "pos", "real"}, "pos": {"pos", "real"}, "real": {"real"},
    "cat": {"cat"}, "simplex": {"simplex", "real", "pos"}, "spd": {"spd", "real"},
}


def is_subtype(have: str, want: str) -> bool:
    return want in SUBTYPES.get(have, {have})


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
    decl: ast.FamilyDecl | None = field(default=None, compare=False)
    span: Span | None = None
    # a location-scale family: the names of its mean and of its (co)variance argument
    location: str = ""
    spread: str = ""
    # arguments a scalar may stand for, broadcast (a symmetric Dirichlet's alpha)
    scalar_ok: tuple = ()
    # vector / matrix families: the numerics class (see vector.ExpFamily); scalar
    # families get theirs from the log density (scalar.ScalarNumerics)
    numerics: type | None = field(default=None, compare=False)

    @property
    def scalar(self) -> bool:
        return self.decl is not None

    @property
    def var(self):
        """The sympy symbol of the variable (scalar families)."""
        from .scalar import symbolic
        return symbolic(self.decl)[0]

    @property
    def symbols(self) -> tuple:
        from .scalar import symbolic
        return symbolic(self.decl)[1]

    @property
    def logpdf(self):
        """The log density as a sympy expression."""
        from .scalar import symbolic
        return symbolic(self.decl)[2]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def log_density(self, x, *args):
        """The log density with ``x`` and the parameters substituted."""
        subs = {self.var: x, **dict(zip(self.symbols, args))}
        return self.logpdf.xreplace(subs)

    def expfam(self, unknown=None):
        """The exponential-family form with the parameters named in ``unknown`` free."""
        from .scalar import decompose
        names = set(self.param_names if unknown is None else unknown)
        unknowns = {s for s, p in zip(self.symbols, self.params) if p.name in names}
        return decompose(self.logpdf, self.var, unknowns)


def scalar_family(decl: ast.FamilyDecl, validate: bool = True) -> Family:
    """A :class:`Family` from a ``family`` block: checks names and types, and (with
    ``validate``) that the density is exponential in at least one parameter (sympy)."""
    kinds_ok = ("real", "pos", "unit", "count", "bin")
    if decl.support.kind not in kinds_ok or decl.support.dims:
        raise EmmSemanticError(
            f"family {decl.name}: the support must be a scalar type, got '{decl.support.kind}'",
            decl.support.span, f"use one of {', '.join(kinds_ok)}")
    seen, params = {decl.var}, []
    for p in decl.params:
        if p.type.kind not in kinds_ok or p.type.dims:
            raise EmmSemanticError(f"family {decl.name}: parameter '{p.name}' must have a "
                                   "scalar type", p.type.span, "use real, pos, unit or count")
        if p.name in seen:
            raise EmmSemanticError(f"family {decl.name}: '{p.name}' is declared twice", p.span,
                                   "give each parameter its own name")
        seen.add(p.name)
        params.append(ParamSpec(p.name, p.type.kind, 0))
    fam = Family(decl.name, tuple(params), decl.support.kind, 0, {}, decl, decl.span)
    if validate:
        from .scalar import validate as check_exponential
        fam.logpdf  # noqa: B018 - translate now so unknown names are reported here
        check_exponential(fam)
    return fam


@functools.lru_cache(maxsize=1)
def prelude() -> dict[str, Family]:
    """The built-in scalar families, from ``prelude.emm``."""
    text = resources.files("emdsl.families").joinpath("prelude.emm").read_text(encoding="utf-8")
    model = parse(text, "<prelude>")
    fams = {d.name: scalar_family(d, validate=False) for d in model.families}
    normal = fams["Normal"]
    alt = {"prec": ("var", lambda v: 1 / v), "sd": ("var", lambda v: v ** 2)}
    fams["Normal"] = Family(normal.name, normal.params, normal.support, 0, alt, normal.decl,
                            normal.span, location="mean", spread="var")
    return fams


# Vector / matrix families: the signature here, the numerics (t, eta, A, log h, mean map,
# mode, entropy, sampler, messages) in one module each.
VECTOR_FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        Family("Categorical", (ParamSpec("p", "simplex", 1),), "cat", 0,
               numerics=_simplex.Categorical),
        Family("Dirichlet", (ParamSpec("alpha", "pos", 1),), "simplex", 1,
               scalar_ok=("alpha",), numerics=_simplex.Dirichlet),
        Family("Multinomial", (ParamSpec("n", "count", 0), ParamSpec("p", "simplex", 1)),
               "count", 1, numerics=_simplex.Multinomial),
        Family("MvNormal", (ParamSpec("mean", "real", 1), ParamSpec("cov", "spd", 2)), "real", 1,
               {"prec": ("cov", None)}, location="mean", spread="cov",
               numerics=_mvnormal.MvNormal),
        Family("Wishart", (ParamSpec("scale", "spd", 2), ParamSpec("df", "pos", 0)), "spd", 2,
               numerics=_wishart.Wishart),
        Family("InvWishart", (ParamSpec("scale", "spd", 2), ParamSpec("df", "pos", 0)), "spd", 2,
               numerics=_wishart.InvWishart),
    )
}


# A vector family whose spread is diagonal factorises into a scalar family over its elements:
# family -> (scalar family, {vector argument: scalar argument}); the keyword that chose the
# spread (cov / prec) carries over (var / prec).
FACTORISES = {"MvNormal": ("Normal", {"mean": "mean", "cov": "var"}, {"cov": "var",
                                                                     "prec": "prec"})}


def family_table(model: ast.Model | None = None, validate: bool = True) -> dict[str, Family]:
    """All families visible to ``model``: prelude, vector families, then its own blocks."""
    table = dict(prelude())
    table.update(VECTOR_FAMILIES)
    if model is not None:
        for decl in model.families:
            if decl.name in table:
                raise EmmSemanticError(f"family '{decl.name}' is already defined",
                                       decl.span, "choose another name for your family")
            table[decl.name] = scalar_family(decl, validate)
    return table
