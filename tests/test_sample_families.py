"""model.sample draws exactly from every built-in family (issue 8, item 9): each checked
against scipy's distribution, by a Kolmogorov-Smirnov test for continuous families and a
chi-square test of the frequencies for discrete ones (p > 1e-3; seeds fixed)."""
from __future__ import annotations

import numpy as np
import pytest

st = pytest.importorskip("scipy.stats")

import emdsl  # noqa: E402

N = 4000
SCALAR = {   # family(args) -> (support, scipy distribution, continuous)
    "Normal(1.5, 4.0)": ("real", st.norm(1.5, 2.0), True),
    "Normal(1.5, prec=0.25)": ("real", st.norm(1.5, 2.0), True),
    "Normal(1.5, sd=2.0)": ("real", st.norm(1.5, 2.0), True),
    "Exponential(2.0)": ("pos", st.expon(scale=0.5), True),
    "Gamma(3.0, 2.0)": ("pos", st.gamma(3.0, scale=0.5), True),
    "InvGamma(3.0, 2.0)": ("pos", st.invgamma(3.0, scale=2.0), True),
    "Beta(2.0, 5.0)": ("unit", st.beta(2.0, 5.0), True),
    "Bernoulli(0.3)": ("bin", st.bernoulli(0.3), False),
    "Binomial(7, 0.3)": ("count", st.binom(7, 0.3), False),
    "Poisson(3.5)": ("count", st.poisson(3.5), False),
    "Geometric(0.3)": ("count", st.geom(0.3, loc=-1), False),   # failures before a success
}


def _model(statement, support):
    return emdsl.loads(f"""model One
dim N
dim K = 1
data   y[N]    : {support}
param  weights : simplex[K]
latent z[N]    : cat[K]
for n in 1:N {{
    z[n] ~ Categorical(weights)
    y[n] ~ {statement}
}}
""", name="one.emm", use_cache=False)


def _chi2_pvalue(draws, dist):
    values, counts = np.unique(draws, return_counts=True)
    expected = dist.pmf(values) * len(draws)
    keep = expected >= 5   # pool the rare values into one cell
    obs = np.r_[counts[keep], counts[~keep].sum() + (len(draws) - counts.sum())]
    exp = np.r_[expected[keep], len(draws) - expected[keep].sum()]
    if exp[-1] < 5:
        obs, exp = obs[:-1] + np.r_[np.zeros(len(obs) - 2), obs[-1]], exp[:-1]
        exp = exp * obs.sum() / exp.sum()
    return st.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("statement", sorted(SCALAR))
def test_scalar_family_draws(statement):
    support, dist, continuous = SCALAR[statement]
    y = _model(statement, support).sample(params={"weights": [1.0]}, seed=11, N=N)["y"]
    p = st.kstest(y, dist.cdf).pvalue if continuous else _chi2_pvalue(y, dist)
    assert p > 1e-3, (statement, p)


PRIORS = """model P
dim N
dim D = 2
dim K = 3
hyper  alpha : pos[K]
hyper  m     : real[D]
hyper  S     : spd[D]
data   y[N]  : real[D]
param  weights : simplex[K]
param  mu[K] : real[D]
latent z[N]  : cat[K]
weights ~ Dirichlet(alpha)
for k in 1:K { mu[k] ~ MvNormal(m, S) }
for n in 1:N {
    z[n] ~ Categorical(weights)
    y[n] ~ MvNormal(mu[z[n]], eye(D))
}
"""


def test_vector_family_draws():
    """Dirichlet and MvNormal as params' priors (drawn when not given), Categorical as the
    latent: the marginals of the draws against scipy."""
    m = emdsl.loads(PRIORS, name="priors.emm", use_cache=False)
    kw = {"alpha": np.array([1.0, 2.0, 3.0]), "m": np.array([1.0, -1.0]),
          "S": np.array([[2.0, 0.5], [0.5, 1.0]])}
    w, mu = [], []
    for seed in range(400):
        sim = m.sample(seed=seed, N=1, **kw)
        w.append(sim["weights"])
        mu.append(sim["mu"][0])
    w, mu = np.array(w), np.array(mu)
    assert st.kstest(w[:, 2], st.beta(3.0, 3.0).cdf).pvalue > 1e-3   # Dirichlet marginal
    assert st.kstest(mu[:, 0], st.norm(1.0, np.sqrt(2.0)).cdf).pvalue > 1e-3
    assert st.kstest(mu[:, 1], st.norm(-1.0, 1.0).cdf).pvalue > 1e-3
    # (mu0 - mu1) / sd: the correlation 0.5 / sqrt(2) enters the difference's variance
    d = mu[:, 0] - mu[:, 1]
    assert st.kstest(d, st.norm(2.0, np.sqrt(2.0 + 1.0 - 1.0)).cdf).pvalue > 1e-3
    sim = m.sample(params={"weights": [0.2, 0.3, 0.5], "mu": np.zeros((3, 2))}, seed=1,
                   N=N, **kw)
    counts = np.bincount(sim["z"], minlength=3)
    assert st.chisquare(counts, np.array([0.2, 0.3, 0.5]) * N).pvalue > 1e-3
