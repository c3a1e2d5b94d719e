"""The inference plan: how each unobserved variable is treated, chosen from its role and
the structure of the factor graph (LANGUAGE.md, "What gets derived").

Treatments:

- ``point``           a ``param``: maximum likelihood, or MAP when it has a prior;
- ``exact discrete``  a finite discrete latent whose complete conditional, given the
                      params, factorises over its plate elements (a mixture, one topic per
                      document): q is the exact posterior and the algorithm is EM;
- ``chain``           a discrete latent linked to itself through a lag edge (an HMM):
                      forward-backward (later work);
- ``linear-Gaussian`` a continuous latent whose only unobserved neighbours are params
                      (factor analysis): an exact Gaussian E-step (later work);
- ``exact conjugate`` the same for a non-Gaussian continuous latent (a Gamma scale per
                      item): an exact E-step in its prior's family (later work);
- ``mean-field``      a latent whose complete conditional involves other latents: its own
                      factor q(v) in the family of its prior (CAVI);
- ``structured``      a latent whose prior is conditioned on another latent (a mean given a
                      precision): one joint factor with that latent (Normal-Wishart).

The algorithm's name follows: variational EM or CAVI when any factor is variational,
otherwise EM or MAP-EM.  :meth:`Plan.require_supported` rejects, with a located
"not supported yet", the treatments this version cannot derive.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import NonConjugateError
from ..graph import FactorGraph

TREATMENTS = ("point", "exact discrete", "chain", "linear-Gaussian", "exact conjugate",
              "mean-field", "structured")
VARIATIONAL = ("mean-field", "structured")
# the treatments this version derives updates for (variational factors: those around one
# discrete latent per item, see ``variational.py``, which rejects the others with a location)
SUPPORTED = ("point", "exact discrete", "mean-field", "structured")


@dataclass(frozen=True)
class Treatment:
    var: str
    kind: str                    # one of TREATMENTS
    family: str                  # the prior's family (q's family for a latent), '' if none
    plates: tuple[str, ...]      # a latent's plate: one factor q per element
    prior: int | None            # index of the sampling factor (prior / assignment)
    factors: tuple[int, ...]     # every factor of the Markov blanket
    partner: str = ""            # structured: the latent it is joined with
    reason: str = ""             # why, in words
    given: bool = False          # structured: q(var | partner) (else q(var) q(partner | var))

    @property
    def estimate(self) -> str:
        """'ML' or 'MAP' for a point treatment, '' otherwise."""
        if self.kind != "point":
            return ""
        return "MAP" if self.prior is not None else "ML"

    def show(self) -> str:
        label = self.kind + (f" ({self.estimate})" if self.estimate else "")
        if self.kind == "structured":
            label += f" with {self.partner}"
        plate = f"[{', '.join(self.plates)}]" if self.plates else ""
        given = f" | {self.partner}" if self.given else ""
        q = f"q({self.var}{plate}{given}) = {self.family}" \
            if self.kind != "point" and self.family else ""
        facs = " ".join(f"f{i}" for i in self.factors)
        return f"  {self.var:<10} {label:<28} {q:<28} factors {facs}"


@dataclass
class Plan:
    graph: FactorGraph
    treatments: dict            # name -> Treatment, in declaration order

    @property
    def algorithm(self) -> str:
        kinds = {t.kind for t in self.treatments.values()}
        has_params = any(t.kind == "point" for t in self.treatments.values())
        if kinds & set(VARIATIONAL):
            return "variational EM" if has_params else "CAVI"
        if any(t.estimate == "MAP" for t in self.treatments.values()):
            return "MAP-EM"
        return "EM"

    def of(self, kind: str) -> list[Treatment]:
        return [t for t in self.treatments.values() if t.kind == kind]

    def dump(self) -> str:
        """A stable text form (``emdsl compile --print plan``)."""
        lines = [f"plan {self.graph.model.name}: {self.algorithm}"]
        lines += [t.show().rstrip() for t in self.treatments.values()]
        unsupported = [t for t in self.treatments.values() if t.kind not in SUPPORTED]
        for t in unsupported:
            lines.append(f"  not supported yet: the {t.kind} factor of {t.var}")
        if not unsupported and any(t.kind in VARIATIONAL for t in self.treatments.values()):
            from .variational import global_view, variational_view
            try:
                if global_view(self) is None:
                    variational_view(self)
            except NonConjugateError as exc:
                lines.append(f"  {exc.msg}")
        return "\n".join(lines)

    def words(self) -> list[str]:
        """The plan as sentences (the derivation's first section)."""
        out = []
        for t in self.treatments.values():
            out.append(f"`{t.var}`: {t.kind}" + (f" ({t.estimate})" if t.estimate else "")
                       + f" - {t.reason}")
        return out

    def require_supported(self) -> None:
        """Raise a located "not supported yet" for the first treatment this version does
        not derive (in declaration order); variational factors are checked further by
        ``variational.py`` and ``global_cavi.py``, which locate what they cannot derive."""
        cm = self.graph.model
        for t in self.treatments.values():
            if t.kind in SUPPORTED:
                continue
            span = cm.vars[t.var].span
            plate = f"[{', '.join(t.plates)}]" if t.plates else ""
            if t.kind == "chain":
                what = (f"latent '{t.var}' is a chain of discrete states (a forward-backward "
                        "E-step)")
                hint = f"{t.reason}; a mixture draws each element independently given the params"
                span = cm.factors[t.prior].span if t.prior is not None else span
            else:
                what = (f"latent '{t.var}' is continuous: an exact {t.kind.replace('exact ', '')} E-step "
                        f"(q({t.var}{plate}) = {t.family})")
                hint = f"{t.reason}; this E-step lands in later work"
            raise NonConjugateError(f"not supported yet: {what}", span, hint, cm.model.source)


def make_plan(fg: FactorGraph) -> Plan:
    cm = fg.model
    unobserved = [v for v in cm.vars.values() if v.role in ("param", "latent")]
    if not any(v.role == "latent" for v in unobserved):
        raise NonConjugateError(
            "not supported yet: models without a latent variable", cm.model.span,
            "declare the unobserved quantity as `latent`", cm.model.source)
    # without a discrete latent every latent is global, and CAVI over global latents takes
    # mean-field factors only (a Normal-Gamma pair is q(mu) q(tau), Bishop PRML 10.1.3)
    discrete = any(v.role == "latent" and v.kind == "cat" for v in unobserved)
    out = {}
    for v in unobserved:
        sampled = fg.sampling_factors(v.name)
        prior = sampled[0] if sampled else None
        family = cm.factors[prior].family.name if prior is not None else ""
        factors = tuple(fg.factors_of(v.name))
        plates = _plates(fg, v.name, prior)
        if v.role == "param":
            reason = ("maximise the expected complete-data log likelihood"
                      + (" plus its log prior" if prior is not None else ""))
            out[v.name] = Treatment(v.name, "point", family, (), prior, factors, "", reason)
            continue
        out[v.name] = _latent(fg, v, prior, family, factors, plates, discrete)
    for t in list(out.values()):  # the partner of a structured factor is part of it
        if t.kind == "structured" and out[t.partner].kind != "structured":
            p = out[t.partner]
            out[p.var] = Treatment(p.var, "structured", p.family, p.plates, p.prior, p.factors,
                                   t.var, f"one joint factor q({t.var}, {p.var}): "
                                   f"q({t.var} | {p.var}) q({p.var})")
    return Plan(fg, out)


def _plates(fg, var, prior) -> tuple[str, ...]:
    if prior is None:
        return ()
    return tuple(lp.var for lp in fg.model.factors[prior].loops)


def _latent(fg: FactorGraph, v, prior, family, factors, plates, discrete) -> Treatment:
    cm = fg.model
    name = v.name
    lag = [i for i, r in fg.edges_of(name) if r.kind == "lag"]
    if len(fg.sampling_factors(name)) > 1 or lag:
        at = lag[0] if lag else fg.sampling_factors(name)[-1]
        return Treatment(name, "chain", family, plates, at, factors, "",
                         f"'{cm.factors[at].text.strip()}' links elements of {name} to each "
                         "other")
    others = sorted(u for u in fg.unobserved_blanket(name) if cm.role(u) == "latent")
    partner = _structured_partner(fg, name, prior)
    if partner and discrete:
        return Treatment(name, "structured", family, plates, prior, factors, partner,
                         f"its prior (line {cm.factors[prior].span.line}) scales its spread "
                         f"by latent '{partner}', as every factor it is the mean of does: "
                         "their joint complete conditional is conjugate", given=True)
    if others:
        pair = (f"its prior scales its spread by latent '{partner}'; without a discrete "
                f"latent the factors are mean-field, q({name}) q({partner}) (Bishop PRML "
                "10.1.3); " if partner else "")
        return Treatment(name, "mean-field", family, plates, prior, factors, "",
                         f"{pair}its complete conditional involves latent "
                         f"{', '.join(repr(o) for o in others)}")
    if v.kind == "cat":
        return Treatment(name, "exact discrete", family, plates, prior, factors, "",
                         "given the params its elements are independent: the exact posterior "
                         "(responsibilities)")
    params = sorted(fg.unobserved_blanket(name))
    fam = cm.factors[prior].family if prior is not None else None
    gaussian = fam is not None and fam.location and fam.support == "real"
    return Treatment(name, "linear-Gaussian" if gaussian else "exact conjugate", family, plates, prior, factors, "",
                     f"its only unobserved neighbours are params ({', '.join(params)}), so "
                     "given them its posterior is exact")


def _spread_vars(fg, i) -> set[str]:
    """The latents in the spread argument of factor ``i`` (a location-scale family)."""
    f = fg.model.factors[i]
    if not f.family.spread:
        return set()
    return {r.var for r in fg.refs(i) if r.arg == f.family.spread
            and fg.model.role(r.var) == "latent"}


def _structured_partner(fg, name, prior) -> str:
    """The latent P when ``name``'s prior is a location-scale family whose spread uses P and
    every factor in which ``name`` is the location uses P in its spread too (the
    Normal-Wishart / Normal-Gamma pattern), else ''."""
    if prior is None:
        return ""
    partners = _spread_vars(fg, prior)
    for i in fg.child_factors(name):
        f = fg.model.factors[i]
        if any(r.arg == f.family.location for r in fg.refs_to(i, name)):
            partners &= _spread_vars(fg, i)
    return sorted(partners)[0] if partners else ""
