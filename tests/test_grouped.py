"""Batch CAVI over chunks of whole groups (runtime/grouped.py): a model with local
factors per document (LDA) fitted from a stream of documents (chunk dicts or an LDA-C
file read a few documents at a time) gives batch CAVI in memory from the same start to
1e-10; a group's local_fit does not depend on the groups fitted with it; what cannot be
streamed this way is a clear error; a resumed run is bit-identical."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.errors import EmmDataError

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def lda():
    return emdsl.load(MODELS / "lda.emm", use_cache=False)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _corpus(seed=0, D=60, V=40, K=3, empty=(7, 8, 59)):
    """Tokens (doc, w) of an LDA corpus in document order; the documents ``empty`` have
    no tokens."""
    rng = np.random.default_rng(seed)
    topics = rng.dirichlet(np.full(V, 0.2), size=K)
    doc, w = [], []
    for d in range(D):
        if d in empty:
            continue
        n = int(rng.integers(5, 40))
        z = rng.choice(K, size=n, p=rng.dirichlet(np.full(K, 0.3)))
        doc += [d] * n
        w += [int(rng.choice(V, p=topics[k])) for k in z]
    return np.array(doc), np.array(w), dict(D=D, V=V, K=K)


def _cut(doc, sizes):
    """Chunks of whole documents: ``sizes`` documents each, in turn."""
    starts = np.flatnonzero(np.r_[True, doc[1:] != doc[:-1]])
    out, i, j = [], 0, 0
    while i < len(starts):
        hi = starts[i + sizes[j % len(sizes)]] if i + sizes[j % len(sizes)] < len(starts) \
            else len(doc)
        out.append(slice(starts[i], hi))
        i += sizes[j % len(sizes)]
        j += 1
    return out


def _same(a, b, tol=1e-10):
    np.testing.assert_allclose(b.elbo, a.elbo, rtol=tol)
    for k, v in a.params.items():
        np.testing.assert_allclose(b.params[k], v, rtol=tol, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(np.asarray(b.posterior["c"]), a.posterior["c"], atol=1e-10)


@pytest.mark.parametrize("sizes", [[1], [7, 3, 11], [100]])
def test_a_stream_of_whole_documents_is_batch_cavi(lda, sizes):
    doc, w, dims = _corpus()
    start = _quiet(lda.fit, doc=doc, w=w, **dims, max_iter=1, seed=2).params
    whole = _quiet(lda.fit, doc=doc, w=w, **dims, init=start, max_iter=6, tol=0.0)
    chunks = [{"doc": doc[s], "w": w[s]} for s in _cut(doc, sizes)]
    streamed = _quiet(lda.fit, emdsl.chunks(chunks), **dims, init=start, max_iter=6, tol=0.0)
    _same(whole, streamed)
    # the empty documents are their prior (as in memory)
    np.testing.assert_allclose(streamed.params["theta.concentration"][[7, 8, 59]], 0.1)


def test_plain_cavi_and_convergence_over_a_stream(lda):
    """local_iter=0 (every factor once per iteration) and a run that converges: the
    result's params are those of the last E-step, as in memory."""
    doc, w, dims = _corpus(seed=1)
    start = _quiet(lda.fit, doc=doc, w=w, **dims, max_iter=1, seed=0).params
    chunks = [{"doc": doc[s], "w": w[s]} for s in _cut(doc, [5])]
    for opts in ({"local_iter": 0, "max_iter": 8, "tol": 0.0}, {"max_iter": 500, "tol": 1e-6}):
        whole = _quiet(lda.fit, doc=doc, w=w, **dims, init=start, **opts)
        streamed = _quiet(lda.fit, emdsl.chunks(chunks), **dims, init=start, **opts)
        assert streamed.converged == whole.converged and streamed.n_iter == whole.n_iter
        _same(whole, streamed, 1e-9)
    assert whole.converged
    assert np.all(np.diff(streamed.elbo) >= -1e-9 * np.abs(streamed.elbo[1:]))


