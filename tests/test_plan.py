"""The inference plan: treatments chosen from roles and graph structure, never from names."""
from pathlib import Path

import pytest

from emdsl.frontend.check import check
from emdsl.errors import NonConjugateError
from emdsl.graph import build_graph
from emdsl.inference import make_plan
from emdsl.frontend.parse import parse

MODELS = Path(__file__).resolve().parent.parent / "models"


def plan_of(src: str):
    return make_plan(build_graph(check(parse(src, "t.emm"))))


def plan_file(name):
    path = MODELS / f"{name}.emm"
    return make_plan(build_graph(check(parse(path.read_text(), str(path)))))


def kinds(plan):
    return {n: t.kind for n, t in plan.treatments.items()}


@pytest.mark.parametrize("name, algorithm, expected", [
    ("gaussian_mixture", "EM", {"weights": "point", "mu": "point", "Sigma": "point",
                                "z": "exact discrete"}),
    ("gmm_identity_map", "MAP-EM", {"weights": "point", "mu": "point", "z": "exact discrete"}),
    ("topics_em", "EM", {"theta": "point", "phi": "point", "c": "exact discrete"}),
    ("lda", "CAVI", {"theta": "mean-field", "phi": "mean-field", "c": "mean-field"}),
    ("bayes_gmm", "CAVI", {"weights": "mean-field", "mu": "structured",
                           "Lambda": "structured", "z": "mean-field"}),
    ("bayes_linreg", "CAVI", {"w": "mean-field", "lam": "mean-field", "beta": "mean-field"}),
    ("gaussian_hmm", "EM", {"start": "point", "trans": "point", "mu": "point",
                            "Sigma": "point", "z": "chain"}),
    ("factor_analysis", "EM", {"W": "point", "mu": "point", "psi": "point",
                               "h": "linear-Gaussian"}),
])
def test_shipped_models(name, algorithm, expected):
    plan = plan_file(name)
    assert plan.algorithm == algorithm and kinds(plan) == expected


def test_estimates_and_dump():
    plan = plan_file("bernoulli_mixture")
    assert plan.treatments["p"].estimate == "MAP" and plan.treatments["weights"].estimate == "ML"
    assert plan.algorithm == "MAP-EM"
    dump = plan.dump()
    assert dump.splitlines()[0] == "plan BernoulliMixture: MAP-EM"
    assert "q(z[n]) = Categorical" in dump and "point (MAP)" in dump
    bgmm = plan_file("bayes_gmm").dump()
    assert "q(mu[k] | Lambda) = MvNormal" in bgmm and "q(Lambda[k]) = Wishart" in bgmm


def test_variational_em_when_params_remain():
    # the LDA of the notes with a point-estimated topic matrix: variational EM
    plan = plan_of("""model VEM
dim T, D, V
dim K = 3
data doc[T] : cat[D]
data w[T] : cat[V]
hyper alpha : pos = 0.5
latent theta[D] : simplex[K]
param phi[K] : simplex[V]
latent c[T] : cat[K]
for d in 1:D { theta[d] ~ Dirichlet(alpha) }
for t in 1:T {
    c[t] ~ Categorical(theta[doc[t]])
    w[t] ~ Categorical(phi[c[t]])
}
""")
    assert plan.algorithm == "variational EM"
    assert kinds(plan) == {"theta": "mean-field", "phi": "point", "c": "mean-field"}
    from emdsl.inference.derive import derive_plan
    us = derive_plan(plan)   # q(theta[d]) Dirichlet around c; phi a point (ML) update
    assert [(q.var, q.family) for q in us.qfactors] == [("theta", "Dirichlet")]
    assert us.variational == {"theta"} and us.report.algorithm == "variational EM"


def test_variational_factors_without_a_discrete_latent_derive_global_cavi():
    plan = plan_of((MODELS / "bayes_linreg.emm").read_text())
    from emdsl.inference.derive import derive_plan
    g = derive_plan(plan)   # every latent global: q(w) MvNormal, q(lam), q(beta) Gamma
    assert [v.var for v in g.vector] == ["w"] and [q.var for q in g.scalars] == ["lam", "beta"]
    assert "not supported" not in plan.dump()


def test_not_structured_when_likelihood_precision_differs():
    # mean given precision, but x's precision is another latent: mean-field, not joint
    plan = plan_of("""model NG
dim N
data x[N] : real
latent tau : pos
latent s : pos
latent m : real
tau ~ Gamma(1, 1)
s ~ Gamma(1, 1)
m ~ Normal(0, prec=tau)
for n in 1:N { x[n] ~ Normal(m, prec=s) }
""")
    assert plan.treatments["m"].kind == "mean-field"
    plan = plan_of("""model NG2
dim N
data x[N] : real
latent tau : pos
latent m : real
tau ~ Gamma(1, 1)
m ~ Normal(0, 1 / (2 * tau))
for n in 1:N { x[n] ~ Normal(m, 1 / tau) }
""")
    # the Normal-Gamma pattern: joint in a mixture (test_variational_structured); without
    # a discrete latent, mean-field as Bishop's univariate Gaussian (PRML 10.1.3)
    assert plan.treatments["m"].kind == "mean-field" and "10.1.3" in plan.treatments["m"].reason
    assert plan.treatments["tau"].kind == "mean-field"


def test_exact_conjugate_continuous_latent():
    plan = plan_of("""model GP
dim N
data y[N] : count
param a : pos
param b : pos
latent lam[N] : pos
for n in 1:N {
    lam[n] ~ Gamma(a, b)
    y[n] ~ Poisson(lam[n])
}
""")
    assert plan.treatments["lam"].kind == "exact conjugate"
    with pytest.raises(NonConjugateError, match="an exact conjugate E-step"):
        plan.require_supported()


def test_no_latent_is_rejected_with_a_location():
    with pytest.raises(NonConjugateError, match="without a latent"):
        plan_of("model P\ndim N\ndata x[N] : real\nparam m : real\n"
                "for n in 1:N { x[n] ~ Normal(m, 1) }\n")
