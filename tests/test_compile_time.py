"""Compilation never hangs: a symbolic solve past its time limit gives a numerical M-step,
and the derivation says so."""
import time

import numpy as np

import emdsl
from emdsl.inference import solve as derive


def test_a_slow_solve_falls_back_to_newton(monkeypatch):
    src = """model Slow
dim N
dim K = 2
data y[N] : pos
param w : simplex[K]
param rate[K] : pos
latent z[N] : cat[K]
for n in 1:N {
  z[n] ~ Categorical(w)
  y[n] ~ Exponential(rate[z[n]])
}
"""
    real_solve = derive.sp.solve
    finished = []

    def slow_solve(eq, u, *args, **kwargs):
        if str(u) == "rate":
            time.sleep(5)  # interrupted by the time limit
            finished.append(u)  # never reached when the limit works
        return real_solve(eq, u, *args, **kwargs)
    monkeypatch.setattr(derive, "SOLVE_SECONDS", 0.5)
    monkeypatch.setattr(derive.sp, "solve", slow_solve)
    m = emdsl.loads(src, name="slow.emm", use_cache=False)
    assert finished == [], "the slow solve ran to the end: no time limit"
    us = m._compiled.updates
    (g,) = [g for g in us.groups if "rate" in g.params]
    assert g.timed_out == ("rate",) and g.numeric == ("rate",)
    assert "did not finish within" in m.derivation()
    # and the numerical M-step is right: the weighted ML rate N_k / sum r y
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.exponential(1.0, 500), rng.exponential(0.1, 500)])
    r = m.fit(y=y, K=2, seed=0, n_init=2)
    assert np.allclose(sorted(r.params["rate"]), [1.0, 10.0], rtol=0.15)
