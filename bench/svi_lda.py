#!/usr/bin/env python
"""emdsl's stochastic VI for models/lda.emm vs scikit-learn's online LatentDirichletAllocation.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/svi_lda.py               # ~5 min
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/svi_lda.py --corpus reuters

The same minibatch size, kappa (scikit-learn's learning_decay) and delay (its
learning_offset), priors alpha = 0.1, eta = 0.01; held-out perplexity by document
completion as in bench/lda.py, evaluated after every pass of both (the evaluation is
excluded from both clocks). emdsl's time per pass includes its own ELBO of the whole data
set after the pass (a batch E-step), which scikit-learn does not compute.
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
            print(f"seed {seed} {who:20s}" + ", ".join(f"pass {i + 1}: {q:.1f} at {t:.1f} s"
                                                      for i, (q, t) in enumerate(runs[-1])))
    sk = np.median(np.array(sk_runs), axis=0)   # (passes, 2): perplexity, seconds
    ours = np.median(np.array(our_runs), axis=0)
    print(f"medians over {a.seeds} seeds:")
    for who, tr in (("scikit-learn online", sk), ("emdsl svi", ours)):
        print(f"  {who:20s}" + ", ".join(f"pass {i + 1}: {q:.1f} at {t:.1f} s"
                                         for i, (q, t) in enumerate(tr)))
    target = sk[-1][0]
    reached = next((t for q, t in ours if q <= target), None)
    print(f"scikit-learn's final median perplexity {target:.1f} after {sk[-1][1]:.1f} s; emdsl "
          + (f"reaches it at {reached:.1f} s ({reached / sk[-1][1]:.2f} x)"
             if reached is not None else "does not reach it"))


def _sklearn(a, train, K, seed, quality):
    """[(perplexity, seconds)] after each pass of scikit-learn's online LDA."""
    from sklearn.decomposition import LatentDirichletAllocation
    sk = LatentDirichletAllocation(n_components=K, learning_method="online",
                                   batch_size=a.batch_size, learning_decay=a.kappa,
                                   learning_offset=a.delay, doc_topic_prior=0.1,
                                   topic_word_prior=0.01, total_samples=train.shape[0],
                                   random_state=seed)
    trace, clock = [], 0.0
    for p in range(a.passes):
        t0 = time.perf_counter()
        sk.partial_fit(train)   # one pass over the documents in minibatches
        clock += time.perf_counter() - t0
        trace.append((quality(sk.components_.copy()), clock))
    return trace


def _ours(a, model, doc, word, train, K, seed, quality):
    """[(perplexity, seconds)] after each pass of emdsl's SVI (evaluation excluded)."""
    ours = {"eval": 0.0, "trace": []}
    t0 = time.perf_counter()

    def watch(it, value, params):
        e0 = time.perf_counter()
        q = quality(params["phi.concentration"])
        ours["trace"].append((q, e0 - t0 - ours["eval"]))
        ours["eval"] += time.perf_counter() - e0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(doc=doc, w=word, D=train.shape[0], V=train.shape[1], K=K, alpha=0.1,
                  eta=0.01, seed=seed, method="svi", batch_size=a.batch_size, kappa=a.kappa,
                  delay=a.delay, max_iter=a.passes, tol=0.0, callback=watch)
    return ours["trace"]

if __name__ == "__main__":
    main()
