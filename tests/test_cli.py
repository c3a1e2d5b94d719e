"""The ``emdsl`` command line (INTERFACE.md): exit codes, outputs, and no partial files."""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl import cli
from emdsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
GMM = str(MODELS / "gaussian_mixture.emm")
POISSON = str(MODELS / "poisson_mixture.emm")
FAITHFUL = str(MODELS / "data" / "faithful.csv")


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


# ----------------------------------------------------------------------------- fit
def test_fit_writes_json(tmp_path, capsys):
    out_json = tmp_path / "out.json"
    status, out, err = run(capsys, "fit", GMM, "--data", FAITHFUL, "--seed", "0", "-o", out_json)
    assert status == 0, err
    doc = json.loads(out_json.read_text())
    assert np.shape(doc["params"]["mu"]) == (3, 2)
    assert np.shape(doc["params"]["Sigma"]) == (3, 2, 2)
    assert np.isclose(sum(doc["params"]["weights"]), 1.0)
    assert len(doc["elbo"]) == doc["n_iter"] and isinstance(doc["converged"], bool)
    assert all(np.diff(doc["elbo"]) > -1e-6 * abs(doc["elbo"][-1]))
    assert doc["objective"] == doc["elbo"][-1] and doc["objective_name"] == "log likelihood"
    assert "mu  shape (3, 2)" in out and f"final log likelihood {doc['objective']:.10g}" in out
    assert "columns of x: eruptions, waiting" in out   # what the params' last axis is
    for line in err.splitlines():  # warnings are one line each, without source locations
        assert line.startswith("warning: ")


def test_fit_options_are_passed(tmp_path, capsys):
    out_json = tmp_path / "r.json"
    status, _, err = run(capsys, "fit", GMM, "--data", FAITHFUL, "--set", "K=2",
                         "--max-iter", "3", "--tol", "0", "--reg", "1e-4", "-o", out_json)
    assert status == 0, err
    doc = json.loads(out_json.read_text())
    assert np.shape(doc["params"]["mu"]) == (2, 2) and doc["n_iter"] == 3
    assert "warning: EM did not converge in 3 iterations" in err


def test_fit_ldac_dims_come_from_the_file(capsys):
    status, out, err = run(capsys, "fit", MODELS / "topics_em.emm", "--data",
                           MODELS / "data" / "reuters.ldac", "--set", "K=3", "--max-iter", "2")
    assert status == 0, err
    assert "phi  shape (3, " in out


def test_fit_set_disagreeing_with_the_data_file_is_an_error(tmp_path, capsys):
    """reuters.ldac has 395 documents: --set D=5000 must not fit 4605 empty rows."""
    out_json = tmp_path / "out.json"
    status, out, err = run(capsys, "fit", MODELS / "topics_em.emm", "--data",
                           MODELS / "data" / "reuters.ldac", "--set", "D=5000", "K=3",
                           "-o", out_json)
    assert status == 1, out + err
    assert err.startswith("error: dim 'D' is given twice with different values")
    assert "D = 395 (from reuters.ldac)" in err and "D = 5000 (given as --set D=5000)" in err
    assert out == "" and not out_json.exists()


def test_fit_set_agreeing_with_the_data_file(tmp_path, capsys):
    sim = tmp_path / "sim.npz"
    assert run(capsys, "sample", GMM, "--set", "N=200", "D=2", "K=2", "-o", sim)[0] == 0
    status, out, err = run(capsys, "fit", GMM, "--data", sim, "--set", "K=2.0", "D=2")
    assert status == 0, err
    assert "mu  shape (2, 2)" in out
    status, _, err = run(capsys, "fit", GMM, "--data", sim, "--set", "K=3")
    assert status == 1
    assert "K = 2 (from sim.npz)" in err and "K = 3 (given as --set K=3)" in err


