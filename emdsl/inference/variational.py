"""Variational factors of a mixture-shaped plan: CAVI / variational EM (issue 6, step 1).

A plan whose latents are one discrete latent ``z`` per item plus *global* latents (each
drawn from a conjugate prior, outside z's plate) is handled by the same machinery as EM:

- seen from the E-step, a global latent is a param whose value is replaced by its
  expected natural parameters under q (E_q[log p], E_q[Lambda], E_q[log|Lambda|], ...):
  the responsibilities are r[n, k] ~ exp(E_q[log p(z_n = k)] + E_q[log p(x_n | theta_k)])
  (Bishop PRML eq. 10.46-10.49; Blei et al. 2017, CAVI), computed by the same blocks;
- its update is the conjugate posterior from the same additive statistics: the prior's
  natural parameters plus the summed messages (the MAP update takes the mode of that very
  form; the variational one keeps the whole form; Bishop eq. 10.58-10.63);
- the objective is the ELBO: sum_n log sum_k exp(...) + log h(x) - sum KL(q || prior),
  every constant kept (it equals E_q[log p] - E_q[log q] right after the E-step).

:func:`variational_view` checks the structure and returns the model with its global
latents seen as params (so that the exact-discrete analysis and the update derivation run
unchanged) and their names; :func:`variational_factors` names each global's q family and
the fields of its variational parameters.  What is not of this shape (LDA's and
regression-type CAVI without a discrete latent, continuous latents per item) stays a
located "not supported yet".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import NonConjugateError
from ..frontend.check import CheckedModel


@dataclass(frozen=True)
class QFactor:
    """The variational factor of a global latent (or of a structured pair)."""
    var: str
    family: str                   # q's family: 'Dirichlet', 'MvNormal | Wishart', 'Wishart'
    fields: tuple                 # names of its variational parameters, e.g. ('mean', 'beta')
    update: object                # the SimplexUpdate or GaussianUpdate it comes from
    partner: str = ""             # structured: the latent it is joined with


def variational_view(plan) -> tuple[CheckedModel, frozenset]:
    """(model with the global latents as params, their names) for a plan with variational
    factors around one discrete latent, or a located "not supported yet"."""
    cm = plan.graph.model
    latents = [t for t in plan.treatments.values() if cm.vars[t.var].role == "latent"]
    local = [t for t in latents if cm.vars[t.var].kind == "cat" and t.plates
             and t.kind in ("mean-field", "exact discrete")]
    if len(local) != 1:
        t = next((t for t in latents if t.kind in ("mean-field", "structured")), latents[0])
        raise _unsupported(cm, t.var, f"variational factor for latent '{t.var}' in a model "
                           "without exactly one discrete latent per item (CAVI over "
                           "continuous latents only, as in Bayesian regression, lands next)",
                           "this version derives the variational factors of global latents "
                           "around one `latent z[N] : cat[K]` (mixtures, topic models)")
    z = local[0]
    return _view(cm, latents, z)


def global_view(plan):
    """(model with every latent seen as a param, their names) for a plan without a
    discrete latent per item, or None when it has one."""
    cm = plan.graph.model
    latents = [t for t in plan.treatments.values() if cm.vars[t.var].role == "latent"]
    if any(cm.vars[t.var].kind == "cat" for t in latents) or \
            any(t.kind not in ("mean-field", "structured") for t in latents):
        return None
    names = frozenset(t.var for t in latents)
    return dataclasses.replace(cm, vars={
        n: dataclasses.replace(v, role="param") if n in names else v
        for n, v in cm.vars.items()}), names


def _view(cm, latents, z):
    globals_ = []
    for t in latents:
        if t is z:
            continue
        if t.prior is None:  # pragma: no cover - the checker requires a statement
            raise _unsupported(cm, t.var, f"latent '{t.var}' without a prior", None)
        if t.kind not in ("mean-field", "structured"):
            raise _unsupported(cm, t.var, f"latent '{t.var}' ({t.kind}) beside the discrete "
                               f"latent '{z.var}'", None)
        if set(t.plates) & set(z.plates):
            raise _unsupported(cm, t.var, f"latent '{t.var}' in the plate of '{z.var}' "
                               "(a continuous latent per item)", "make it global: one per "
                               "component or group")
        globals_.append(t.var)
    names = frozenset(globals_)
    view = dataclasses.replace(cm, vars={
        n: dataclasses.replace(v, role="param") if n in names else v
        for n, v in cm.vars.items()})
    return view, names


def variational_factors(us, names: frozenset) -> list[QFactor]:
    """The q factor of every variational global of an UpdateSet derived on the view."""
    cm = us.checked
    out, done = [], set()
    for su in us.simplex:
        if su.param in names:
            out.append(QFactor(su.param, "Dirichlet", ("concentration",), su))
            done.add(su.param)
    for gu in us.gaussian:
        mine = [p for p in gu.params if p in names]
        if not mine:
            continue
        mean, spread = gu.mean.param, gu.spread.param
        nw = (mean in names and spread in names and gu.keyword == "prec"
              and gu.mean_prior is not None and gu.spread_prior is not None
              and gu.prior_spread is not None and gu.prior_spread.param == spread
              and gu.prior_keyword == "prec" and gu.spread.scale is None
              and gu.mean.offset is None and gu.mean.sign > 0 and gu.mean.scale is None
              and gu.mean.axes == gu.spread.axes and len(gu.mean.axes) == 1)
        if not nw:
            p = mine[0]
            raise _unsupported(cm, p, f"the variational factor of '{p}' in "
                               f"'{gu.emission.factor.text.strip()}' (this version derives "
                               "the Normal-Wishart pair: a mean with prior MvNormal(m0, "
                               "prec=beta0 * Lambda[k]) and its precision Lambda[k] ~ "
                               "Wishart(W0, nu0), both latent, per component)",
                               "write the mean and precision as in models/bayes_gmm.emm, or "
                               "declare them `param` (MAP-EM)")
        out.append(QFactor(spread, "Wishart", ("scale", "df"), gu, mean))
        out.append(QFactor(mean, "MvNormal | Wishart", ("mean", "beta"), gu, spread))
        done |= {mean, spread}
    done |= {q.var for q in us.scalar_qs}
    for q in us.scalar_qs:
        child = next((c.var for c in us.scalar_qs if c.given is q), "")
        out.append(QFactor(q.var, q.family, q.names, q, q.given.var if q.given else child))
    for name in sorted(names - done):
        raise _unsupported(cm, name, f"the variational factor of latent '{name}' (this "
                           "version derives Dirichlet factors of simplex weights and "
                           "Normal-Wishart factors of MvNormal components; scalar families "
                           "land next)", f"declare '{name}' a `param` (MAP-EM)")
    return out


def _unsupported(cm: CheckedModel, var: str, what: str, hint) -> NonConjugateError:
    return NonConjugateError(f"not supported yet: {what}", cm.vars[var].span, hint or None,
                             cm.model.source)
