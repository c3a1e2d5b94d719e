"""Additive statistics: the E-step over a chunk returns sums over its items, so the
statistics of three random chunks (prepared with the fit's one centre) add up to those of
the whole data set, and the M-step from them gives the same params -- for every model in
``models/`` that compiles and every model of the generality tests."""
from __future__ import annotations

from functools import reduce
from pathlib import Path

import numpy as np
import pytest

import test_engine_models as engine
import test_generality as generality
from test_sample import CASES as SAMPLED
from test_sample import model as shipped


def _split(m, kw, rng, parts=3):
    """The data of ``kw`` in ``parts`` random chunks of the latent's plate (dims adjusted)."""
    cm = m.checked
    z = next(v for v in cm.vars.values() if v.role == "latent" and v.kind == "cat")
    size = z.shape[0].id
    b = m._bind(kw)
    data, h = b.data, {**b.dims, **b.hypers}
    n = h[size]
    items = [v.name for v in cm.vars.values() if v.role == "data" and v.shape
             and getattr(v.shape[0], "id", None) == size]
    idx = rng.permutation(n)
    out = []
    for part in np.array_split(idx, parts):
        chunk = {k: (np.asarray(v)[part] if k in items else v) for k, v in data.items()}
        out.append((chunk, {**h, size: len(part)}))
    return data, h, out


def _check_additive(m, kw, params, seed=0):
    mod = m.module
    data, h, chunks = _split(m, kw, np.random.default_rng(seed))
    st = mod.prepare(data, h)
    _, whole, loglik = mod.e_step(st, params, h)
    pieces = []
    total = 0.0
    for chunk, hc in chunks:
        stc = mod.prepare(chunk, hc, st["centre"])
        _, ess, ll = mod.e_step(stc, params, hc)
        pieces.append(ess)
        total += ll
    merged = reduce(mod.merge_stats, pieces)
    assert set(merged) == set(whole)
    # rounding is relative to the size of the summands, which a sum of centred values
    # (~0) does not show: the scale is the largest statistic of the whole data set
    scale = max(float(np.abs(np.asarray(v, float)).max(initial=0.0)) for v in whole.values())
    for key in whole:
        a, b = np.asarray(merged[key], float), np.asarray(whole[key], float)
        bound = 1e-10 * max(np.abs(b).max(initial=0.0), 1e-3 * scale, 1e-300)
        assert np.abs(a - b).max(initial=0.0) <= bound, f"{key}: {a} vs {b}"
    assert total == pytest.approx(loglik, rel=1e-10)
    new_whole = mod.m_step(whole, params, h, 1e-6)
    new_merged = mod.m_step(merged, params, h, 1e-6)
    for name in new_whole:
        np.testing.assert_allclose(new_merged[name], new_whole[name], rtol=1e-9, atol=1e-12,
                                   err_msg=f"M-step of {name} from merged chunks")


@pytest.mark.parametrize("name", sorted(SAMPLED))
def test_shipped_models_are_additive(name):
    dims, true, _ = SAMPLED[name]
    m = shipped(name)
    sim = m.sample(params=true, seed=1, **{**dims, "N": 900})
    kw = {**{v: sim[v] for v in m.module.DATA}, "K": dims["K"]}
    _check_additive(m, kw, {k: np.asarray(v, float) for k, v in true.items()})


def _cases():
    out = {}
    for mod in (generality, engine):
        for name, case in mod.CASES.items():
            if name in getattr(mod, "NOT_YET", {}):
                continue
            out[f"{mod.__name__}:{name}"] = case
    return out


CASES = _cases()
GROUPED = {"test_engine_models:mixture_of_unigrams"}  # chunks of documents: see below


@pytest.mark.parametrize("name", [n for n in CASES if n not in GROUPED])
def test_generality_models_are_additive(name):
    case = CASES[name]
    m = generality.compiled(case)
    kw, truth = case.simulate(np.random.default_rng(3))
    _check_additive(m, kw, generality.truth_params(m, truth))