def test_an_ldac_file_streamed_by_documents(lda, tmp_path):
    doc, w, dims = _corpus(seed=3)
    path = tmp_path / "corpus.ldac"
    lines = []
    for d in range(dims["D"]):
        ids, counts = np.unique(w[doc == d], return_counts=True)
        lines.append(" ".join([str(len(ids))] + [f"{i}:{c}" for i, c in zip(ids, counts)]))
    path.write_text("\n".join(lines) + "\n\n")   # a trailing blank line is allowed
    from emdsl.io.datafiles import read_data_file
    data, fixed = read_data_file(path, lda.checked)
    start = _quiet(lda.fit, **data, **fixed, K=3, max_iter=1, seed=0).params
    whole = _quiet(lda.fit, **data, **fixed, K=3, init=start, max_iter=5, tol=0.0)
    for rows in (1, 2, 25):   # rows=1 and 2: chunks of only empty documents are left out
        streamed = _quiet(lda.fit, emdsl.chunks(path, rows=rows), K=3, init=start,
                          max_iter=5, tol=0.0)
        np.testing.assert_allclose(streamed.elbo, whole.elbo, rtol=1e-10)
    with pytest.raises(EmmDataError, match="dim 'D' is given as 5"):
        lda.fit(emdsl.chunks(path, rows=10), K=3, D=5)
    (tmp_path / "bad.ldac").write_text("2 0:1 3:1\n\n1 2:1\n")
    with pytest.raises(EmmDataError, match="line 2 of 'bad.ldac' is not in LDA-C format"):
        lda.fit(emdsl.chunks(tmp_path / "bad.ldac", rows=10), K=3)


def test_the_cli_streams_an_ldac_file(tmp_path, capsys):
    from emdsl.cli import main
    rc = main(["fit", str(MODELS / "lda.emm"), "--data", str(MODELS / "data" / "reuters.ldac"),
               "--chunk-rows", "150", "--max-iter", "2", "--set", "K=4"])
    out = capsys.readouterr().out
    assert rc == 0 and "theta.concentration  shape (395, 4)" in out
    assert "final ELBO" in out   # CAVI's objective, named
    # reuters.tokens beside the file: each topic's ten most probable words
    top = out.split("top words of phi.concentration (reuters.tokens):\n")[1].splitlines()
    assert len(top) == 4 and all(len(line.split()) == 11 for line in top)
    rc = main(["fit", str(MODELS / "gaussian_mixture.emm"), "--data",
               str(MODELS / "data" / "faithful.csv"), "--max-iter", "3", "--verbose"])
    out = capsys.readouterr().out
    assert rc == 0 and out.count(" iter ") == 3   # a line per iteration off a terminal


def test_a_document_split_between_chunks_is_an_error(lda):
    doc, w, dims = _corpus()
    cut = int(np.flatnonzero(doc == 3)[2])   # inside document 3
    chunks = [{"doc": doc[:cut], "w": w[:cut]}, {"doc": doc[cut:], "w": w[cut:]}]
    with pytest.raises(EmmDataError, match="group 3 has items in partitions 1 and 2"):
        _quiet(lda.fit, emdsl.chunks(chunks), **dims, max_iter=2)
    with pytest.raises(EmmDataError, match="method 'stepwise'.*factor per group"):
        _quiet(lda.fit, emdsl.chunks(chunks), **dims, method="stepwise")


def test_a_resumed_stream_is_bit_identical(lda, tmp_path):
    doc, w, dims = _corpus(seed=4)
    chunks = emdsl.chunks([{"doc": doc[s], "w": w[s]} for s in _cut(doc, [9])])
    straight = _quiet(lda.fit, chunks, **dims, max_iter=6, tol=0.0, seed=5)
    ck = tmp_path / "run.npz"
    _quiet(lda.fit, chunks, **dims, max_iter=3, tol=0.0, seed=5, checkpoint=ck)
    resumed = _quiet(lda.fit, chunks, **dims, max_iter=6, tol=0.0, seed=5, resume=ck)
    np.testing.assert_array_equal(resumed.elbo, straight.elbo)
    for k, v in straight.params.items():
        np.testing.assert_array_equal(resumed.params[k], v)


