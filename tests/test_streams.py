"""Data in chunks (emdsl.chunks): batch EM over a stream of chunks is batch EM in memory
(same start: params and objective to 1e-10) for every model of the generality tests and
the shipped ones that compile, from arrays, a .npy memmap and a CSV file read in pieces;
stepwise and incremental EM take streams too; malformed streams are clear errors."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
import test_engine_models as engine
import test_generality as generality

MODELS = Path(__file__).resolve().parents[1] / "models"


def _cases():
    out = {}
    for mod in (generality, engine):
        for name, case in mod.CASES.items():
            if name not in getattr(mod, "NOT_YET", {}):
                out[f"{mod.__name__}:{name}"] = case
    return out


CASES = _cases()


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _split_kwargs(m, kw):
    """(the items' data, the other keywords) of a fit's keyword arguments."""
    items, _ = m._items()
    return ({k: v for k, v in kw.items() if k in items},
            {k: v for k, v in kw.items() if k not in items})


@pytest.mark.parametrize("name", sorted(CASES))
def test_batch_em_over_chunks_is_batch_em_in_memory(name):
    case = CASES[name]
    m = generality.compiled(case)
    kw, _ = case.simulate(np.random.default_rng(3))
    items, rest = _split_kwargs(m, kw)
    if not items:   # documents of tokens: refused with a clear error (tested below)
        pytest.skip("data not indexed by the items' plate")
    start = _quiet(m.fit, **kw, seed=1, max_iter=1).params
    whole = _quiet(m.fit, **kw, init=start, max_iter=6, tol=0.0)
    n = len(next(iter(items.values())))
    streamed = _quiet(m.fit, emdsl.chunks(items, rows=n // 3 + 1), **rest, init=start,
                      max_iter=6, tol=0.0)
    np.testing.assert_allclose(streamed.elbo, whole.elbo, rtol=1e-10)
    for k, v in whole.params.items():
        np.testing.assert_allclose(streamed.params[k], v, rtol=1e-10,
                                   atol=1e-10 * np.abs(v).max(initial=1e-300), err_msg=k)


@pytest.fixture(scope="module")
def gmm():
    return emdsl.load(MODELS / "gaussian_mixture.emm", use_cache=False)


def _blobs(seed=0, n=900):
    rng = np.random.default_rng(seed)
    mu = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    return mu[rng.integers(3, size=n)] + rng.normal(size=(n, 2))


def test_a_memmap_and_a_csv_file_in_pieces(gmm, tmp_path):
    x = _blobs()
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "x.csv").write_text("x_1,x_2\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in x))
    start = _quiet(gmm.fit, x=x, K=3, seed=0, max_iter=1).params
    whole = _quiet(gmm.fit, x=x, K=3, init=start, max_iter=5, tol=0.0)
    for src in ("x.npy", "x.csv"):
        r = _quiet(gmm.fit, emdsl.chunks(tmp_path / src, rows=250), K=3, init=start,
                   max_iter=5, tol=0.0)
        np.testing.assert_allclose(r.elbo, whole.elbo, rtol=1e-10, err_msg=src)
        np.testing.assert_allclose(r.params["mu"], whole.params["mu"], rtol=1e-10)
        assert r.posterior["z"].shape == (900, 3)


def test_stepwise_and_incremental_em_over_a_stream(gmm):
    x = _blobs(1, n=3000)
    stream = emdsl.chunks({"x": x}, rows=700)
    whole = _quiet(gmm.fit, x=x, K=3, seed=0, max_iter=300, tol=1e-10)
    for method in ("stepwise", "incremental"):
        r = _quiet(gmm.fit, stream, K=3, seed=0, method=method, batch_size=200, max_iter=8,
                   tol=1e-10)
        assert len(r.elbo) == 8
        assert abs(r.elbo[-1] - whole.elbo[-1]) / len(x) < 1e-3, method


def test_a_list_of_chunks_and_a_function_giving_them(gmm):
    x = _blobs(2, n=600)
    parts = [{"x": x[:250]}, {"x": x[250:]}]
    start = _quiet(gmm.fit, x=x, K=3, seed=0, max_iter=1).params
    whole = _quiet(gmm.fit, x=x, K=3, init=start, max_iter=3, tol=0.0)
    for stream in (parts, lambda: iter(parts)):
        r = _quiet(gmm.fit, stream, K=3, init=start, max_iter=3, tol=0.0)
        np.testing.assert_allclose(r.elbo, whole.elbo, rtol=1e-10)


@pytest.mark.parametrize("stream, words", [
    ([{"x": np.zeros((5, 2))}, {"x": np.zeros((5, 3))}],
     "chunk 2 of the stream disagrees with chunk 1: dim 'D' is 3 there and 2"),
    ([{"x": np.zeros((5, 2))}, {"x": np.zeros((0, 2))}], "chunk 2 of the stream is empty"),
    ([{"y": np.zeros(5)}], "chunk 1 of the stream: 'y' is not a data"),
    ([{"x": np.zeros((5, 2))}, {"x": np.array([[0.0, np.nan]])}],
     r"chunk 2 of the stream: data 'x' has 1 NaN/inf value\(s\), the first at x\[0, 1\]"),
    ([np.zeros((5, 2))], "chunk 1 of the stream is a ndarray, not a dict"),
    ([], "the data stream holds no chunks"),
    (3.5, "chunks: cannot stream a float"),
])
def test_malformed_streams_are_clear_errors(gmm, stream, words):
    with pytest.raises(emdsl.errors.EmmDataError, match=words):
        gmm.fit(stream, K=3)


@pytest.mark.parametrize("keywords, chunks, words", [
    ({"x": np.zeros((10, 2))}, None, "'x' is given both as a keyword and in chunk 1"),
    ({"N": 7}, None, "dim 'N' is given as 7 but the stream .* holds 10 items"),
    ({}, [{"alpha": 2.0}, {"alpha": 3.0}],
     "chunk 2 of the stream disagrees with chunk 1: the hyper 'alpha' has other values"),
    ({"alpha": 2.0}, [{"alpha": 3.0}, {}], "'alpha' is given both as a keyword and in chunk 1"),
])
def test_values_given_twice_or_differing_between_chunks_are_errors(keywords, chunks, words):
    """Nothing is silently dropped: a keyword the chunks also hold (with other values), a
    number of items the stream contradicts, a hyper that differs between chunks."""
    m = emdsl.load(MODELS / "gmm_identity_map.emm")
    x = np.random.default_rng(0).normal(size=(10, 2))
    parts = [{"x": x[:5]}, {"x": x[5:]}]
    if chunks:
        parts = [{**p, **c} for p, c in zip(parts, chunks)]
    with pytest.raises(emdsl.errors.EmmDataError, match=words):
        m.fit(parts, **keywords)


def test_the_same_values_given_twice_are_taken():
    m = emdsl.load(MODELS / "gmm_identity_map.emm")
    x = np.random.default_rng(0).normal(size=(10, 2))
    parts = [{"x": x[:5], "alpha": 3.0}, {"x": x[5:], "alpha": 3.0}]
    start = {"weights": np.full(3, 1 / 3), "mu": x[:3]}
    r = _quiet(m.fit, parts, N=10, alpha=3.0, init=start, max_iter=5)
    whole = _quiet(m.fit, x=x, alpha=3.0, init=start, max_iter=5)
    np.testing.assert_allclose(r.elbo, whole.elbo, rtol=1e-10)


def test_minibatches_of_grouped_data_are_refused():
    """Stepwise and incremental EM update LDA's topics from part of the items; a stream
    of whole documents takes batch CAVI (tests/test_grouped.py), in memory SVI."""
    m = emdsl.load(MODELS / "lda.emm", use_cache=False)
    doc, w = np.repeat(np.arange(4), 5), np.arange(20) % 7
    for method in ("stepwise", "incremental"):
        with pytest.raises(emdsl.errors.EmmDataError, match="factor per group of items"):
            m.fit([{"doc": doc, "w": w}], D=4, V=7, K=2, method=method)
    with pytest.raises(emdsl.errors.EmmDataError, match="'svi' takes the data in memory"):
        m.fit([{"doc": doc, "w": w}], D=4, V=7, K=2, method="svi")


def test_the_cli_streams_a_file(tmp_path, capsys):
    from emdsl.cli import main
    x = _blobs(3, n=400)
    (tmp_path / "x.csv").write_text("x_1,x_2\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in x))
    code = main(["fit", str(MODELS / "gaussian_mixture.emm"), "--data",
                 str(tmp_path / "x.csv"), "--set", "K=3", "--chunk-rows", "100",
                 "--method", "stepwise", "--batch-size", "50", "--max-iter", "2"])
    assert code == 0
    assert "n_iter 2" in capsys.readouterr().out


def test_a_one_shot_iterator_is_a_clear_error(gmm):
    it = iter([{"x": _blobs(4, n=100)}])
    with pytest.raises(emdsl.errors.EmmDataError, match="gave no chunks when read again"):
        gmm.fit(lambda: it, K=3)


def test_long_data_report_every_bad_value(gmm):
    x = _blobs(5, n=140000)
    x[[10, 100000, 139999], 0] = np.nan
    with pytest.raises(emdsl.errors.EmmDataError, match=r"has 3 NaN/inf value\(s\), the first "
                       r"at x\[10, 0\]"):
        gmm.fit(x=x, K=3)


UNIGRAMS_AND_LENGTHS = """
model UnigramsAndLengths
dim T, D, V
dim K = 2
data   doc[T] : cat[D]
data   w[T]   : cat[V]
data   nl[D]  : count
param  weights : simplex[K]
param  phi[K]  : simplex[V]
param  rate[K] : pos
latent z[D]    : cat[K]
for d in 1:D {
    z[d] ~ Categorical(weights)
    nl[d] ~ Poisson(rate[z[d]])
}
for t in 1:T { w[t] ~ Categorical(phi[z[doc[t]]]) }
"""


def test_data_pointing_into_the_items_from_another_plate():
    """Items (documents, a count each) with tokens that point into them (doc[T] : cat[D]):
    online EM in memory cuts the items, not the tokens - a clear error, not scipy's
    index error; a stream must carry the pointers with the items' data (then it is batch
    EM in memory, same start); the pointers as keywords beside a stream are an error."""
    m = emdsl.loads(UNIGRAMS_AND_LENGTHS, name="unigrams_lengths.emm", use_cache=False)
    rng = np.random.default_rng(0)
    D, V = 30, 6
    nl = rng.poisson(6, D) + 1
    doc = np.repeat(np.arange(D), nl)
    w = rng.integers(0, V, len(doc))
    start = {"weights": np.full(2, 0.5), "phi": rng.dirichlet(np.ones(V), 2),
             "rate": np.array([4.0, 9.0])}
    for method in ("stepwise", "incremental"):
        with pytest.raises(emdsl.errors.EmmDataError, match="doc points into the items"):
            m.fit(doc=doc, w=w, nl=nl, D=D, V=V, method=method, batch_size=10)
    with pytest.raises(emdsl.errors.EmmDataError, match="doc points into the items"):
        m.fit(emdsl.chunks({"nl": nl}, rows=10), doc=doc, w=w, D=D, V=V)
    whole = _quiet(m.fit, doc=doc, w=w, nl=nl, D=D, V=V, init=start, max_iter=8, tol=0)
    chunked = _quiet(m.fit, emdsl.chunks({"doc": doc, "w": w, "nl": nl}, rows=40), D=D, V=V,
                     init=start, max_iter=8, tol=0)
    np.testing.assert_allclose(chunked.elbo, whole.elbo, rtol=1e-10)
    for k, v in whole.params.items():
        np.testing.assert_allclose(chunked.params[k], v, rtol=1e-9, atol=1e-12)


def test_a_first_chunk_of_fewer_items_than_components_is_not_the_whole_start(gmm):
    """The start is drawn from the leading chunks up to enough items, not from a first
    chunk of two items (which left two of three components on nothing)."""
    x = _blobs(seed=3)
    parts = [{"x": x[:2]}] + [{"x": x[i:i + 100]} for i in range(2, len(x), 100)]
    streamed = _quiet(gmm.fit, parts, K=3, seed=0, max_iter=300)
    whole = _quiet(gmm.fit, x=x, K=3, seed=0, n_init=3, max_iter=300)
    assert streamed.elbo[-1] == pytest.approx(whole.elbo[-1], rel=1e-6)
    assert np.all(streamed.params["weights"] > 0.2)
