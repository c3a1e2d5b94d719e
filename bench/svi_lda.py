#!/usr/bin/env python
"""emdsl's stochastic VI for models/lda.emm vs scikit-learn's online LatentDirichletAllocation.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/svi_lda.py               # ~5 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/svi_lda.py --corpus reuters

The same minibatch size, kappa (scikit-learn's learning_decay) and delay (its
learning_offset), priors alpha = 0.1, eta = 0.01; held-out perplexity by document
completion as in bench/lda.py, evaluated every --every minibatches of both (scikit-learn's
partial_fit on consecutive slices of --every minibatches, which is its pass; emdsl's steps
observed by wrapping SVIPass.local_step), the evaluation excluded from both clocks. The
target is scikit-learn's median perplexity at the end of its --passes, its time the first
time its median reaches it; emdsl's time is the first time its median reaches it.
emdsl's clock includes its start (the statistics of 2,000 random documents fitted at the
random topics) and the compile of the model (cached: a load).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
import emdsl  # noqa: E402
from lda import completion, reuters, split, synthetic, tokens  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", choices=("reuters", "synthetic"), default="synthetic")
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--kappa", type=float, default=0.7)
    ap.add_argument("--delay", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--every", type=int, default=10, help="minibatches between evaluations")
    a = ap.parse_args(argv)
    from sklearn.decomposition import LatentDirichletAllocation
    X = reuters() if a.corpus == "reuters" else synthetic(docs=a.docs)
    K = 10 if a.corpus == "reuters" else 20
    train, fold, score = split(X)
    doc, word = tokens(train)
    print(f"{a.corpus}: {train.shape[0]} training documents, {train.shape[1]} words, "
          f"{len(doc)} tokens, K = {K}, B = {a.batch_size}, kappa = {a.kappa}, "
          f"delay = {a.delay}")
    evaluator = LatentDirichletAllocation(n_components=K, max_iter=1, doc_topic_prior=0.1,
                                          topic_word_prior=0.01).fit(train[:50])
    model = emdsl.load(ROOT / "models" / "lda.emm")
    sk_runs, our_runs = [], []
    for seed in range(a.seeds):
        sk_runs.append(_sklearn(a, train, K, seed, lambda lam: completion(evaluator, lam, fold,
                                                                          score)))
        our_runs.append(_ours(a, model, doc, word, train, K, seed,
                              lambda lam: completion(evaluator, lam, fold, score)))
        for who, runs in (("scikit-learn online", sk_runs), ("emdsl svi", our_runs)):
            print(f"seed {seed} {who:20s}" + ", ".join(f"{q:.1f} at {t:.2f} s"
                                                      for q, t in runs[-1]), flush=True)
    sk = np.median(np.array(sk_runs), axis=0)   # (evaluations, 2): perplexity, seconds
    ours = np.median(np.array(our_runs), axis=0)
    print(f"medians over {a.seeds} seeds (every {a.every} minibatches):")
    for who, tr in (("scikit-learn online", sk), ("emdsl svi", ours)):
        print(f"  {who:20s}" + ", ".join(f"{q:.1f} at {t:.2f} s" for q, t in tr))
    target = sk[-1][0]
    theirs = next(t for q, t in sk if q <= target)
    reached = next((t for q, t in ours if q <= target), None)
    print(f"scikit-learn's median perplexity after {a.passes} pass(es): {target:.1f}, first "
          f"reached at {theirs:.2f} s; emdsl " +
          (f"reaches it at {reached:.2f} s ({reached / theirs:.2f} x)" if reached is not None
           else "does not reach it"))


def _sklearn(a, train, K, seed, quality):
    """[(perplexity, seconds)] every a.every minibatches of scikit-learn's online LDA."""
    from sklearn.decomposition import LatentDirichletAllocation
    sk = LatentDirichletAllocation(n_components=K, learning_method="online",
                                   batch_size=a.batch_size, learning_decay=a.kappa,
                                   learning_offset=a.delay, doc_topic_prior=0.1,
                                   topic_word_prior=0.01, total_samples=train.shape[0],
                                   random_state=seed)
    trace, clock, span = [], 0.0, a.every * a.batch_size
    for p in range(a.passes):
        for lo in range(0, train.shape[0], span):   # partial_fit: minibatches of a slice
            t0 = time.perf_counter()
            sk.partial_fit(train[lo:lo + span])
            clock += time.perf_counter() - t0
            trace.append((quality(sk.components_.copy()), clock))
    return trace


def _ours(a, model, doc, word, train, K, seed, quality):
    """[(perplexity, seconds)] every a.every minibatches of each pass of emdsl's SVI
    (evaluation excluded), and at the end of each pass."""
    from emdsl.runtime import svi
    state = {"eval": 0.0, "trace": [], "steps": 0}
    step = svi.SVIPass.local_step

    def observed(self, groups, params, reg):   # params: those after the previous step
        if self.s is not None:   # (not the start)
            if state["steps"] and state["steps"] % a.every == 0:
                watch(params)
            state["steps"] += 1
        return step(self, groups, params, reg)

    def end_of_pass(params):   # the steps counted within a pass, as scikit-learn's slices
        watch(params)
        state["steps"] = 0

    def watch(params):
        e0 = time.perf_counter()
        q = quality(np.asarray(params["phi.concentration"]).copy())
        state["trace"].append((q, e0 - t0 - state["eval"]))
        state["eval"] += time.perf_counter() - e0

    svi.SVIPass.local_step = observed
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            model.fit(doc=doc, w=word, D=train.shape[0], V=train.shape[1], K=K, alpha=0.1,
                      eta=0.01, seed=seed, method="svi", batch_size=a.batch_size,
                      kappa=a.kappa, delay=a.delay, max_iter=a.passes, tol=0.0,
                      callback=lambda it, value, params: end_of_pass(params))
    finally:
        svi.SVIPass.local_step = step
    return state["trace"]


if __name__ == "__main__":
    main()