def test_local_fit_of_some_groups_is_their_rows_of_the_whole(lda):
    """The property the partitions rest on: local_fit of any subset of the groups gives,
    bit for bit, those groups' rows of local_fit over all of them."""
    mod = lda.module
    doc, w, dims = _corpus(seed=6, D=80, empty=())
    h = {**dims, "T": len(doc), "alpha": 0.1, "eta": 0.01}
    rng = np.random.default_rng(0)
    st = mod.prepare({"doc": doc, "w": w}, h)
    p = mod.init(st, {"doc": doc, "w": w}, h, rng)
    p = mod.m_step(mod.e_step(st, mod.local_fit(st, p, h), h)[1], p, h)
    fitted, (resp, stats, loglik) = mod.local_fit(st, p, h, with_e_step=True)
    resp0, stats0, loglik0 = mod.e_step(st, fitted, h)   # (rows: distinct (doc, w) keys)
    assert loglik == pytest.approx(loglik0, rel=1e-13)
    np.testing.assert_allclose(resp, resp0, atol=1e-13)
    for k, v in stats0.items():
        np.testing.assert_allclose(stats[k], v, rtol=1e-12, atol=1e-12, err_msg=k)
    for tol in (1e-2, 1e-6):   # single- and double-precision sweeps
        whole = mod.local_fit(st, p, h, tol=tol)["theta.concentration"]
        for groups in (np.arange(0, 80, 3), np.arange(40, 47)):
            rows = np.isin(doc, groups)
            local = np.searchsorted(groups, doc[rows])
            hc = {**h, "T": int(rows.sum()), "D": len(groups)}
            stc = mod.prepare({"doc": local, "w": w[rows]}, hc)
            part = mod.local_fit(stc, {**p, "theta.concentration":
                                       p["theta.concentration"][groups]}, hc, tol=tol)
            np.testing.assert_array_equal(part["theta.concentration"], whole[groups])


def test_log_prior_splits_into_local_and_global_terms(lda):
    mod = lda.module
    rng = np.random.default_rng(1)
    h = {"D": 5, "V": 7, "K": 3, "T": 0, "alpha": 0.3, "eta": 0.05}
    p = {"theta.concentration": rng.gamma(2.0, size=(5, 3)),
         "phi.concentration": rng.gamma(2.0, size=(3, 7))}
    assert mod.LOCAL_STATS == ("C_c",)
    total = mod.log_prior(p, h)
    parts = mod.log_prior(p, h, only=("theta",)) + mod.log_prior(p, h, only=("phi",))
    assert total == pytest.approx(parts, rel=1e-14)
    assert mod.log_prior(p, h, only=("theta",)) < 0


def test_point_params_with_local_factors_over_a_stream_and_svi():
    """Variational EM with a param beside the per-document factors (LDA with phi a point
    estimate): a stream of documents moves the param as the in-memory fit does, a start
    from the first chunk keeps every word's probability positive, and SVI updates it."""
    src = (MODELS / "lda.emm").read_text().replace(
        "latent phi[K]      : simplex[V]", "param  phi[K]      : simplex[V]").replace(
        "for k in 1:K { phi[k] ~ Dirichlet(eta) }", "")
    m = emdsl.loads(src, name="lda_point_phi.emm", use_cache=False)
    assert m.module.ALGORITHM == "variational EM"
    doc, w, dims = _corpus(seed=7)
    start = _quiet(m.fit, doc=doc, w=w, **dims, max_iter=1, seed=0).params
    whole = _quiet(m.fit, doc=doc, w=w, **dims, init=start, max_iter=4, tol=0.0)
    chunks = emdsl.chunks([{"doc": doc[s], "w": w[s]} for s in _cut(doc, [6])])
    streamed = _quiet(m.fit, chunks, **dims, init=start, max_iter=4, tol=0.0)
    _same(whole, streamed)
    assert not np.allclose(streamed.params["phi"], start["phi"])
    own = _quiet(m.fit, chunks, **dims, max_iter=3, tol=0.0)   # its own start
    assert np.all(np.isfinite(own.elbo)) and np.all(np.diff(own.elbo) > -1e-9 * abs(own.elbo[-1]))
    svi = _quiet(m.fit, doc=doc, w=w, **dims, method="svi", batch_size=10, max_iter=2)
    assert np.all(np.isfinite(svi.elbo)) and not np.allclose(svi.params["phi"], 1.0 / dims["V"])


def test_resuming_a_finished_stream_returns_its_result(lda, tmp_path):
    doc, w, dims = _corpus(seed=8)
    chunks = emdsl.chunks([{"doc": doc[s], "w": w[s]} for s in _cut(doc, [9])])
    ck = tmp_path / "done.npz"
    done = _quiet(lda.fit, chunks, **dims, max_iter=3, tol=0.0, seed=1, checkpoint=ck)
    again = _quiet(lda.fit, chunks, **dims, max_iter=3, tol=0.0, seed=1, resume=ck)
    for k, v in done.params.items():
        np.testing.assert_array_equal(again.params[k], v)