def test_documents_in_chunks_are_additive():
    """One latent per document: chunks of whole documents, their ids renumbered."""
    case = engine.CASES["mixture_of_unigrams"]
    m = generality.compiled(case)
    kw, truth = case.simulate(np.random.default_rng(3))
    params = generality.truth_params(m, truth)
    mod = m.module
    b = m._bind(kw)
    h = {**b.dims, **b.hypers}
    st = mod.prepare(b.data, h)
    _, whole, loglik = mod.e_step(st, params, h)
    pieces, total = [], 0.0
    for docs in np.array_split(np.random.default_rng(0).permutation(h["D"]), 3):
        renumber = np.full(h["D"], -1)
        renumber[docs] = np.arange(len(docs))
        keep = renumber[kw["doc"]] >= 0
        chunk = {"doc": renumber[kw["doc"][keep]], "w": kw["w"][keep]}
        hc = {**h, "D": len(docs), "T": int(keep.sum())}
        _, ess, ll = mod.e_step(mod.prepare(chunk, hc, st["centre"]), params, hc)
        pieces.append(ess)
        total += ll
    merged = reduce(mod.merge_stats, pieces)
    for key in whole:
        np.testing.assert_allclose(merged[key], whole[key], rtol=1e-10, atol=1e-12)
    assert total == pytest.approx(loglik, rel=1e-10)


def test_variational_models_are_additive():
    """CAVI reads the same additive statistics: the Bayesian GMM's statistics of three
    random chunks add up to the whole data set's, and the update of the global factors
    from them is the same (the ELBO's data term too)."""
    import emdsl
    root = Path(__file__).resolve().parents[1]
    m = emdsl.load(root / "models" / "bayes_gmm.emm")
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 2)) + rng.integers(0, 3, 400)[:, None] * 3.0
    b = m._bind({"x": x})
    h = {**b.dims, **b.hypers}
    mod = m.module
    q = mod.init(mod.prepare({"x": x}, h), {"x": x}, h, rng, 0.0)
    _check_additive(m, {"x": x}, q)


def _check_blocks(m, kw, params):
    """The E-step block by block (blocks of 512 rows, the last one partial) equals the
    E-step in one block: responsibilities, every statistic and the log likelihood."""
    mod = m.module
    if not hasattr(mod, "BLOCK_BYTES"):
        pytest.skip("no dense statistics computed block by block")
    b = m._bind(kw)
    data, h = b.data, {**b.dims, **b.hypers}
    saved = mod.BLOCK_BYTES
    try:
        mod.BLOCK_BYTES = 1                             # the smallest blocks: 512 rows
        st = mod.prepare(data, h)
        many = mod.e_step(st, params, h)
        mod.BLOCK_BYTES = 2 ** 40                       # one block (up to 16384 rows)
        one = mod.e_step(mod.prepare(data, h), params, h)
    finally:
        mod.BLOCK_BYTES = saved
    if st["block"] >= st["n_rows"]:
        pytest.skip("fewer rows than one block")
    np.testing.assert_allclose(many[0], one[0], rtol=1e-10, atol=1e-13)
    assert set(many[1]) == set(one[1])
    for key in one[1]:
        np.testing.assert_allclose(many[1][key], one[1][key], rtol=1e-10, atol=1e-10,
                                   err_msg=key)
    assert many[2] == pytest.approx(one[2], rel=1e-12)


@pytest.mark.parametrize("name", [n for n in CASES if n not in GROUPED])
def test_blocks_add_up_to_one_pass(name):
    """Whatever the block size, the dense statistics (t(x) computed block by block into
    one reused buffer, every statistic of a block one matrix product) are the same."""
    case = CASES[name]
    m = generality.compiled(case)
    kw, truth = case.simulate(np.random.default_rng(5))
    _check_blocks(m, kw, generality.truth_params(m, truth))
