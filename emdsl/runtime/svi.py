"""Stochastic variational inference (Hoffman, Blei, Wang & Paisley 2013) for models with
local factors per group (LDA's documents): ``fit(method="svi", batch_size=B, kappa=,
delay=)`` (issue 7, item 3).

A step takes B groups at random (documents, without replacement within a pass) and all
their items: their local factors are fitted to convergence at the current global factors
(the module's ``local_fit``: restarts, as in batch CAVI), the minibatch's statistics are
scaled to the data set (G / B), and the running statistics move towards them with
rho_t = (delay + t)^-kappa; the global factors are their conjugate update (the prior
added once): in the natural parameters lambda <- (1 - rho) lambda + rho lambda_hat, the
stochastic natural-gradient step. The running statistics start as those of a random
subset of START_GROUPS groups (all of them when fewer) at the starting global factors,
scaled to the data set, the subset's local factors fitted to them (one batch CAVI step on
the subset), so the first steps move from the start, as lambda_0 does in Hoffman et al.,
instead of replacing it by one minibatch's. Measured (bench/svi_lda.py, held-out
perplexity after one pass of 20,000 synthetic documents, median of 7 seeds): 380 from
2,000 groups at 8.2 s, 402 from 1,000 at 6.8 s, 394 from all 16,000 at 24 s (scikit-learn's
online LDA: 395 at 4.2 s); earlier, one seed: 448 with 10 local sweeps for the whole start,
458 from the starting factors' plain E-step; zero statistics (the prior) gave 2014
instead of 1865 on Reuters (those times before the packed local fits: now one pass takes
~3.7 s, the start ~1 s of it; with the start's sweeps capped at 50 instead of 100, 6
seeds, 1 of 6 reached ~380 instead of 4 of 6). The local factors of the minibatch's groups are kept,
so the fit's params hold every group's.
After each pass the objective is the pass's progressive estimate of the ELBO: each
group's part (its items' E_q[log p] + H(q) and its local factors' -KL) as its minibatch
fitted it, at the global factors of that step, plus the global factors' -KL at the end
of the pass, at no cost beyond the steps. It approaches the exact ELBO of the result as
the steps shrink; the exact one would take another E-step over the whole data set after
every pass (~25 % of a pass on 20,000 synthetic documents; scikit-learn's online LDA
computes no objective unless asked).
"""
from __future__ import annotations

import numpy as np

from .grouped import global_latents, local_names
from .online import RunningStatistics

START_GROUPS = 2000   # groups whose statistics start the running ones (module doc)


class SVIPass(RunningStatistics):
    """One pass of SVI over the groups of an in-memory source."""

    def __init__(self, source, kappa, delay, B, rng, local_iter=100):
        super().__init__(kappa, delay)
        mod = source.mod
        self.source, self.B, self.rng = source, B, rng
        self.local_iter = local_iter
        self.group, self.dim = mod.LOCAL_GROUP
        groups = np.asarray(source.data[self.group], dtype=np.int64)
        self.G = int(source.h[self.dim])
        self.order = np.argsort(groups, kind="stable")   # the items, group by group
        self.starts = np.concatenate([[0], np.cumsum(np.bincount(groups, minlength=self.G))])
        self.local = local_names(mod)

    def minibatch(self, groups, params):
        """(data, dims, params) of the items of ``groups`` (sorted), renumbered 0..b-1."""
        src = self.source
        lengths = self.starts[groups + 1] - self.starts[groups]
        offsets = np.repeat(self.starts[groups] - np.concatenate([[0], np.cumsum(lengths)[:-1]]),
                            lengths)
        idx = self.order[np.arange(lengths.sum()) + offsets]
        chunk = src.chunk(idx)
        chunk[self.group] = np.repeat(np.arange(len(groups)), lengths)
        hc = {**src.dims(len(idx)), self.dim: len(groups)}
        local = {k: np.asarray(params[k])[groups] for k in self.local}
        return chunk, hc, {**params, **local}

    def __call__(self, params, reg):
        src, mod = self.source, self.source.mod
        if self.s is None:   # the statistics of the starting global factors (module doc)
            n = min(self.G, max(START_GROUPS, self.B))
            groups = (np.arange(self.G) if n == self.G else
                      np.sort(self.rng.choice(self.G, size=n, replace=False)))
            stats, params, _ = self.local_step(groups, params, reg)
            self.s = {k: (v if k.startswith("shift_") else np.asarray(v, dtype=float) * self.G / n)
                      for k, v in stats.items()}
        perm = self.rng.permutation(self.G)
        self.value = 0.0   # the pass's groups' parts of the ELBO (module doc)
        for lo in range(0, self.G, self.B):
            groups = np.sort(perm[lo:lo + self.B])
            stats, params, value = self.local_step(groups, params, reg)
            self.value += value
            s = self.step(stats, self.G / len(groups))
            new = mod.m_step(s, params, src.h, reg)   # (the local factors' part: dropped)
            params = {**params, **{k: v for k, v in new.items() if k not in self.local}}
        return params

    def local_step(self, groups, params, reg):
        """(the statistics of ``groups`` with their local factors fitted at the global
        ones, params with those local factors, the groups' part of the ELBO there)."""
        src, mod = self.source, self.source.mod
        chunk, hc, p_b = self.minibatch(groups, params)
        st = mod.prepare(chunk, hc, src.centre)
        if self.local_iter and hasattr(mod, "local_fit"):
            p_b, (_, stats, loglik) = mod.local_fit(st, p_b, hc, max_iter=self.local_iter,
                                                    with_e_step=True)
        else:   # local_iter=0: one update of the local factors from the items' q
            ess = mod.e_step(st, p_b, hc)[1]
            p_b = mod.m_step(ess, p_b, hc, reg, only=mod.LOCAL_FACTORS)
            _, stats, loglik = mod.e_step(st, p_b, hc)
        params = dict(params)
        for k in self.local:   # the groups' local factors, kept
            params[k] = np.array(params[k], dtype=float)
            params[k][groups] = p_b[k]
        return stats, params, loglik + mod.log_prior(p_b, hc, only=mod.LOCAL_FACTORS)

    def objective(self, params):
        """(the pass's estimate of the ELBO (module doc), params)."""
        mod = self.source.mod
        return self.value + mod.log_prior(params, self.source.h,
                                          only=global_latents(mod)), params
