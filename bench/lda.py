#!/usr/bin/env python
"""emdsl's CAVI for models/lda.emm vs scikit-learn's batch LatentDirichletAllocation.

Run by hand (not in CI):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/lda.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/lda.py --corpus synthetic

Held-out perplexity by document completion (Wallach et al. 2009): 20 % of the documents
are held out; each held-out document's tokens are split in two halves at random, its topic
proportions are folded in on the first half (scikit-learn's ``transform`` with the topics
fixed, for both libraries' topics) and the second half is scored with the posterior means,
exp(-sum log sum_k theta_dk phi_kw / tokens).

Per-pass times are not comparable (scikit-learn iterates every document to convergence
inside a pass), so the comparison is the wall time to reach the perplexity scikit-learn
reaches after 10 passes (the median over the seeds), and the perplexity after --iters
passes of both. Evaluation time is excluded from emdsl's clock (a callback measures it).
With --same-start each seed's emdsl fit starts from that seed's scikit-learn topics (the
local optimum a start falls into varies more between seeds than between the libraries).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402


def reuters():
    """The document-term matrix (D, V) of models/data/reuters.ldac, read by emdsl."""
    from emdsl.io.datafiles import read_data_file
    model = emdsl.load(ROOT / "models" / "lda.emm")
    arrays, dims = read_data_file(ROOT / "models" / "data" / "reuters.ldac", model.checked)
    return sp.csr_matrix((np.ones(dims["T"]), (arrays["doc"], arrays["w"])),
                         shape=(dims["D"], dims["V"]))


def synthetic(docs=2000, vocab=5000, k=20, length=150, seed=0):
    """A corpus drawn from LDA itself (alpha 0.1, eta 0.01), Poisson(length) tokens each."""
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(vocab, 0.01), size=k)
    theta = rng.dirichlet(np.full(k, 0.1), size=docs)
    counts = np.stack([rng.multinomial(max(rng.poisson(length), 1), th @ phi) for th in theta])
    return sp.csr_matrix(counts)


def split(X, seed=0):
    """Train documents, and the held-out ones' two halves (fold-in, scored)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(X.shape[0])
    test, train = X[perm[: X.shape[0] // 5]], X[perm[X.shape[0] // 5:]]
    seen = np.asarray(train.sum(0)).ravel() > 0     # the vocabulary is the training one
    test = (test @ sp.diags(seen.astype(float))).tocoo()
    half = rng.binomial(test.data.astype(int), 0.5)
    fold = sp.csr_matrix((half, (test.row, test.col)), shape=test.shape)
    score = sp.csr_matrix((test.data - half, (test.row, test.col)), shape=test.shape)
    fold.eliminate_zeros(), score.eliminate_zeros()
    return train, fold, score


def completion(evaluator, lam, fold, score):
    """Document-completion perplexity of topics with concentrations ``lam`` (K, V)."""
    from scipy.special import digamma
    evaluator.components_ = lam
    evaluator.exp_dirichlet_component_ = np.exp(digamma(lam) - digamma(lam.sum(1, keepdims=True)))
    theta = evaluator.transform(fold)
    phi = lam / lam.sum(1, keepdims=True)
    s = score.tocoo()
    p = np.einsum("nk,kn->n", theta[s.row], phi[:, s.col])
    return float(np.exp(-(s.data * np.log(p)).sum() / s.data.sum()))


def tokens(X):
    X = X.tocoo()
    return np.repeat(X.row, X.data.astype(int)), np.repeat(X.col, X.data.astype(int))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", choices=("reuters", "synthetic"), default="reuters")
    ap.add_argument("--k", type=int, default=None, help="topics (10 on Reuters, 20 synthetic)")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds first-seed .. first-seed + seeds - 1 (scikit-learn's "
                         "random_state and emdsl's seed)")
    ap.add_argument("--same-start", action="store_true",
                    help="start emdsl from scikit-learn's initial topics of the same seed "
                         "(its Gamma(100, 1/100) draws): a paired comparison")
    a = ap.parse_args(argv)
    from sklearn.decomposition import LatentDirichletAllocation
    X = reuters() if a.corpus == "reuters" else synthetic()
    K = a.k or (10 if a.corpus == "reuters" else 20)
    alpha, eta = 0.1, 0.01
    train, fold, score = split(X)
    doc, word = tokens(train)
    print(f"{a.corpus}: {train.shape[0]} training documents, {train.shape[1]} words, "
          f"{len(doc)} tokens ({train.nnz} distinct pairs), K = {K}")

    def sklearn_fit(seed, iters):
        lda = LatentDirichletAllocation(n_components=K, learning_method="batch",
                                        max_iter=iters, doc_topic_prior=alpha,
                                        topic_word_prior=eta, random_state=seed)
        t0 = time.perf_counter()
        lda.fit(train)
        return lda, time.perf_counter() - t0

    evaluator = sklearn_fit(0, 1)[0]
    sk10, sk_end = [], []
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    for seed in seeds:
        lda, t = sklearn_fit(seed, 10)
        sk10.append((completion(evaluator, lda.components_, fold, score), t))
        lda, t_end = sklearn_fit(seed, a.iters)
        sk_end.append((completion(evaluator, lda.components_, fold, score), t_end))
    target = float(np.median([p for p, _ in sk10]))
    sk_time = float(np.median([t for _, t in sk10]))
    model = emdsl.load(ROOT / "models" / "lda.emm")
    ours = []
    for seed, (own, _) in zip(seeds, sk10):
        clock = {"eval": 0.0, "reached": None, "trace": [], "own": None}
        t0 = time.perf_counter()

        def watch(it, value, params):
            e0 = time.perf_counter()
            p = completion(evaluator, params["phi.concentration"], fold, score)
            elapsed = e0 - t0 - clock["eval"]
            clock["trace"].append((p, elapsed))
            if clock["reached"] is None and p <= target:
                clock["reached"] = elapsed
            if clock["own"] is None and p <= own:   # this seed's scikit-learn value
                clock["own"] = elapsed
            clock["eval"] += time.perf_counter() - e0

        start = {}
        if a.same_start:   # scikit-learn's _init_latent_vars: components_ ~ Gamma(100, 1/100)
            start = {"init": {"phi.concentration": np.random.RandomState(seed).gamma(
                100.0, 0.01, (K, train.shape[1]))}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = model.fit(doc=doc, w=word, D=train.shape[0], V=train.shape[1], K=K,
                            alpha=alpha, eta=eta, seed=seed, max_iter=a.iters, tol=0,
                            callback=watch, **start)
        total = time.perf_counter() - t0 - clock["eval"]
        final = completion(evaluator, res.posterior["phi"]["concentration"], fold, score)
        ours.append((clock["reached"], final, total, clock["trace"], clock["own"]))
    print(f"scikit-learn after 10 passes: perplexity {', '.join(f'{p:.1f}' for p, _ in sk10)}"
          f" (median {target:.1f}), time {', '.join(f'{t:.2f}' for _, t in sk10)} s")
    print(f"scikit-learn after {a.iters} passes: perplexity "
          f"{', '.join(f'{p:.1f}' for p, _ in sk_end)}, time "
          f"{', '.join(f'{t:.2f}' for _, t in sk_end)} s")
    for seed, (reached, final, total, trace, _) in zip(seeds, ours):
        path = " ".join(f"{i + 1}:{p:.0f}" for i, (p, _) in enumerate(trace[:10]))
        when = f"{reached:.2f} s ({reached / sk_time:.2f} x)" if reached is not None else "never"
        print(f"emdsl seed {seed}: reaches {target:.1f} at {when}; after {a.iters} iterations "
              f"{final:.1f} in {total:.2f} s; first iterations {path}")
    if a.same_start:   # paired: each start against scikit-learn's 10 passes from it
        paired = [(o[4] / t if o[4] is not None else None) for o, (_, t) in zip(ours, sk10)]
        print("paired (same start): time to that seed's scikit-learn 10-pass perplexity / "
              "its time: " + ", ".join("never" if r is None else f"{r:.2f}" for r in paired)
              + f"; reached by {sum(r is not None for r in paired)} of {len(paired)}")
    times = [r for r, *_ in ours if r is not None]
    print(f"median time to the target: emdsl {np.median(times) if times else float('nan'):.2f} s"
          f" vs scikit-learn {sk_time:.2f} s; final perplexity emdsl median "
          f"{np.median([o[1] for o in ours]):.1f} vs scikit-learn "
          f"{np.median([p for p, _ in sk_end]):.1f}")


if __name__ == "__main__":
    main()
