"""Batch EM on Dask (runtime/distributed.py): a LocalCluster with two worker processes
gives the in-memory batch result (same start) to 1e-10, for EM, variational EM, CAVI
without a discrete latent and LDA (local factors per document, kept on the workers); the
responsibilities come back as a dask array; what Dask does not take is a clear error."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

import emdsl  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                           dashboard_address=None)
        c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _same(spread, whole, latent):
    """The fit on the cluster is the fit in memory: objectives and params to 1e-10, the
    responsibilities of ``latent`` a dask array equal to 1e-10."""
    np.testing.assert_allclose(spread.elbo, whole.elbo, rtol=1e-10)
    for k, v in whole.params.items():
        np.testing.assert_allclose(spread.params[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
    resp = spread.posterior[latent]
    assert isinstance(resp, da.Array)
    np.testing.assert_allclose(resp.compute(), whole.posterior[latent], atol=1e-10)


def _blobs(seed=0, n=1800):
    rng = np.random.default_rng(seed)
    mu = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    return mu[rng.integers(3, size=n)] + rng.normal(size=(n, 2))


@pytest.mark.parametrize("name", ["gaussian_mixture", "bayes_gmm"])
def test_a_mixture_on_a_cluster_is_batch_em(client, name):
    m = emdsl.load(MODELS / f"{name}.emm", use_cache=False)
    x = _blobs()
    start = _quiet(m.fit, x=x, K=3, seed=0, max_iter=1).params
    whole = _quiet(m.fit, x=x, K=3, init=start, max_iter=8, tol=0.0)
    spread = _quiet(m.fit, x=da.from_array(x, chunks=(400, 2)), K=3, init=start, max_iter=8,
                    tol=0.0)
    _same(spread, whole, "z")


def test_bayesian_regression_on_a_cluster(client):
    m = emdsl.load(MODELS / "bayes_linreg.emm", use_cache=False)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1000, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.3, size=1000)
    start = _quiet(m.fit, X=X, y=y, max_iter=1).params   # (a start from all the data)
    whole = _quiet(m.fit, X=X, y=y, init=start, max_iter=10, tol=0.0)
    spread = _quiet(m.fit, X=da.from_array(X, chunks=(300, 3)), y=da.from_array(y, chunks=300),
                    init=start, max_iter=10, tol=0.0)
    np.testing.assert_allclose(spread.elbo, whole.elbo, rtol=1e-10)
    np.testing.assert_allclose(spread.params["w.mean"], whole.params["w.mean"], rtol=1e-10)


def test_what_dask_does_not_take_is_a_clear_error(client):
    m = emdsl.load(MODELS / "gaussian_mixture.emm", use_cache=False)
    x = da.from_array(_blobs(n=300), chunks=(100, 2))
    with pytest.raises(emdsl.errors.EmmDataError, match="dask arrays are fitted by batch EM"):
        m.fit(x=x, K=3, method="stepwise")
    lda = emdsl.load(MODELS / "lda.emm", use_cache=False)
    doc = np.repeat(np.arange(4), 5)
    w = np.arange(20) % 7
    shuffled = np.random.default_rng(0).permutation(20)   # documents split and unsorted
    with pytest.raises(emdsl.errors.EmmDataError, match="not sorted by group"):
        lda.fit(doc=da.from_array(doc[shuffled], chunks=10),
                w=da.from_array(w[shuffled], chunks=10), D=4, V=7, K=2)
    with pytest.raises(emdsl.errors.EmmDataError, match="w is a dask array but doc is not"):
        lda.fit(doc=doc, w=da.from_array(w, chunks=10), D=4, V=7, K=2)


def test_lda_on_a_cluster_is_batch_cavi(client):
    """Documents cut by the partitions (items sorted by document) are moved whole into one
    partition; every partition's local factors stay on its worker; a document without
    tokens is the client's; the fit is batch CAVI in memory to 1e-10."""
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    from emdsl.io.datafiles import read_data_file
    data, dims = read_data_file(MODELS / "data" / "reuters.ldac", m.checked)
    keep = data["doc"] != 17   # document 17 without tokens
    doc, w = data["doc"][keep], data["w"][keep]
    dims = {k: dims[k] for k in ("D", "V")}
    start = _quiet(m.fit, doc=doc, w=w, **dims, K=5, seed=0, max_iter=1).params
    whole = _quiet(m.fit, doc=doc, w=w, **dims, K=5, init=start, max_iter=5, tol=0.0)
    n = len(doc) // 5 + 1   # partitions that cut documents
    spread = _quiet(m.fit, doc=da.from_array(doc, chunks=n), w=da.from_array(w, chunks=n),
                    **dims, K=5, init=start, max_iter=5, tol=0.0)
    _same(spread, whole, "c")
