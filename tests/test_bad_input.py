"""Nothing silent, nothing crashes (issue 8, item 8): input that would overflow, exhaust
memory or break a stage is a clear error (exit code 1 in the CLI, never a traceback)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.cli import main
from emdsl.errors import EmmDataError, EmmSyntaxError

MODELS = Path(__file__).resolve().parents[1] / "models"
GMM = MODELS / "gaussian_mixture.emm"
SMALL = ("model M\ndim N\nparam mu : real\nparam w : simplex[2]\nlatent z[N] : cat[2]\n"
         "data x[N] : real\nfor n in 1:N {\n  z[n] ~ Categorical(w)\n"
         "  x[n] ~ Normal(mu, 1)\n}\n")


@pytest.fixture(scope="module")
def gmm():
    return emdsl.load(GMM)


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.err


def test_a_model_file_that_is_not_utf8_is_located(tmp_path, capsys):
    path = tmp_path / "m.emm"
    path.write_bytes(SMALL.replace("param mu", "# caf\xe9\nparam mu").encode("latin-1"))
    with pytest.raises(EmmSyntaxError, match="not UTF-8: byte 0xe9 at line 3, column 6"):
        emdsl.load(path)
    code, err = _cli(capsys, "compile", path)
    assert code == 1 and "m.emm:3:6" in err


def test_a_byte_order_mark_is_dropped(tmp_path):
    path = tmp_path / "m.emm"
    path.write_bytes(b"\xef\xbb\xbf" + SMALL.encode())
    assert emdsl.load(path, use_cache=False).name == "M"
    assert emdsl.loads("\ufeff" + SMALL, use_cache=False).name == "M"


def test_an_expression_too_deep_is_a_located_error(capsys, tmp_path):
    deep = SMALL.replace("Normal(mu, 1)", "Normal(" + " + ".join(["mu"] * 2000) + ", 1)")
    with pytest.raises(EmmSyntaxError, match="nested more than 300") as info:
        emdsl.loads(deep, name="deep.emm", use_cache=False)
    assert info.value.span.line == 9 and len(info.value.format()) < 1000
    fine = SMALL.replace("Normal(mu, 1)", "Normal(" + " + ".join(["mu"] * 250) + ", 1)")
    assert emdsl.loads(fine, use_cache=False).module.ALGORITHM == "EM"
    (tmp_path / "deep.emm").write_text(deep)
    assert _cli(capsys, "compile", tmp_path / "deep.emm")[0] == 1


def test_dims_are_checked_before_anything_is_allocated(gmm):
    x = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(EmmDataError, match="more components than items: z takes 21"):
        gmm.fit(x=x, K=21)
    with pytest.raises(EmmDataError, match=r"need .* GiB .*phi: 2,000,000,000,000 numbers"):
        _huge(x)
    with pytest.raises(EmmDataError, match="'x' is empty"):
        gmm.fit(x=np.zeros((0, 2)), K=2)


def _huge(x):
    """A model whose dims ask for more memory than any machine has."""
    src = ("model M\ndim N, V\ndim K = 2\nparam w : simplex[K]\nparam phi[K] : simplex[V]\n"
           "latent z[N] : cat[K]\ndata y[N] : cat[V]\nfor n in 1:N {\n"
           "  z[n] ~ Categorical(w)\n  y[n] ~ Categorical(phi[z[n]])\n}\n")
    m = emdsl.loads(src, use_cache=False)
    m.fit(y=np.arange(len(x)) % 3, V=10 ** 12)


def test_values_that_would_overflow(gmm, tmp_path, capsys):
    x = np.ones((10, 2))
    x[3, 1] = 1e308
    with pytest.raises(EmmDataError, match=r"x\[3, 1\] = 1e\+308 is beyond 1e100"):
        gmm.fit(x=x, K=2)
    pm = emdsl.load(MODELS / "poisson_mixture.emm")
    (tmp_path / "y.csv").write_text("y\n1\n2\n99999999999999999999999\n4\n")
    code, err = _cli(capsys, "fit", MODELS / "poisson_mixture.emm", "--data",
                     tmp_path / "y.csv", "--set", "K=2")
    assert code == 1 and "beyond 2^53" in err
    with pytest.raises(EmmDataError, match="beyond 2"):
        pm.fit(y=np.array([1.0, 2.0, 1e17]), K=2)


def test_ldac_files_that_would_need_absurd_memory(tmp_path, capsys):
    lda = MODELS / "lda.emm"
    (tmp_path / "ids.ldac").write_text("3 0:5 7:3 99999999999:4\n2 1:6 2:9\n")
    code, err = _cli(capsys, "fit", lda, "--data", tmp_path / "ids.ldac", "--set", "K=2")
    assert code == 1 and "phi.concentration" in err and "GiB" in err
    (tmp_path / "counts.ldac").write_text("1 0:3\n1 0:99999999999\n")
    code, err = _cli(capsys, "fit", lda, "--data", tmp_path / "counts.ldac", "--set", "K=2")
    assert code == 1 and "line 2 alone holds 99,999,999,999" in err


@pytest.mark.parametrize("name, value, words", [
    ("weights", [0.5, 0.7, 0.1], "must be a simplex"),
    ("Sigma", -np.ones((3, 2, 2)), "must hold symmetric positive definite"),
    ("mu", np.full((3, 2), np.nan), "has NaN or infinite"),
])
def test_init_values_are_validated(gmm, name, value, words):
    x = np.random.default_rng(1).normal(size=(30, 2))
    with pytest.raises(EmmDataError, match=f"init: '{name}' {words}"):
        gmm.fit(x=x, K=3, init={name: np.asarray(value)})


def test_init_of_a_variational_factor_is_validated():
    m = emdsl.load(MODELS / "bayes_gmm.emm")
    x = np.random.default_rng(1).normal(size=(30, 2))
    with pytest.raises(EmmDataError, match=r"init: 'mu.beta' must be > 0"):
        m.fit(x=x, K=3, init={"mu.beta": -np.ones(3)})


@pytest.mark.parametrize("wrong, right, words", [
    ("param  Sigma[K] : spd[D]", "param  Sigma[K] : spd[K]",
     "MvNormal's 'cov' \\(Sigma\\[z\\[n\\]\\]\\) has size K but 'x' has size D"),
    ("param  weights  : simplex[K]", "param  weights  : simplex[D]",
     "Categorical's 'p' \\(weights\\) has size D but 'z' has size K"),
])
def test_family_arguments_of_different_sizes_are_located_compile_errors(wrong, right, words):
    src = GMM.read_text().replace(wrong, right)
    with pytest.raises(emdsl.errors.EmmSemanticError, match=words) as info:
        emdsl.loads(src, name="m.emm", use_cache=False)
    assert info.value.span.line in (16, 17)


def test_check_runs_on_models_without_a_discrete_latent_or_with_real_covariates(capsys):
    """`emdsl check` draws real covariates itself, compares a variational fit's posterior
    means with the simulation's draws, and never crashes on a model without a discrete
    latent (recovery from draws of vague priors is not asserted)."""
    for name in ("bayes_linreg", "bayes_gmm"):
        code = main(["check", str(MODELS / f"{name}.emm")])
        out, err = capsys.readouterr()
        assert code in (0, 1) and "Traceback" not in err and "internal" not in err
        assert "max |estimate - truth|" in out


@pytest.mark.parametrize("kwargs, words", [
    ({"max_iters": 3}, "did you mean max_iter=...? (a fit option)"),
    ({"k": 2}, "did you mean K=...?"),
    ({"Seed": 1}, "did you mean seed=...? (a fit option)"),
    ({"local_iter": 5}, "fit option local_iter sets the sweeps of factors per group"),
])
def test_misspelt_names_and_options_that_do_nothing_are_named(gmm, kwargs, words):
    x = np.random.default_rng(0).normal(size=(30, 2))
    with pytest.raises(emdsl.EmmDataError) as info:
        gmm.fit(x=x, **kwargs)
    assert words in info.value.format()


def test_a_fit_option_given_to_predict_is_named_as_such(gmm):
    x = np.random.default_rng(0).normal(size=(30, 2))
    r = gmm.fit(x=x, K=2, seed=0)
    with pytest.raises(emdsl.EmmDataError) as info:
        r.predict(x=x, max_iter=3)
    assert "max_iter is an option of fit, which this call does not take" in info.value.format()