def test_a_vector_hyper_of_real_numbers_by_set(tmp_path, capsys):
    """--set s=1.5,4,9 gives a vector hyper (the Python API's value, to the digit);
    a list of a dim's values is for select only, and must be whole numbers there."""
    model = tmp_path / "shapes.emm"
    model.write_text("model Shapes\ndim N\ndim K = 3\ndata y[N] : pos\n"
                     "hyper shp : pos[K]\nparam w : simplex[K]\nparam rate[K] : pos\n"
                     "latent z[N] : cat[K]\nfor n in 1:N {\n  z[n] ~ Categorical(w)\n"
                     "  y[n] ~ Gamma(shp[z[n]], rate[z[n]])\n}\n")
    y = np.random.default_rng(0).gamma(np.repeat([1.5, 4.0, 9.0], 100), 1.0)
    np.savetxt(tmp_path / "y.csv", y, header="y", comments="")
    status, out, err = run(capsys, "fit", model, "--data", tmp_path / "y.csv", "--seed", "0",
                           "--set", "shp=1.5,4,9", "-o", tmp_path / "r.json")
    assert status == 0, err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = emdsl.load(model).fit(y=y, shp=np.array([1.5, 4.0, 9.0]), seed=0)
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["objective"] == pytest.approx(want.objective, rel=1e-12)
    status, _, err = run(capsys, "fit", model, "--data", tmp_path / "y.csv",
                         "--set", "shp=1.5,x,9")
    assert status == 2 and "shp: expected a list of numbers such as 1.5,4,9" in err
    status, _, err = run(capsys, "select", GMM, "--data", FAITHFUL, "--set", "K=1.5,2")
    assert status == 1 and "must be whole numbers" in err


def test_data_error_dim_zero(tmp_path, capsys):
    out_json = tmp_path / "out.json"
    status, out, err = run(capsys, "fit", GMM, "--data", FAITHFUL, "--set", "K=0",
                           "-o", out_json)
    assert status == 1
    assert "'K'" in err and err.startswith("error: ")
    assert not out_json.exists() and list(tmp_path.iterdir()) == []


