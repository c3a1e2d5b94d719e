"""Choosing K by BIC (emdsl.select, `emdsl select`) and the pictures of a fit (plots.py):
the chosen K has the lowest criterion, each row's BIC is the fit's own; the CLI writes a
table, a JSON file and PNG files without a traceback."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl.cli import main
from emdsl.errors import EmmDataError
from emdsl.selection import select

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
GMM = ROOT / "models" / "gaussian_mixture.emm"
FAITHFUL = ROOT / "models" / "data" / "faithful.csv"


def _blobs(seed=0, n=400):
    rng = np.random.default_rng(seed)
    mu = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
    return mu[rng.integers(3, size=n)] + rng.normal(size=(n, 2))


def test_select_finds_three_well_separated_components():
    m = emdsl.load(GMM)
    x = _blobs()
    sel = select(m, "K", range(1, 6), x=x, n_init=3, seed=0)
    assert sel.best == 3
    bics = [r["bic"] for r in sel.rows]
    assert bics[2] == min(bics)
    for row in sel.rows:   # each row's BIC is its fit's
        assert row["bic"] == pytest.approx(sel.results[row["value"]].bic(x=x), rel=1e-12)
    assert "chosen: K = 3" in sel.table()
    with pytest.raises(EmmDataError, match="not a dim"):
        select(m, "weights", [1, 2], x=x)
    with pytest.raises(EmmDataError, match="point estimate"):
        select(emdsl.load(ROOT / "models" / "bayes_gmm.emm"), "K", [1, 2], x=x)


def test_the_cli_selects_and_draws(tmp_path, capsys):
    code = main(["select", str(GMM), "--data", str(FAITHFUL), "--set", "K=1..4",
                 "--plot", str(tmp_path / "sel.png"), "-o", str(tmp_path / "sel.json")])
    out = capsys.readouterr().out
    assert code == 0 and "chosen: K = 2 (lowest BIC)" in out
    doc = json.loads((tmp_path / "sel.json").read_text())
    assert doc["best"] == 2 and [r["value"] for r in doc["rows"]] == [1, 2, 3, 4]
    assert (tmp_path / "sel.png").read_bytes()[:4] == b"\x89PNG"
    code = main(["fit", str(GMM), "--data", str(FAITHFUL), "--plot", str(tmp_path / "f.png")])
    assert code == 0 and (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["select", str(GMM), "--data", str(FAITHFUL), "--set", "K=3"]) == 1
    assert "one dim given as a range" in capsys.readouterr().err


def test_result_plot_draws_the_trace_and_the_clusters(tmp_path):
    m = emdsl.load(GMM)
    x = _blobs(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=x, K=3, seed=0)
    fig = r.plot()
    ax = fig.axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), r.elbo)
    assert ax.get_ylabel() == "log likelihood"
    fig = r.plot(tmp_path / "c.png", x=x)
    assert len(fig.axes[0].collections) >= 3 and (tmp_path / "c.png").stat().st_size > 0
    one_d = emdsl.load(ROOT / "models" / "poisson_mixture.emm")
    y = np.random.default_rng(0).poisson(np.repeat([2.0, 20.0], 100))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = one_d.fit(y=y, K=2, seed=0)
    r.plot(tmp_path / "h.png", x=y.astype(float))
    with pytest.raises(emdsl.errors.EmmError, match="1-D or 2-D"):
        r.plot(x=np.ones((200, 3)))


def test_notebooks_show_the_model_and_the_fit():
    m = emdsl.load(GMM)
    md = m._repr_markdown_()
    assert md.startswith("**GaussianMixture** (EM)") and "x[n] ~ MvNormal" in md
    assert "M-step" in md or "M step" in md or "update" in md.lower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit(x=_blobs(2), K=3, seed=0)
    page = r._repr_html_()
    assert "<table>" in page and "<code>mu</code>" in page and "<svg" in page
    assert f"{r.objective:.10g}" in page
