"""Simulation with covariates (``emdsl sample/check --data``) and the checks of
``runtime/sample.py``: validated dims, neutral hints, keyword parameterisations."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.cli import main
from emdsl.errors import EmmDataError

MODELS = Path(__file__).resolve().parents[1] / "models"
TOPICS = MODELS / "topics_em.emm"
GMM = MODELS / "gaussian_mixture.emm"


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


# ----------------------------------------------------------------------------- sample --data
def test_sample_reads_covariates_and_dims_from_an_ldac_file(tmp_path, capsys):
    ldac = tmp_path / "small.ldac"
    ldac.write_text("3 0:2 1:1 4:3\n2 2:1 3:2\n1 4:5\n")  # 3 documents, 14 tokens, 5 words
    target = tmp_path / "sim.npz"
    status, out, err = run(capsys, "sample", TOPICS, "--set", "K=2", "--data", ldac,
                           "-o", target)
    assert status == 0, err
    with np.load(target) as z:
        assert (int(z["T"]), int(z["D"]), int(z["V"])) == (14, 3, 5)
        np.testing.assert_array_equal(z["doc"], np.repeat([0, 1, 2], [6, 3, 5]))
        assert z["doc"].dtype.kind == "i" and z["w"].shape == (14,)
        assert z["w"].min() >= 0 and z["w"].max() < 5
        assert z["theta"].shape == (3, 2) and z["phi"].shape == (2, 5)
    status, out, err = run(capsys, "fit", TOPICS, "--data", target, "--max-iter", "2")
    assert status == 0, err
    assert "phi  shape (2, 5)" in out


def test_sample_reads_covariates_from_csv_and_npz(tmp_path, capsys):
    csv = tmp_path / "docs.csv"
    csv.write_text("doc\n0\n0\n1\n2\n2\n2\n")
    target = tmp_path / "sim.csv"
    status, _, err = run(capsys, "sample", TOPICS, "--set", "K=2", "V=7", "D=3", "--data", csv,
                         "-o", target)
    assert status == 0, err
    lines = target.read_text().splitlines()
    assert lines[0] == "doc,w,c" and [r.split(",")[0] for r in lines[1:]] == list("001222")
    npz = tmp_path / "docs.npz"
    np.savez(npz, doc=np.array([1, 0, 1, 1]), D=2)
    status, _, err = run(capsys, "sample", TOPICS, "--set", "K=2", "V=4", "--data", npz,
                         "-o", tmp_path / "sim.npz")
    assert status == 0, err
    with np.load(tmp_path / "sim.npz") as z:
        assert (int(z["T"]), int(z["D"])) == (4, 2) and z["w"].shape == (4,)


def test_sample_data_must_agree_with_set(tmp_path, capsys):
    csv = tmp_path / "docs.csv"
    csv.write_text("doc\n0\n1\n1\n")
    status, _, err = run(capsys, "sample", TOPICS, "--set", "K=2", "V=4", "D=2", "T=5",
                         "--data", csv, "-o", tmp_path / "s.npz")
    assert status == 1
    assert "dim 'T' is given twice with different values" in err
    assert "T = 3 (from doc.shape[0] in docs.csv)" in err and "T = 5 (given as --set T=5)" in err
    status, _, err = run(capsys, "sample", TOPICS, "--set", "K=2", "V=4", "D=1",
                         "--data", csv, "-o", tmp_path / "s.npz")
    assert status == 1 and "'doc'" in err and "outside 0..0" in err
    assert list(tmp_path.iterdir()) == [csv]


def test_sample_without_the_covariate_says_how_to_give_it(tmp_path, capsys):
    status, _, err = run(capsys, "sample", TOPICS, "--set", "T=10", "D=2", "V=4",
                         "-o", tmp_path / "s.npz")
    assert status == 1
    assert "covariate(s) doc" in err and "--data FILE" in err and "doc=array" not in err


def test_sample_data_for_a_model_without_covariates(tmp_path, capsys):
    status, _, err = run(capsys, "sample", GMM, "--set", "N=5", "--data",
                         MODELS / "data" / "faithful.csv", "-o", tmp_path / "s.npz")
    assert status == 1 and "no covariates" in err


def test_check_with_covariates_from_a_file(tmp_path, capsys):
    npz = tmp_path / "docs.npz"
    np.savez(npz, doc=np.repeat(np.arange(6), 1500))
    status, out, err = run(capsys, "check", TOPICS, "--set", "K=2", "V=6", "D=6",
                           "--data", npz, "--seed", "1")
    assert status == 0, out + err
    assert "fitted doc (9000,), w (9000,)" in out and "recovered" in out


# ----------------------------------------------------------------------------- runtime/sample.py
NORMAL_KW = """
model NormalKeyword
dim N
dim K = 2
data   x[N]      : real
param  weights   : simplex[K]
param  mu[K]     : real
param  s[K]      : pos
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], KEYWORD=s[z[n]])
}
"""

MVN_PREC = """
model PrecisionMixture
dim N, D
dim K = 2
data   x[N]      : real[D]
param  weights   : simplex[K]
param  mu[K]     : real[D]
param  Lam[K]    : spd[D]
latent z[N]      : cat[K]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ MvNormal(mu[z[n]], prec=Lam[z[n]])
}
"""


def _normal(keyword):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return emdsl.loads(NORMAL_KW.replace("KEYWORD", keyword), name=f"normal_{keyword}")


@pytest.mark.parametrize("keyword, value, variance", [("sd", 2.0, 4.0), ("prec", 4.0, 0.25)])
def test_normal_keywords_follow_the_family_table(keyword, value, variance):
    m = _normal(keyword)
    params = {"weights": [1.0, 0.0], "mu": [0.0, 0.0], "s": [value, 1.0]}
    x = m.sample(params=params, seed=0, N=20000)["x"]
    assert np.var(x) == pytest.approx(variance, rel=0.05)


def test_sampler_uses_the_alternatives_table(monkeypatch):
    m = _normal("sd")
    fam = next(f.family for f in m.checked.factors if f.target == "x")
    monkeypatch.setitem(fam.alternatives, "sd", ("var", lambda v: 100 * v ** 2))
    x = m.sample(params={"weights": [1.0, 0.0], "mu": [0.0, 0.0], "s": [1.0, 1.0]}, seed=0,
                 N=5000)["x"]
    assert np.var(x) == pytest.approx(100.0, rel=0.1)


def test_mvnormal_precision_is_inverted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = emdsl.loads(MVN_PREC, name="mvn_prec")
    cov = np.array([[1.0, 0.6], [0.6, 2.0]])
    lam = np.stack([np.linalg.inv(cov), np.eye(2)])
    x = m.sample(params={"weights": [1.0, 0.0], "mu": np.zeros((2, 2)), "Lam": lam}, seed=0,
                 N=20000, D=2)["x"]
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.08)


@pytest.mark.parametrize("bad", [0, -2, 2.5, float("nan"), "3", True, np.array([3, 4])])
def test_sample_dims_are_validated(bad):
    m = emdsl.load(GMM)
    params = {"weights": [0.5, 0.5], "mu": np.zeros((2, 2)), "Sigma": np.stack([np.eye(2)] * 2)}
    with pytest.raises(EmmDataError) as info:
        m.sample(params=params, seed=0, N=bad, D=2, K=2)
    assert "dim 'N' must be a positive integer" in info.value.msg
    assert f"N = {bad!r}" in info.value.msg or "N = array(" in info.value.msg
    m.sample(params=params, seed=0, N=np.int64(3), D=2.0, K=np.array(2))  # these are fine


def test_sample_hints_are_neutral():
    m = emdsl.load(TOPICS)
    with pytest.raises(EmmDataError) as info:
        m.sample(params={"theta": np.full((2, 2), 0.5), "phi": np.full((2, 3), 1 / 3)},
                 T=4, D=2, K=2, V=3)
    assert "covariate 'doc'" in info.value.msg
    assert info.value.hint == "give the covariate 'doc'"
    with pytest.raises(EmmDataError) as info:
        m.sample(params={"phi": np.full((2, 3), 1 / 3)}, doc=np.array([0, 1]), D=2, K=2, V=3)
    assert "param 'theta'" in info.value.msg and "params={" not in info.value.format()


def test_sample_reads_dims_off_covariates_and_rejects_unknown_names():
    m = emdsl.load(TOPICS)
    params = {"theta": np.full((2, 2), 0.5), "phi": np.full((2, 3), 1 / 3)}
    sim = m.sample(params=params, doc=np.array([0, 1, 1]), D=2, K=2, V=3)
    assert sim["w"].shape == (3,)
    with pytest.raises(EmmDataError, match="'t' is not a dim, hyper or covariate"):
        m.sample(params=params, doc=np.array([0, 1, 1]), D=2, K=2, V=3, t=3)
    with pytest.raises(EmmDataError, match="given twice with different values"):
        m.sample(params=params, doc=np.array([0, 1, 1]), T=4, D=2, K=2, V=3)
