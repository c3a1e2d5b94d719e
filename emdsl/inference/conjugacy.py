"""Stage 4: the exact-discrete structure of a planned model -> :class:`ConjugacyReport`.

For the plan's ``exact discrete`` latent: one ``latent z[N] : cat[K]`` drawn from a
family on ``cat`` (a Categorical of a simplex param, possibly selected by a covariate),
and its emissions, read from the factor graph's references: each param or indexed hyper
indexed by the latent (``mu[z[n]]``), by inner loop variables, or not at all; an emission
in a plate of its own may select the latent through a category datum (``phi[z[doc[t]]]``);
a diagonal MvNormal is factorised into scalar Normals.  Anything else is rejected with a
located "not supported yet" :class:`~emdsl.errors.NonConjugateError`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..frontend import ast
from ..frontend.check import CheckedModel, Factor, Loop, Var
from ..errors import InternalError, NonConjugateError
from ..graph import Axis as Axis_
from ..graph import FactorGraph, factor_references
from .factorise import factorise


@dataclass(frozen=True)
class Axis:
    """How one index of a param reference is chosen: by the latent (``kind='latent'``),
    by a loop variable (``'loop'``, ``name`` = the variable) or by a covariate
    (``'covariate'``, ``name`` = a cat datum indexed by the plate variable)."""
    kind: str
    name: str = ""


@dataclass(frozen=True)
class ParamRef:
    param: str | None
    axes: tuple[Axis, ...]
    known: object = None   # a known expression instead of a param (the latent's weights)

    @property
    def uses_latent(self) -> bool:
        return any(a.kind == "latent" for a in self.axes)


@dataclass(frozen=True)
class Emission:
    """A modelled datum inside the latent plate: ``x[n, d...] ~ F(args)``."""
    factor: Factor
    number: int                 # position in CheckedModel.factors
    kind: str                   # 'scalar' | 'categorical' | 'mvnormal'
    refs: tuple[ParamRef, ...]
    inner: tuple[Loop, ...]     # loops inside the latent plate, outermost first
    knowns: tuple[ParamRef, ...] = ()  # indexed hypers (known arrays on the param grid)
    factorised: bool = False    # a diagonal vector family written as scalar ones
    via: str = ""               # items in their own plate select the latent by this datum

    @property
    def uses_latent(self) -> bool:
        return any(r.uses_latent for r in self.refs)

    def ref(self, param: str) -> ParamRef | None:
        return next((r for r in self.refs if r.param == param), None)


@dataclass(frozen=True)
class ConjugacyReport:
    algorithm: str              # 'EM' or 'MAP-EM'
    latent: Var
    plate: Loop
    assign: Factor              # z[n] ~ Categorical(P)
    assign_ref: ParamRef
    emissions: tuple[Emission, ...]
    priors: dict                # param name -> Factor
    params: dict                # param name -> Var

    def emissions_of(self, param: str) -> list[Emission]:
        return [e for e in self.emissions if e.ref(param) is not None]


def analyse(fg: FactorGraph) -> ConjugacyReport:
    cm = fg.model
    latents = [v for v in cm.vars.values() if v.role == "latent"]
    params = {v.name: v for v in cm.vars.values() if v.role == "param"}
    if not latents:
        raise _unsupported(cm, cm.model.span, "models without a latent variable",
                           "declare the unobserved quantity as `latent`")
    for v in latents:
        if v.kind != "cat":
            what = ("variational inference (CAVI) over non-discrete latents" if not params
                    else "continuous latents (a linear-Gaussian E-step)"
                    if v.kind == "real" else "variational EM over non-discrete latents")
            raise _unsupported(cm, v.span, f"latent '{v.name}' is {v.kind}-valued; {what} "
                               "lands in later work", "only `cat[K]` latents are supported")
    if len(latents) > 1:
        raise _unsupported(cm, latents[1].span, "more than one discrete latent",
                           "use a single `latent z[N] : cat[K]`")
    z = latents[0]
    assigns = [cm.factors[i] for i in fg.sampling_factors(z.name)]
    chain = len(assigns) > 1 or any(
        z.name in ast.names(e) for f in assigns for _, e in f.args)
    if chain:
        raise _unsupported(cm, assigns[-1].span, f"latent '{z.name}' is a chain of discrete "
                           "states (forward-backward E-step)", "a mixture draws each "
                           f"{z.name}[n] independently given the params")
    assign = assigns[0]
    if len(z.shape) != 1 or len(assign.loops) != 1:
        raise _unsupported(cm, assign.span, "a discrete latent must have exactly one plate",
                           f"declare `latent {z.name}[N] : cat[K]` and sample it in one plate")
    if assign.family.support != "cat":
        raise _unsupported(cm, assign.span, f"latent '{z.name}' drawn from "
                           f"{assign.family.name}", "draw it from Categorical(weights)")
    plate = assign.loops[0]
    if not params:
        raise _unsupported(cm, z.span, "a model without params (CAVI)", "declare params")
    prefs = [r for r in fg.refs(fg.sampling_factors(z.name)[0])[1:]
             if r.arg == "p" and cm.role(r.var) == "param"]
    assign_ref = _param_ref(cm, prefs[0], z, plate, ()) if prefs else None
    p_arg = assign.arg["p"]
    known = not any(isinstance(e, ast.Name) and cm.role(e.id) in ("param", "latent", "data")
                    for e in ast.walk_expr(p_arg))
    if assign_ref is None and known:   # known weights (a hyper): nothing to update
        assign_ref = ParamRef(None, (), known=p_arg)
    elif assign_ref is None or prefs[0].text != ast.show(p_arg):
        raise _unsupported(cm, assign.span, "mixture weights that are an expression of a "
                           "param", "declare `param weights : simplex[K]` and draw the latent "
                           "from Categorical(weights), or give known weights as a hyper")
    priors = {}
    for name in params:
        for i in fg.sampling_factors(name):
            priors[name] = _prior(cm, cm.factors[i])
    data = [v.name for v in cm.vars.values() if v.role == "data"]
    emissions = [_emission(fg, i, cm.factors[i], z, plate)
                 for i in sorted(i for d in data for i in fg.sampling_factors(d))]
    blanket = set(fg.factors_of(z.name))  # the factors the E-step of z reads
    for e in emissions:
        if e.uses_latent != (e.number in blanket):  # pragma: no cover - a compiler bug
            raise InternalError(f"factor graph and param axes disagree on line {e.factor.span.line}")
    algorithm = "MAP-EM" if priors else "EM"
    return ConjugacyReport(algorithm, z, plate, assign, assign_ref, tuple(emissions), priors,
                           params)


def _emission(fg: FactorGraph, number: int, f: Factor, z: Var, plate: Loop) -> Emission:
    cm = fg.model
    scalar = factorise(cm, f)
    if scalar is not None:  # a diagonal MvNormal: D scalar Normals over an element loop
        f = scalar
    factor_refs = fg.refs(number) if scalar is None else factor_references(cm, f)
    via = ""
    if not f.loops or f.loops[0].var != plate.var:
        via = _group_selector(cm, f, factor_refs, z)
        if not via and any(ax.kind == "gate" and ax.name == z.name and ax.inner and
                           ax.inner[0].kind == "group" for r in factor_refs[1:]
                           for ax in r.axes):   # z[doc[t]] written, not derived here
            raise _unsupported(cm, f.span, f"a {f.family.name} datum in an inner plate "
                               f"selecting latent '{z.name}' per group of items", "a latent "
                               "per group selects data of one plate, the group's items: "
                               f"`for t in 1:T {{ y[t] ~ Poisson(rate[{z.name}[doc[t]]]) }}`")
        if not via:
            raise _unsupported(cm, f.span, f"datum '{f.target}' outside the plate of latent "
                               f"'{z.name}'", f"sample it inside `for {plate.var} in ...`, or "
                               f"select the latent by a category datum, e.g. "
                               f"`{z.name}[doc[t]]`")
    inner = f.loops[1:]
    want = tuple(lp.var for lp in f.loops)
    target = factor_refs[0]
    got = tuple(a.name if a.kind == "loop" else None for a in target.axes)
    if got != want:
        raise _unsupported(cm, f.span, f"'{f.target}' must be indexed by its loops in order "
                           f"[{', '.join(want)}]", "write e.g. `x[n, d] ~ ...`")
    name = f.family.name
    kind = "scalar" if f.family.scalar else (f.family.numerics.KIND or None)
    if kind is None:
        raise _unsupported(cm, f.span, f"emissions from {name}", "use a scalar family, "
                           "Categorical or MvNormal")
    refs, knowns = [], []
    for gref in factor_refs[1:]:
        role = cm.role(gref.var)
        if role in ("data", "latent") and gref.arg != "index":
            raise _unsupported(cm, gref.span, f"'{gref.var}' inside the arguments of "
                               f"{name} (regression-type emissions)",
                               "arguments may use params, hypers, dims and numbers")
        if role == "hyper" and gref.axes and kind == "scalar":
            # a known array on the param grid (a known variance per component)
            known = _param_ref(cm, gref, z, plate, inner)
            if known not in knowns:
                knowns.append(known)
            continue
        if role != "param":
            continue
        ref = _param_ref(cm, gref, z, plate, inner, via and (via, f.loops[0].var))
        if any(r.param == ref.param and r != ref for r in refs):
            raise _unsupported(cm, gref.span, f"param '{ref.param}' used with two "
                               "different indexings in one statement", "")
        if ref not in refs:
            refs.append(ref)
    if kind == "scalar" and refs:
        if any(a.kind == "covariate" for r in refs for a in r.axes):
            raise _unsupported(cm, f.span, f"a covariate-indexed param in a {name} emission",
                               f"index its params by {z.name}[{plate.var}] or inner loops")
    if kind in ("categorical", "mvnormal") and inner:
        raise _unsupported(cm, f.span, f"a {name} emission inside an inner plate "
                           f"(for {inner[0].var} in ...)", f"give '{f.target}' one element "
                           f"per {plate.var} and sample it directly in the plate of {plate.var}")
    if kind == "categorical":
        ref = next((r for r in refs), None)
        if ref is None or not isinstance(f.arg["p"], (ast.Index, ast.Name)):
            raise _unsupported(cm, f.span, "a Categorical whose probabilities are not a "
                               "simplex param", "write e.g. `w[t] ~ Categorical(phi[c[t]])`")
        if any(a.kind == "covariate" for a in ref.axes):
            raise _unsupported(cm, f.arg["p"].span, "Categorical probabilities indexed by a "
                               "covariate in an emission", "index them by the latent, e.g. "
                               f"`phi[{z.name}[{plate.var}]]`")
    if kind == "mvnormal" and any(a.kind == "covariate" for r in refs for a in r.axes):
        raise _unsupported(cm, f.span, "MvNormal params indexed by a covariate", None)
    return Emission(f, number, kind, tuple(refs), inner, tuple(knowns),
                    factorised=scalar is not None, via=via)


def _group_selector(cm, f: Factor, refs, z: Var) -> str:
    """The category datum through which an emission in its own plate selects the latent
    (``phi[z[doc[t]]]``, ``rate[z[doc[t]]]``: 'doc'), or '' when it does not."""
    if len(f.loops) != 1 or not (f.family.scalar or
                                 f.family.numerics.KIND == "categorical"):
        return ""
    item = Axis_("loop", f.loops[0].var)
    found = set()
    for r in refs[1:]:
        for ax in r.axes:
            if ax.kind == "gate" and ax.name == z.name:
                if len(ax.inner) != 1 or ax.inner[0].kind != "group" or \
                        ax.inner[0].inner != (item,):
                    return ""
                found.add(ax.inner[0].name)
    return found.pop() if len(found) == 1 else ""


def _prior(cm: CheckedModel, f: Factor) -> Factor:
    v = cm.vars[f.target]
    want = tuple(lp.var for lp in f.loops[-len(v.shape):]) if v.shape else ()
    got = tuple(getattr(i, "id", None) for i in f.index)
    if got != want or len(f.loops) != len(v.shape):
        raise _unsupported(cm, f.span, f"a prior on '{v.name}' that is not one statement per "
                           "element in plates over its shape",
                           f"write `for k in 1:K {{ {v.name}[k] ~ ... }}`")
    own = tuple(lp.var for lp in f.loops)
    for _, e in f.args:
        for sub in ast.walk_expr(e):
            if isinstance(sub, ast.Name) and cm.role(sub.id) in ("latent", "data"):
                raise _unsupported(cm, sub.span, f"a prior on '{v.name}' that depends on "
                                   f"'{sub.id}' (hierarchical priors)",
                                   "prior arguments may use hypers, dims and numbers")
            if isinstance(sub, ast.Index) and cm.role(sub.base.id) == "param" and \
                    tuple(getattr(i, "id", None) for i in sub.indices) == own:
                continue  # a param of the same plate element (mean given precision)
            if isinstance(sub, ast.Name) and cm.role(sub.id) == "param" and not own:
                continue
            if isinstance(sub, ast.Index) and not all(isinstance(i, ast.Num)
                                                      for i in sub.indices):
                raise _unsupported(cm, sub.span, f"a prior on '{v.name}' whose arguments "
                                   f"change with the plate ('{ast.show(sub)}')",
                                   "give every element the same prior arguments")
    return f


def _param_ref(cm, gref, z: Var, plate: Loop, inner, via=()) -> ParamRef:
    """The param reference ``gref`` (a graph edge) in the terms of a mixture: each index
    is the latent (``mu[z[n]]``), an inner loop variable, or a categorical covariate
    indexed by the plate (``theta[doc[n]]``)."""
    v = cm.vars[gref.var]
    element = len(gref.axes) == len(v.shape) + v.elem_rank  # an element of a vector
    if len(gref.axes) not in (0, len(v.shape)) and not element:
        raise _unsupported(cm, gref.span, f"indexing into the elements of param '{v.name}'",
                           f"index '{v.name}' by its plate only ({len(v.shape)} index(es))")
    inner_vars = {lp.var for lp in inner}
    axes = []
    for ax in gref.axes:
        by_plate = ax.inner == (Axis_("loop", plate.var),)
        if via:  # z[doc[t]]: the latent of the item's group
            by_plate = ax.inner == (Axis_("group", via[0], inner=(Axis_("loop", via[1]),)),)
        if ax.kind == "gate" and ax.name == z.name and by_plate:
            axes.append(Axis("latent", z.name))
        elif ax.kind == "group" and by_plate:
            axes.append(Axis("covariate", ax.name))
        elif ax.kind == "loop" and ax.name in inner_vars:
            axes.append(Axis("loop", ax.name))
        else:
            raise _unsupported(cm, ax.span, f"param index '{ax.show()}'",
                               f"index params by {z.name}[{plate.var}], an inner loop variable "
                               f"or a cat datum indexed by {plate.var}")
    if sum(a.kind == "latent" for a in axes) > 1:
        raise _unsupported(cm, gref.span, "a param indexed twice by the latent", "")
    return ParamRef(v.name, tuple(axes))


def _unsupported(cm: CheckedModel, span, what: str, hint: str) -> NonConjugateError:
    return NonConjugateError(f"not supported yet: {what}", span, hint or None, cm.model.source)
