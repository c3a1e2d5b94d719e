"""Tests of :mod:`emdsl.io.data`: constant expressions, data files and binding/validation."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from emdsl.frontend import ast
from emdsl.frontend.check import check
from emdsl.io.data import Bound, bind, eval_const, read_data_file
from emdsl.errors import EmmDataError
from emdsl.frontend.parse import parse

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
DATA = MODELS / "data"

UNIT = """model U
dim N
data p[N] : unit
param a : pos
param b : pos
for n in 1:N { p[n] ~ Beta(a, b) }
"""
SIMPLEX = """model S
dim N
dim K = 3
data s[N] : simplex[K]
hyper alpha : pos[K]
for n in 1:N { s[n] ~ Dirichlet(alpha) }
"""
SPD = """model W
dim N, D
dim M = D * 2 + 1
data S[N] : spd[D]
hyper nu : pos = D + 1
hyper v : real[M] = ones(M) * nu
param W : spd[D]
for n in 1:N { S[n] ~ Wishart(W, nu) }
"""


@functools.lru_cache(maxsize=None)
def model(name: str):
    if "\n" in name:
        return check(parse(name, "<test>"))
    path = MODELS / f"{name}.emm"
    return check(parse(path.read_text(), str(path)))


def data_error(cm, values) -> str:
    with pytest.raises(EmmDataError) as info:
        bind(cm, values)
    return info.value.msg


def expr(text: str) -> ast.Expr:
    """The AST of ``text``, parsed (not checked) as a hyper default."""
    return parse(f"model E\nhyper h : real = {text}\n").vars[0].default


RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 2))


# ----------------------------------------------------------------------------- eval_const
@pytest.mark.parametrize("text, env, want", [
    ("3", {}, 3),
    ("D * 2 + 1", {"D": 4}, 9),
    ("2 ^ 3", {}, 8),
    ("2 ^ -1", {}, 0.5),
    ("-D / 2", {"D": 3}, -1.5),
    ("exp(log(2.5))", {}, 2.5),
    ("sqrt(4) + sum(ones(3))", {}, 5.0),
    ("lgamma(5) - log(24)", {}, 0.0),
    ("digamma(1)", {}, -0.5772156649015329),
    ("pi", {}, np.pi),
    ("pi", {"pi": 3}, 3),
    ("dot(m, m)", {"m": np.array([1.0, 2.0])}, 5.0),
    ("m[2]", {"m": np.array([1.0, 7.0])}, 7.0),
])
def test_eval_const_scalars(text, env, want):
    assert eval_const(expr(text), env) == pytest.approx(want)


def test_eval_const_arrays():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(eval_const(expr("eye(D) * 2"), {"D": 2}), 2 * np.eye(2))
    np.testing.assert_allclose(eval_const(expr("transpose(A) @ A"), {"A": A}), A.T @ A)
    np.testing.assert_allclose(eval_const(expr("diag(ones(D)) + zeros(D)"), {"D": 3}), np.eye(3))
    np.testing.assert_allclose(eval_const(expr("diag(A)"), {"A": A}), [1.0, 4.0])
    assert isinstance(eval_const(expr("D + 1"), {"D": 2}), int)


@pytest.mark.parametrize("text, env, msg", [
    ("K + 1", {}, "'K' has no value here"),
    ("eye(D)", {"D": 2.5}, "a size must be a non-negative integer, got 2.5"),
    ("ones(2) @ 3", {}, "'@' needs a vector or a matrix on both sides"),
    ("m[3]", {"m": np.zeros(2)}, "cannot evaluate 'm[3]'"),
])
def test_eval_const_errors(text, env, msg):
    with pytest.raises(EmmDataError, match=msg.replace("(", r"\(").replace("[", r"\[")):
        eval_const(expr(text), env)


# ----------------------------------------------------------------------------- files
def test_faithful_csv_gaussian_mixture():
    cm = model("gaussian_mixture")
    arrays, dims = read_data_file(DATA / "faithful.csv", cm)
    assert arrays["x"].shape == (272, 2) and dims == {}
    b = bind(cm, {**dims, **arrays})
    assert isinstance(b, Bound)
    assert b.dims == {"N": 272, "D": 2, "K": 3}
    assert b.data["x"].dtype == np.float64
    assert b.data["x"][0].tolist() == [3.6, 79.0]
    assert bind(cm, {**arrays, "K": 5}).dims["K"] == 5


def test_single_column_csv_and_named_scalar_column(tmp_path):
    arrays, _ = read_data_file(DATA / "galaxies.csv", model("gamma_mixture"))
    assert arrays["y"].shape == (82,)
    assert bind(model("gamma_mixture"), arrays).dims == {"N": 82, "K": 2}
    f = tmp_path / "xy.csv"
    f.write_text("y,X_2,note,X_1\n1.5,2,a,3\n2.5,4,b,5\n")
    arrays, _ = read_data_file(f, model("bayes_linreg"))
    assert arrays["X"].tolist() == [[3.0, 2.0], [5.0, 4.0]]  # X_1 first, whatever the order
    assert arrays["y"].tolist() == [1.5, 2.5]
    assert bind(model("bayes_linreg"), arrays).dims == {"N": 2, "P": 2}


def test_csv_named_columns_select_from_penguins(tmp_path):
    lines = (DATA / "penguins.csv").read_text().splitlines()
    f = tmp_path / "p.csv"
    header = lines[0].replace("bill_length_mm", "x_1").replace("flipper_length_mm", "x_2")
    f.write_text("\n".join([header] + [ln for ln in lines[1:] if ",," not in ln]))
    arrays, _ = read_data_file(f, model("gaussian_mixture"))
    assert arrays["x"].shape[1] == 2
    assert arrays["x"][0].tolist() == [39.1, 181.0]


def test_penguins_missing_values_are_an_error():
    with pytest.raises(EmmDataError) as info:
        read_data_file(DATA / "penguins.csv", model("gaussian_mixture"))
    msg = info.value.msg
    assert "data 'x': column 'bill_length_mm' has a missing value in row 4 " \
           "(line 5 of 'penguins.csv')" in msg
    assert "2 of 344 rows" in msg and "year" in msg
    assert "drops no rows" in info.value.hint


def test_reuters_ldac_topics_em():
    cm = model("topics_em")
    arrays, dims = read_data_file(DATA / "reuters.ldac", cm)
    total, first = 0, None
    for line in (DATA / "reuters.ldac").read_text().split("\n"):
        if line.strip():
            pairs = [p.split(":") for p in line.split()[1:]]
            total += sum(int(c) for _, c in pairs)
            first = first or pairs
    assert dims == {"T": total, "D": 395, "V": 4258}
    doc, w = arrays["doc"], arrays["w"]
    assert doc.shape == w.shape == (total,) and doc.dtype == w.dtype == np.int64
    assert doc[0] == 0 and doc[-1] == 394 and np.all(np.diff(doc) >= 0)
    n0 = sum(int(c) for _, c in first)
    assert np.array_equal(np.bincount(w[doc == 0], minlength=4258)[[int(i) for i, _ in first]],
                          [int(c) for _, c in first]) and (doc == 0).sum() == n0
    b = bind(cm, {**dims, **arrays})
    assert b.dims == {"T": total, "D": 395, "V": 4258, "K": 10}


def test_ldac_without_tokens_uses_max_id(tmp_path):
    f = tmp_path / "tiny.ldac"
    f.write_text("2 0:2 3:1\n0\n1 1:1\n")
    arrays, dims = read_data_file(f, model("lda"))
    assert dims == {"T": 4, "D": 3, "V": 4}
    assert arrays["doc"].tolist() == [0, 0, 0, 2] and arrays["w"].tolist() == [0, 0, 3, 1]
    f.write_text("2 0:2\n")
    with pytest.raises(EmmDataError, match="line 1 of 'tiny.ldac' is not in LDA-C format"):
        read_data_file(f, model("lda"))
    with pytest.raises(EmmDataError, match="an .ldac file needs a model with exactly two cat"):
        read_data_file(f, model("gaussian_mixture"))


@pytest.mark.parametrize("line, why", [
    ("1 2:x", "its pair 1, '2:x' has a non-integer count"),
    ("1 2:-1", "its pair 1, '2:-1' has a negative count"),
    ("1 a:1", "its pair 1, 'a:1' has a non-integer word id"),
    ("2 0:1 2:1.5", "its pair 2, '2:1.5' has a non-integer count"),
    ("1 2", "its pair 1, '2' is not id:count"),
    ("3 2:1", "it says 3 pairs and has 1"),
    ("x 2:1", "it starts with 'x', not the number of pairs"),
])
def test_an_ldac_line_error_says_what_is_wrong(tmp_path, line, why):
    f = tmp_path / "c.ldac"
    f.write_text(f"1 0:1\n{line}\n")
    with pytest.raises(EmmDataError) as info:
        read_data_file(f, model("lda"))
    assert "line 2 of 'c.ldac' is not in LDA-C format" in info.value.msg
    assert info.value.msg.endswith(why)


def test_files_of_another_kind_are_named_as_such(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("y;z\n1;2\n3;4\n")
    with pytest.raises(EmmDataError) as info:
        read_data_file(semi, model("poisson_mixture"))
    assert "';'-separated" in info.value.format()
    for name in ("g.npz", "g.npy"):
        (tmp_path / name).write_bytes(b"garbage")
        with pytest.raises(EmmDataError, match=f"it is not a NumPy .{name[-3:]} file"):
            read_data_file(tmp_path / name, model("poisson_mixture"))
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(EmmDataError, match="Python objects, which are never loaded"):
        read_data_file(tmp_path / "o.npy", model("poisson_mixture"))


def test_npz_round_trip(tmp_path):
    f = tmp_path / "d.npz"
    z = RNG.integers(0, 3, size=20)
    np.savez(f, x=X, K=np.int64(4), z=z, mu=np.zeros((4, 2)))  # params/latents ignored
    arrays, dims = read_data_file(f, model("gaussian_mixture"))
    assert set(arrays) == {"x"} and dims == {"K": 4}
    b = bind(model("gaussian_mixture"), {**dims, **arrays})
    np.testing.assert_array_equal(b.data["x"], X)
    assert b.dims == {"N": 20, "D": 2, "K": 4}
    np.savez(f, x=X, foo=1)
    with pytest.raises(EmmDataError, match="holds 'foo', which is not a data name"):
        read_data_file(f, model("gaussian_mixture"))
    np.savez(f, X=X)
    with pytest.raises(EmmDataError, match=r"data 'x' is not in 'd.npz' \(it holds X\)"):
        read_data_file(f, model("gaussian_mixture"))


def test_npy_only_datum(tmp_path):
    f = tmp_path / "x.npy"
    np.save(f, X)
    arrays, _ = read_data_file(f, model("factor_analysis"))
    np.testing.assert_array_equal(arrays["x"], X)
    with pytest.raises(EmmDataError, match="a .npy file holds one array but model "
                                           "BayesianLinearRegression has data X, y"):
        read_data_file(f, model("bayes_linreg"))


@pytest.mark.parametrize("text, msg", [
    ("x_1,x_2\n1,2\nA,3\n", "column 'x_1' has the non-numeric value 'A' in row 2 (line 3"),
    ("x_1,x_3\n1,2\n", "the columns x_1, x_3 of 'f.csv' are not numbered 1..2"),
    ("x_1,x_2\n1,2\n3\n", "line 3 of 'f.csv' has 1 fields but the header has 2"),
    ("a,a\n1,2\n", "has the column name(s) a twice"),
    ("a\n", "needs a header row and at least one data row"),
])
def test_bad_csv(tmp_path, text, msg):
    f = tmp_path / "f.csv"
    f.write_text(text)
    with pytest.raises(EmmDataError) as info:
        read_data_file(f, model("gaussian_mixture"))
    assert msg in info.value.msg


def test_csv_missing_column_and_bad_file(tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("a,X_1\n1,2\n")
    with pytest.raises(EmmDataError, match="data 'y' needs a column named 'y' in 'f.csv' "
                                           r"\(its columns: a, X_1\)"):
        read_data_file(f, model("bayes_linreg"))
    with pytest.raises(EmmDataError, match="unsupported file type '.txt'"):
        read_data_file(tmp_path / "f.txt", model("bayes_linreg"))
    with pytest.raises(EmmDataError, match="does not exist"):
        read_data_file(tmp_path / "nope.csv", model("bayes_linreg"))


# ----------------------------------------------------------------------------- hypers, dims
def test_hyper_defaults_gmm_identity_map():
    b = bind(model("gmm_identity_map"), {"x": X})
    np.testing.assert_array_equal(b.hypers["phi"], np.zeros(2))
    assert b.hypers["phi"].dtype == np.float64
    assert b.hypers["alpha"] == 2.0 and b.hypers["alpha"].shape == ()
    assert b.hypers["nu"] == 0.1
    b = bind(model("gmm_identity_map"), {"x": X, "phi": [1.0, 2.0], "alpha": 3})
    assert b.hypers["phi"].tolist() == [1.0, 2.0] and b.hypers["alpha"] == 3.0


def test_hyper_defaults_bayes_gmm():
    x3 = RNG.normal(size=(7, 3))
    b = bind(model("bayes_gmm"), {"x": x3})
    np.testing.assert_array_equal(b.hypers["W0"], np.eye(3))
    assert b.hypers["nu0"] == 3.0 and b.hypers["nu0"].dtype == np.float64
    np.testing.assert_array_equal(b.hypers["m0"], np.zeros(3))
    assert b.dims == {"N": 7, "D": 3, "K": 6}
    assert set(b.data) == {"x"} and set(b.hypers) == {"alpha0", "beta0", "nu0", "m0", "W0"}


def test_dim_defaults_use_other_dims_and_hypers_see_dims():
    S = np.stack([np.eye(2)] * 4)
    b = bind(model(SPD), {"S": S})
    assert b.dims == {"N": 4, "D": 2, "M": 5}
    assert b.hypers["v"].tolist() == [3.0] * 5
    assert b.data["S"].shape == (4, 2, 2)


def test_integer_kinds_are_int64_and_none_is_not_given():
    y = np.array([0.0, 3.0, 2.0])
    b = bind(model("poisson_mixture"), {"y": y, "K": None})
    assert b.data["y"].dtype == np.int64 and b.data["y"].tolist() == [0, 3, 2]
    xb = bind(model("bernoulli_mixture"), {"x": np.array([[True, False]])}).data["x"]
    assert xb.dtype == np.int64 and xb.tolist() == [[1, 0]]
    b = bind(model("topics_em"), {"doc": [0, 1, 1], "w": [4, 0, 2], "D": 2, "V": 5})
    assert b.dims == {"T": 3, "D": 2, "V": 5, "K": 10}


# ----------------------------------------------------------------------------- bad data
GM = "gaussian_mixture"


@pytest.mark.parametrize("name, values, msg", [
    # shapes and dims
    (GM, {"x": np.zeros(272), "D": 2},
     "data 'x' is declared x[N] : real[D], shape (N, D) = (272, 2), but the given array has "
     "shape (272,)"),
    (GM, {"x": np.zeros((5, 2, 1))},
     "data 'x' is declared x[N] : real[D], shape (N, D) = (5, ?), but the given array has "
     "shape (5, 2, 1)"),
    (GM, {"x": X, "D": 3},
     "dim 'D' is given twice with different values: D = 3 (given as D=3) and D = 2 "
     "(from x.shape[1])"),
    ("bayes_linreg", {"X": np.zeros((10, 2)), "y": np.zeros(9)},
     "dim 'N' is given twice with different values: N = 10 (from X.shape[0]) and N = 9 "
     "(from y.shape[0])"),
    ("gmm_identity_map", {"x": X, "phi": np.zeros(3)},
     "hyper 'phi' is declared phi : real[D], shape (D,) = (2,), but the given array has "
     "shape (3,)"),
    ("topics_em", {"doc": [0, 1], "w": [0, 1], "V": 3},
     "dim 'D' cannot be determined from the data and has no default; pass it as D=..."),
    (GM, {"x": X, "K": 0}, "dim 'K' must be a positive integer, got K=0"),
    (GM, {"x": X, "K": 2.5}, "dim 'K' must be a positive integer, got K=2.5"),
    # names
    (GM, {"x": X, "foo": 1},
     "'foo' is not a data, dim or hyper of model GaussianMixture; valid names: x, N, D, K"),
    (GM, {"x": X, "mu": np.zeros((3, 2))}, "'mu' is a param of the model, not data"),
    (GM, {"x": X, "z": np.zeros(20)}, "'z' is a latent of the model, not data"),
    (GM, {"K": 3}, "data 'x' is missing; pass it as x=... (an array of shape (N, D))"),
    (UNIT + "hyper h : real\n", {"p": [0.5]}, "hyper 'h' has no default; pass it as h=..."),
    # values
    (GM, {"x": [["a", "b"]]}, "data 'x' cannot be converted to a numeric array (its dtype is"),
    (GM, {"x": [[1.0, 2.0], [3.0]]}, "data 'x' cannot be converted to a numeric array"),
    (GM, {"x": np.where(np.arange(40).reshape(20, 2) == 7, np.nan, X)},
     "data 'x' has 1 NaN/inf value(s), the first at x[3, 1]"),
    ("poisson_mixture", {"y": np.array([1, 0, -1])},
     "data 'y' is declared y[N] : count but y[2] = -1 is negative"),
    ("poisson_mixture", {"y": np.array([1.0, 2.5])},
     "data 'y' is declared y[N] : count but y[1] = 2.5 is not an integer"),
    ("bernoulli_mixture", {"x": np.array([[0, 1], [2, 0]])},
     "data 'x' is declared x[N, D] : bin but x[1, 0] = 2 is not 0 or 1"),
    ("topics_em", {"doc": [0, 1], "w": [4, 5], "D": 2, "V": 5},
     "data 'w' is declared w[T] : cat[V] but w[1] = 5 is outside 0..4 (V = 5; categories are "
     "0-based in numpy)"),
    ("topics_em", {"doc": [0, -1], "w": [4, 1], "D": 2, "V": 5},
     "data 'doc' is declared doc[T] : cat[D] but doc[1] = -1 is outside 0..1 (D = 2"),
    ("gamma_mixture", {"y": np.array([1.0, 0.0])},
     "data 'y' is declared y[N] : pos but y[1] = 0.0 is not > 0"),
    ("gmm_identity_map", {"x": X, "alpha": -1},
     "hyper 'alpha' is declared alpha : pos but alpha = -1 is not > 0"),
    ("gmm_identity_map", {"x": X, "nu": np.inf}, "hyper 'nu' has 1 NaN/inf value(s)"),
    (UNIT, {"p": [0.5, 1.0]}, "data 'p' is declared p[N] : unit but p[1] = 1.0 is not in (0, 1)"),
    (SIMPLEX, {"s": [[0.2, 0.3, 0.5], [0.5, 0.6, -0.1]], "alpha": [1, 1, 1]},
     "data 's' is declared s[N] : simplex[K] but s[1, 2] = -0.1 is negative"),
    (SIMPLEX, {"s": [[0.2, 0.3, 0.5], [0.5, 0.6, 0.1]], "alpha": [1, 1, 1]},
     "data 's' is declared s[N] : simplex[K] but s[1] sums to 1.2, not 1"),
    (SIMPLEX, {"s": [[0.2, 0.3, 0.5]], "alpha": [1, 0, 1]},
     "hyper 'alpha' is declared alpha : pos[K] but alpha[1] = 0 is not > 0"),
    (SPD, {"S": [np.eye(2), [[1.0, 0.5], [0.4, 1.0]]]},
     "data 'S' is declared S[N] : spd[D] but S[1] is not symmetric"),
    (SPD, {"S": [np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]},
     "data 'S' is declared S[N] : spd[D] but S[1] is not positive definite (smallest "
     "eigenvalue -1)"),
    (SPD, {"S": np.ones((3, 2, 3))},
     "data 'S' is declared S[N] : spd[D], shape (N, D, D) = (3, 2, 2), but the given array "
     "has shape (3, 2, 3)"),
    ("bayes_gmm", {"x": X, "W0": np.diag([1.0, 0.0])},
     "hyper 'W0' is declared W0 : spd[D] but W0 is not positive definite"),
])
def test_bad_values(name, values, msg):
    got = data_error(model(name), values)
    assert msg in got, got


def test_data_errors_point_at_the_declaration():
    with pytest.raises(EmmDataError) as info:
        bind(model(GM), {"x": np.zeros(5)})
    text = str(info.value)
    assert text.startswith(f"{MODELS / 'gaussian_mixture.emm'}:9:")
    assert "data   x[N]     : real[D]" in text
    with pytest.raises(EmmDataError) as info:
        bind(model(GM), {"x": X, "mu": 1})
    assert "init={'mu': ...}" in info.value.hint


def test_a_truncated_npz_is_a_data_error(tmp_path):
    np.savez(tmp_path / "full.npz", y=np.arange(100))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "full.npz").read_bytes()[:300])
    with pytest.raises(EmmDataError, match="it is not a NumPy .npz file"):
        read_data_file(tmp_path / "cut.npz", model("poisson_mixture"))
