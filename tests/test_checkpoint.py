"""Checkpoint and resume: a fit resumed from its checkpoint gives the bit-identical result
of an uninterrupted one, for batch, stepwise and incremental EM, in memory and over a
stream, and for a CLI fit killed with SIGKILL mid-run; bad checkpoints are clear errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def gmm():
    return emdsl.load(MODELS / "gaussian_mixture.emm", use_cache=False)


def _blobs(seed=0, n=1500):
    rng = np.random.default_rng(seed)
    mu = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    return mu[rng.integers(3, size=n)] + rng.normal(size=(n, 2))


def _fit(m, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m.fit(*a, **kw)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("method, extra", [("batch", {}), ("stepwise", {"batch_size": 100}),
                                           ("incremental", {"batch_size": 400})])
def test_a_resumed_fit_is_bit_identical(gmm, tmp_path, method, extra, stream):
    x = _blobs()
    data = ((emdsl.chunks({"x": x}, rows=500),), {}) if stream else ((), {"x": x})
    kw = dict(K=3, seed=0, method=method, tol=0.0, **extra, **data[1])
    full = _fit(gmm, *data[0], max_iter=9, **kw)
    path = tmp_path / "run.npz"
    _fit(gmm, *data[0], max_iter=4, checkpoint=path, checkpoint_every=2, **kw)
    resumed = _fit(gmm, *data[0], max_iter=9, resume=path, **kw)
    assert np.array_equal(resumed.elbo, full.elbo)
    for k in full.params:
        assert np.array_equal(resumed.params[k], full.params[k]), k


@pytest.mark.parametrize("method", ["batch", "stepwise", "svi"])
def test_a_cli_fit_killed_with_sigkill_resumes_bit_identically(tmp_path, method):
    passes = {"batch": 300, "stepwise": 5, "svi": 8}[method]   # a run of a second or two
    if method == "svi":   # LDA on Reuters, minibatches of 32 documents
        model, data, sets = MODELS / "lda.emm", MODELS / "data" / "reuters.ldac", "K=10"
    else:
        x = _blobs(1, n=50000 if method == "batch" else 20000)
        np.save(tmp_path / "x.npy", x)
        model, data, sets = MODELS / "gaussian_mixture.emm", tmp_path / "x.npy", "K=3"
    base = [sys.executable, "-m", "emdsl", "fit", str(model), "--data", str(data), "--set",
            sets, "--seed", "0", "--tol", "0", "--max-iter", str(passes), "--method", method]
    if method != "batch":
        base += ["--batch-size", "50" if method == "stepwise" else "32"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(base + ["-o", str(tmp_path / "full.json")], check=True, env=env,
                   capture_output=True)
    ck = tmp_path / "ck.npz"
    proc = subprocess.Popen(base + ["--checkpoint", str(ck), "-o", str(tmp_path / "x.json")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)   # right after a checkpoint: mid-run
    proc.wait()
    if (tmp_path / "x.json").exists():
        pytest.skip("the fit finished before it could be killed (machine too fast)")
    subprocess.run(base + ["--resume", str(ck), "-o", str(tmp_path / "resumed.json")],
                   check=True, env=env, capture_output=True)
    assert (tmp_path / "resumed.json").read_bytes() == (tmp_path / "full.json").read_bytes()
    assert json.loads((tmp_path / "resumed.json").read_text())["n_iter"] == passes


def test_bad_checkpoints_are_clear_errors(gmm, tmp_path):
    x = _blobs(2, n=300)
    path = tmp_path / "run.npz"
    _fit(gmm, x=x, K=3, seed=0, max_iter=2, checkpoint=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its method is 'batch'"):
        gmm.fit(x=x, K=3, seed=0, method="stepwise", resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its number of items is 300"):
        gmm.fit(x=x[:200], K=3, seed=0, resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its fit option seed is 0, this "
                       "fit's is 1"):
        gmm.fit(x=x, K=3, seed=1, resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its fit option reg is 1e-06, this "
                       "fit's is 0.001"):
        gmm.fit(x=x, K=3, reg=1e-3, resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="holds 2 iterations and max_iter=1"):
        gmm.fit(x=x, K=3, max_iter=1, resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="init and resume both give"):
        gmm.fit(x=x, K=3, init={"mu": x[:3]}, resume=path)
    other = emdsl.load(MODELS / "gmm_identity_map.emm", use_cache=False)
    with pytest.raises(emdsl.errors.EmmDataError, match="its model is 'GaussianMixture'"):
        other.fit(x=x, K=3, seed=0, resume=path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(emdsl.errors.EmmDataError, match="truncated or corrupt"):
        gmm.fit(x=x, K=3, seed=0, resume=cut)
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(emdsl.errors.EmmDataError, match="truncated or corrupt|not an emdsl"):
        gmm.fit(x=x, K=3, seed=0, resume=tmp_path / "plain.npz")
    with pytest.raises(emdsl.errors.EmmDataError, match="does not exist"):
        gmm.fit(x=x, K=3, resume=tmp_path / "missing.npz")
    with pytest.raises(emdsl.errors.EmmDataError, match="checkpoint_every needs checkpoint"):
        gmm.fit(x=x, K=3, checkpoint_every=2)


def test_defaults_spelt_out_resume_as_left_out(gmm, tmp_path):
    """seed=0 and reg=1e-6 written out are the run that left them out."""
    x = _blobs(5, n=300)
    path = tmp_path / "run.npz"
    _fit(gmm, x=x, K=3, max_iter=2, checkpoint=path, tol=0.0)
    whole = _fit(gmm, x=x, K=3, max_iter=4, tol=0.0)
    resumed = _fit(gmm, x=x, K=3, max_iter=4, tol=0.0, seed=0, reg=1e-6, resume=path)
    np.testing.assert_array_equal(resumed.elbo, whole.elbo)


def test_a_checkpoint_that_recorded_defaults_as_none_resumes(gmm, tmp_path):
    """Earlier 0.2 builds recorded an option left out as None: it stands for its default."""
    x = _blobs(7, n=200)
    path = tmp_path / "run.npz"
    _fit(gmm, x=x, K=3, max_iter=2, tol=0.0, checkpoint=path)
    with np.load(path) as z:
        members = {k: z[k] for k in z.files}
    meta = json.loads(str(members["meta"]))
    meta["options"].update({k: None for k in ("seed", "reg", "local_iter", "batch_size")})
    members["meta"] = np.array(json.dumps(meta))
    np.savez(path, **members)
    whole = _fit(gmm, x=x, K=3, max_iter=4, tol=0.0)
    np.testing.assert_array_equal(_fit(gmm, x=x, K=3, max_iter=4, tol=0.0, resume=path).elbo,
                                  whole.elbo)
    with pytest.raises(emdsl.errors.EmmDataError, match="its fit option reg is 1e-06"):
        gmm.fit(x=x, K=3, max_iter=4, reg=1e-3, resume=path)


def test_a_checkpoint_past_the_default_max_iter_needs_max_iter(gmm, tmp_path):
    """Resumed without max_iter, the driver's default (100 passes) applies: a checkpoint
    of 101 passes is more than it asks for (it returned 101 passes, 'not converged in
    100')."""
    x = _blobs(6, n=200)
    path = tmp_path / "run.npz"
    opts = dict(K=3, method="stepwise", batch_size=100, tol=0.0)
    _fit(gmm, x=x, max_iter=101, checkpoint=path, checkpoint_every=101, **opts)
    with pytest.raises(emdsl.errors.EmmDataError, match="holds 101 iterations and "
                       "max_iter=100 asks for fewer \\(its default\\)"):
        gmm.fit(x=x, resume=path, **opts)
    assert _fit(gmm, x=x, resume=path, max_iter=102, **opts).n_iter == 102


def test_a_failed_write_leaves_the_previous_checkpoint(gmm, tmp_path, monkeypatch):
    x = _blobs(3, n=300)
    path = tmp_path / "run.npz"
    _fit(gmm, x=x, K=3, seed=0, max_iter=2, checkpoint=path)
    before = path.read_bytes()

    def broken(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(emdsl.errors.EmmDataError, match="cannot write checkpoint .* disk full"):
        _fit(gmm, x=x, K=3, seed=0, max_iter=3, checkpoint=path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]   # no temporary left


def test_a_checkpoint_of_other_dims_or_data_is_refused(gmm, tmp_path):
    x = _blobs(4, n=300)
    path = tmp_path / "run.npz"
    _fit(gmm, x=x, K=3, seed=0, max_iter=2, checkpoint=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its dims and hypers is .*'K': 3"):
        gmm.fit(x=x, K=4, seed=0, resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="its data is 'arrays in memory'"):
        gmm.fit(emdsl.chunks({"x": x}, rows=100), K=3, seed=0, method="batch", resume=path)
    with pytest.raises(emdsl.errors.EmmDataError, match="is a directory"):
        gmm.fit(x=x, K=3, checkpoint=tmp_path)