def test_data_error_string_column(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("y\n1\nabc\n3\n")
    status, _, err = run(capsys, "fit", POISSON, "--data", csv)
    assert status == 1
    assert "'y'" in err and "abc" in err


def test_missing_data_file(tmp_path, capsys):
    status, _, err = run(capsys, "fit", GMM, "--data", tmp_path / "nope.csv")
    assert status == 1 and "nope.csv" in err


def test_numerical_failure_exits_1(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise FloatingPointError("the objective became nan at iteration 3")
    monkeypatch.setattr(cli, "_fit", boom)
    status, _, err = run(capsys, "fit", GMM, "--data", FAITHFUL)
    assert status == 1
    assert "became nan" in err and "hint:" in err


# ----------------------------------------------------------------------------- compile
def test_compile_writes_a_numpy_scipy_module(tmp_path, capsys):
    target = tmp_path / "gmm.py"
    status, out, err = run(capsys, "compile", GMM, "-o", target)
    assert status == 0, err
    assert out == "" and [p.name for p in tmp_path.iterdir()] == ["gmm.py"]
    tree = ast.parse(target.read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    assert roots <= {"numpy", "scipy", "__future__"}, roots
    assert {"numpy", "scipy"} & roots


def test_compile_to_stdout(capsys):
    status, out, _ = run(capsys, "compile", GMM)
    assert status == 0 and "def e_step" in out and "def m_step" in out


@pytest.mark.parametrize("stage", ["ast", "graph", "plan", "conj", "updates"])
def test_compile_print_stage(stage, capsys):
    status, out, err = run(capsys, "compile", GMM, "--print", stage)
    assert status == 0, err
    assert out.strip()
    if stage == "ast":
        assert "x[n] ~ MvNormal(mu[z[n]], Sigma[z[n]])" in out


def test_print_ast_of_an_unsupported_model(capsys):
    """Early stages print even when a later stage rejects the model."""
    status, out, _ = run(capsys, "compile", MODELS / "factor_analysis.emm", "--print", "ast")
    assert status == 0 and out.startswith("model FactorAnalysis")
    status, out, err = run(capsys, "compile", MODELS / "factor_analysis.emm", "--print", "conj")
    assert status == 1 and "not supported yet" in err


def test_compile_missing_model_file(tmp_path, capsys):
    status, _, err = run(capsys, "compile", tmp_path / "none.emm")
    assert status == 1 and "cannot read model file" in err


def test_compile_into_missing_directory(tmp_path, capsys):
    status, _, err = run(capsys, "compile", GMM, "-o", tmp_path / "no" / "dir" / "x.py")
    assert status == 1 and "cannot write" in err


# ----------------------------------------------------------------------------- derive, graph
@pytest.mark.skipif(importlib.util.find_spec("emdsl.explain") is None,
                    reason="emdsl.explain is not there yet")
@pytest.mark.parametrize("fmt", ["md", "tex", "text"])
def test_derive(fmt, capsys):
    status, out, err = run(capsys, "derive", GMM, "--format", fmt)
    assert status == 0, err
    assert out.strip()


def test_graph_prints_dot(capsys):
    status, out, _ = run(capsys, "graph", GMM)
    assert status == 0 and out.startswith("graph")
    assert out.rstrip().endswith("}")


def test_graph_writes_dot(tmp_path, capsys):
    target = tmp_path / "g.dot"
    status, out, _ = run(capsys, "graph", MODELS / "lda.emm", "-o", target)
    assert status == 0 and out == ""
    assert target.read_text().startswith('graph "LDA"')


@pytest.mark.parametrize("suffix, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"),
                                           ("pdf", b"%PDF")])
def test_graph_draws_a_picture_without_graphviz(suffix, magic, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("PATH", str(tmp_path))   # no `dot` program anywhere
    target = tmp_path / f"g.{suffix}"
    status, out, err = run(capsys, "graph", MODELS / "lda.emm", "-o", target)
    assert status == 0 and out == "", err
    assert target.read_bytes().startswith(magic)


def test_graph_to_an_unknown_picture_format_is_an_error(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    status, _, err = run(capsys, "graph", GMM, "-o", tmp_path / "g.xyz")
    assert status == 1 and "cannot write the picture" in err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- sample, check
def test_sample_npz_round_trip(tmp_path, capsys):
    target = tmp_path / "sim.npz"
    status, _, err = run(capsys, "sample", GMM, "--set", "N=300", "D=2", "K=2", "--seed", "1",
                         "-o", target)
    assert status == 0, err
    with np.load(target) as z:
        assert z["x"].shape == (300, 2) and z["mu"].shape == (2, 2)
    status, out, err = run(capsys, "fit", GMM, "--data", target)
    assert status == 0, err
    assert "mu  shape (2, 2)" in out


def test_sample_csv_with_params_from_fit(tmp_path, capsys):
    result = tmp_path / "fit.json"
    assert run(capsys, "fit", GMM, "--data", FAITHFUL, "-o", result)[0] == 0
    target = tmp_path / "sim.csv"
    status, _, err = run(capsys, "sample", GMM, "--set", "N=50", "--params", result,
                         "-o", target)
    assert status == 0, err
    lines = target.read_text().splitlines()
    assert lines[0].split(",")[:2] == ["x_1", "x_2"] and len(lines) == 51


def test_sample_bad_suffix(tmp_path, capsys):
    status, _, err = run(capsys, "sample", GMM, "--set", "N=5", "D=1", "-o", tmp_path / "s.txt")
    assert status == 1 and ".npz or .csv" in err


def test_check_recovers_poisson_mixture(capsys):
    status, out, err = run(capsys, "check", POISSON, "--set", "N=2000")
    assert status == 0, out + err
    assert "rate" in out and "recovered" in out


CAT2 = """
model TwoComponents
dim N
data   x[N]      : real
param  weights   : simplex[2]
param  mu[2]     : real
latent z[N]      : cat[2]
for n in 1:N {
    z[n] ~ Categorical(weights)
    x[n] ~ Normal(mu[z[n]], 1)
}
"""


@pytest.mark.parametrize("decl", ["", "dim J\ndim K = J + 1\n"])
def test_check_with_a_literal_or_computed_category_count(decl, tmp_path, capsys):
    """The latent's category count need not be a dim name (it used to be a KeyError)."""
    text = CAT2 if not decl else CAT2.replace("dim N\n", "dim N\n" + decl).replace(
        "[2]", "[K]")
    path = tmp_path / "m.emm"
    path.write_text(text)
    argv = ["check", path, "--set", "N=1500"] + (["J=1"] if decl else [])
    status, out, err = run(capsys, *argv)
    assert status == 0, out + err
    assert "weights" in out and "mu" in out and "recovered" in out


def test_sample_dim_must_be_a_positive_integer(tmp_path, capsys):
    for bad, shown in (("N=0", "N = 0"), ("K=2.5", "K = 2.5"), ("D=-1", "D = -1")):
        sets = {"N": "N=5", "D": "D=2", "K": "K=2", bad[0]: bad}.values()
        status, _, err = run(capsys, "sample", GMM, "--set", *sets, "-o", tmp_path / "s.npz")
        assert status == 1, err
        assert f"dim '{bad[0]}' must be a positive integer" in err and shown in err
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- usage, bugs
@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate", GMM],
    ["fit", GMM],                                          # --data is required
    ["fit", GMM, "--data", FAITHFUL, "--set", "K"],          # not NAME=VALUE
    ["fit", GMM, "--data", FAITHFUL, "--set", "K=three"],
    ["derive", GMM, "--format", "pdf"],
    ["sample", GMM, "--set", "N=5"],                       # -o is required
])
def test_bad_usage_exits_2(argv, capsys):
    assert main(argv) == 2
    assert "usage:" in capsys.readouterr().err


def test_internal_error_exits_3(monkeypatch, capsys):
    def bug(path):
        raise KeyError("oops")
    monkeypatch.setattr(cli, "_load", bug)
    status, _, err = run(capsys, "compile", GMM)
    assert status == 3
    assert err.startswith("internal compiler error") and "report" in err


def test_console_script_module(tmp_path):
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "emdsl.cli", "graph", GMM],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("graph")
    bad = subprocess.run([sys.executable, "-m", "emdsl.cli", "compile",
                          str(ROOT / "tests" / "golden" / "bad" / "undeclared_name.emm")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert bad.returncode == 1 and "undeclared name 'sigma2'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_planted_cache_file_is_recompiled_not_run(tmp_path, monkeypatch):
    """A file put in the cache under a model's key runs only if its seal matches."""
    from emdsl.compile import cache_dir
    monkeypatch.setenv("EMDSL_CACHE", str(tmp_path))
    src = Path(GMM).read_text()
    emdsl.loads(src, name="planted.emm")
    (cached,) = list(cache_dir().glob("*.py"))
    marker = tmp_path / "ran"
    cached.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    m = emdsl.loads(src, name="planted.emm")
    assert not marker.exists() and m.module.ALGORITHM == "EM"
    # a sealed file with edited code is recompiled too
    head, _, code = cached.read_text().partition("\n")
    cached.write_text(head + "\n" + code.replace("ALGORITHM = 'EM'", "ALGORITHM = 'X'"))
    assert emdsl.loads(src, name="planted.emm").module.ALGORITHM == "EM"
    # and a seal computed without the user's secret (the plain hash) does not pass either
    import hashlib
    forged = code.replace("ALGORITHM = 'EM'", "ALGORITHM = 'X'").encode()
    for guess in (hashlib.sha256(forged).hexdigest(), hashlib.sha256(b"x\0" + forged).hexdigest()):
        cached.write_bytes(guess.encode() + b"\n" + forged)
        assert emdsl.loads(src, name="planted.emm").module.ALGORITHM == "EM"


def test_a_cached_model_with_its_own_family_loads_without_sympy(tmp_path):
    """A model whose module is in the cache is not validated symbolically again: its own
    family block does not import sympy (~0.8 s of a load), and the model still fits."""
    code = ("import sys, emdsl, numpy as np\n"
            f"m = emdsl.load({str(ROOT / 'models' / 'rayleigh_mixture.emm')!r})\n"
            "y = np.random.default_rng(0).rayleigh(2.0, 200)\n"
            "r = m.fit(y=y, K=2, seed=0, max_iter=5)\n"
            "print('sympy' in sys.modules, np.isfinite(r.objective))\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "EMDSL_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[0].stdout.split() == ["True", "True"]    # compiled: sympy used
    assert runs[1].stdout.split() == ["False", "True"]   # from the cache: not imported


def test_a_planted_parser_cache_is_rebuilt(tmp_path, monkeypatch):
    """The parser tables are cached (a pickle): one whose seal does not match is rebuilt."""
    from emdsl.frontend import parse as parse_mod
    monkeypatch.setenv("EMDSL_CACHE", str(tmp_path))
    parse_mod._parser.cache_clear()
    try:
        parse_mod.parse(Path(GMM).read_text(), "a.emm")
        (tables,) = list(tmp_path.glob("grammar-*.lark"))
        tables.write_bytes(b"planted")
        parse_mod._parser.cache_clear()
        assert parse_mod.parse(Path(GMM).read_text(), "a.emm").name == "GaussianMixture"
        assert tables.read_bytes() != b"planted"
    finally:
        parse_mod._parser.cache_clear()


def test_the_progress_line_shows_pass_items_per_second_and_objective(capsys):
    """On a terminal the CLI reports each pass (tqdm's bar when installed, else a line)."""
    from emdsl.progress import Progress
    model = emdsl.load(GMM)
    bar = Progress(model, {"x": np.zeros((500, 2))}, max_iter=3)
    bar.bar = None   # the plain line (tqdm may or may not be installed)
    bar.update(0, -1234.5, {})
    bar.update(1, -1200.25, {})
    bar.close()
    err = capsys.readouterr().err
    assert "pass     2  objective -1200.25  change 34.2" in err and "items/s" in err


def test_verbose_fits_show_the_progress_line_on_a_terminal(monkeypatch, capsys):
    """verbose=True on a terminal: the progress report (not printed lines); a user's
    callback still runs."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setitem(sys.modules, "tqdm", None)   # the plain line, tqdm or not
    seen = []
    model = emdsl.load(GMM)
    x = np.random.default_rng(0).normal(size=(200, 2))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x=x, K=2, max_iter=3, tol=0.0, verbose=True,
                  callback=lambda it, v, p: seen.append(it))
    out = capsys.readouterr()
    assert seen == [0, 1, 2] and "pass     3  objective" in out.err and "iter" not in out.out


# ----------------------------------------------------------------------------- outputs
def _umask_mode():
    import os
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def test_outputs_have_an_ordinary_file_mode(tmp_path, capsys):
    """Written through a temporary file, but with the mode open() gives (not 0600); a
    replaced file keeps its own."""
    out_json = tmp_path / "r.json"
    assert run(capsys, "fit", POISSON, "--data", tmp_path / "d.npz")[0] == 1   # (missing)
    assert run(capsys, "sample", POISSON, "--set", "N=200", "-o", tmp_path / "d.npz")[0] == 0
    assert run(capsys, "fit", POISSON, "--data", tmp_path / "d.npz", "-o", out_json)[0] == 0
    for p in (tmp_path / "d.npz", out_json, tmp_path / "r.posterior.npz"):
        assert p.stat().st_mode & 0o777 == _umask_mode()
    out_json.chmod(0o640)
    assert run(capsys, "fit", POISSON, "--data", tmp_path / "d.npz", "-o", out_json)[0] == 0
    assert out_json.stat().st_mode & 0o777 == 0o640


def test_a_failed_result_write_leaves_neither_file(tmp_path, capsys, monkeypatch):
    """The JSON and the posterior beside it are written as one: a failure in either
    leaves no file (the posterior was left behind a failed JSON)."""
    assert run(capsys, "sample", POISSON, "--set", "N=200", "-o", tmp_path / "d.npz")[0] == 0

    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", broken)
    status, _, err = run(capsys, "fit", POISSON, "--data", tmp_path / "d.npz",
                         "-o", tmp_path / "r.json")
    assert status == 1 and "r.posterior.npz': No space left" in err   # (the file that failed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_a_result_file_of_another_kind_is_refused_before_fitting(tmp_path, capsys):
    status, out, err = run(capsys, "fit", POISSON, "--data", FAITHFUL, "-o", tmp_path / "r.txt")
    assert status == 1 and "cannot write the result to" in err and "RESULT.json" in err
    assert out == "" and list(tmp_path.iterdir()) == []


def test_a_name_set_twice_with_different_values_is_a_usage_error(capsys):
    status, _, err = run(capsys, "fit", POISSON, "--data", FAITHFUL, "--set", "K=2", "K=3")
    assert status == 2 and "--set K is given twice: K=2 and K=3" in err
    status, _, err = run(capsys, "check", POISSON, "--set", "K=2", "--set", "K=2", "N=300",
                         "--n-init", "1")
    assert status in (0, 1) and "given twice" not in err


def test_select_refuses_a_dim_the_data_file_fixes(tmp_path, capsys):
    assert run(capsys, "sample", POISSON, "--set", "N=200", "-o", tmp_path / "d.npz")[0] == 0
    with np.load(tmp_path / "d.npz") as z:
        np.savez(tmp_path / "k.npz", y=z["y"], K=2)
    status, _, err = run(capsys, "select", POISSON, "--data", tmp_path / "k.npz",
                         "--set", "K=1..3")
    assert status == 1 and "the data file k.npz fixes it (K = 2)" in err
    status, out, err = run(capsys, "select", POISSON, "--data", tmp_path / "d.npz",
                           "--set", "K=1..2", "N=200", "--n-init", "1")
    assert status == 0, err


def test_sample_takes_params_of_its_own_model_only(tmp_path, capsys):
    """--params: a fit's JSON or .npz of this model, or a .npz named by its params; a fit
    of another model, names that are no params of it, or a CSV are errors (they were
    read silently, or not at all and the params drawn at random)."""
    sim = tmp_path / "d.npz"
    assert run(capsys, "sample", POISSON, "--set", "N=300", "-o", sim)[0] == 0
    for suffix in ("json", "npz"):
        res = tmp_path / f"r.{suffix}"
        assert run(capsys, "fit", POISSON, "--data", sim, "-o", res)[0] == 0
        fitted = emdsl.load_result(res).params if suffix == "npz" else \
            json.loads(res.read_text())["params"]
        status, _, err = run(capsys, "sample", POISSON, "--set", "N=5", "--params", res,
                             "-o", tmp_path / "s.npz")
        assert status == 0, err
        with np.load(tmp_path / "s.npz") as z:
            np.testing.assert_allclose(z["rate"], fitted["rate"])
        status, _, err = run(capsys, "sample", str(MODELS / "gamma_mixture.emm"), "--set",
                             "N=5", "--params", res, "-o", tmp_path / "s.npz")
        assert status == 1 and "holds a fit of model PoissonMixture, not of" in err
    np.savez(tmp_path / "p.npz", foo=[1.0])
    status, _, err = run(capsys, "sample", POISSON, "--set", "N=5", "--params",
                         tmp_path / "p.npz", "-o", tmp_path / "s.npz")
    assert status == 1 and "holds no params of PoissonMixture" in err and "weights" in err
    status, _, err = run(capsys, "sample", POISSON, "--set", "N=5", "--params", FAITHFUL,
                         "-o", tmp_path / "s.npz")
    assert status == 1 and "not a .json or .npz file" in err


def test_messages_name_the_command_lines_flags(capsys):
    """The API's messages spell its keywords (max_iter, method='batch'); on the command
    line the same advice names the flags, in the message and the hint, not in a source
    line or a quoted name."""
    status, _, err = run(capsys, "fit", GMM, "--data", FAITHFUL, "--max-iter", "2")
    assert status == 0 and "increase --max-iter, loosen --tol" in err and "max_iter" not in err
    status, _, err = run(capsys, "fit", GMM, "--data", FAITHFUL, "--batch-size", "10")
    assert status == 1 and "fit option --batch-size is for --method stepwise" in err
    from types import SimpleNamespace
    from emdsl.cli import _cli_words
    fit = SimpleNamespace(seed=0, tol=None, max_iter=None, reg=None)
    assert _cli_words("cannot read /d/reg/seed.csv ('tol' x.max_iter)\n  3 | seed", fit) == \
        "cannot read /d/reg/seed.csv ('tol' x.max_iter)\n  3 | seed"
    # a command without --reg (check) keeps the API's word for it
    assert _cli_words("try another seed or a larger reg", SimpleNamespace(seed=0)) == \
        "try another --seed or a larger reg"
