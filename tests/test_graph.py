"""The factor graph: index maps (edge kinds), plates, Markov blankets, text and DOT."""
from pathlib import Path

import pytest

from emdsl.frontend.check import check
from emdsl.graph import Axis, build_graph
from emdsl.frontend.parse import parse

MODELS = Path(__file__).resolve().parent.parent / "models"


def graph_of(src: str):
    return build_graph(check(parse(src, "t.emm")))


def graph_file(name: str):
    path = MODELS / f"{name}.emm"
    return build_graph(check(parse(path.read_text(), str(path))))


def kinds(fg, var):
    return sorted((i, r.arg, r.kind) for i, r in fg.edges_of(var))


def test_mixture_edges():
    fg = graph_file("gaussian_mixture")
    assert kinds(fg, "mu") == [(1, "mean", "gate")]
    assert kinds(fg, "weights") == [(0, "p", "whole")]
    assert kinds(fg, "x") == [(1, "target", "direct")]
    # z is sampled by f0 and selects the component in f1 (once per argument)
    assert kinds(fg, "z") == [(0, "target", "direct"), (1, "index", "direct"),
                              (1, "index", "direct")]
    (ref,) = fg.refs_to(1, "mu")
    assert ref.axes == (Axis("gate", "z", inner=(Axis("loop", "n"),)),)
    assert ref.text == "mu[z[n]]" and ref.selectors()[0].name == "z"
    assert fg.sampling_factors("z") == [0] and fg.child_factors("z") == [1]
    assert fg.markov_blanket("z") == {"weights", "mu", "Sigma", "x"}
    assert fg.unobserved_blanket("mu") == {"Sigma", "z"}


def test_group_lag_and_nested_selectors():
    fg = graph_file("topics_em")
    assert kinds(fg, "theta") == [(0, "p", "group")]
    assert kinds(fg, "doc") == [(0, "index", "direct")]
    fg = graph_file("gaussian_hmm")
    assert (1, "p", "lag") in kinds(fg, "trans")
    (ref,) = [r for r in fg.refs_to(1, "z") if r.arg == "index"]
    assert ref.axes == (Axis("lag", "t", offset=-1),)
    assert fg.refs_to(0, "z")[0].axes == (Axis("const", offset=1),)
    fg = graph_of("""model U
dim T, D, V
dim K = 2
data doc[T] : cat[D]
data w[T] : cat[V]
param pi : simplex[K]
param phi[K] : simplex[V]
latent z[D] : cat[K]
for d in 1:D { z[d] ~ Categorical(pi) }
for t in 1:T { w[t] ~ Categorical(phi[z[doc[t]]]) }
""")
    (ref,) = fg.refs_to(1, "phi")
    assert ref.kind == "gate"
    assert ref.axes[0].inner == (Axis("group", "doc", inner=(Axis("loop", "t"),)),)
    assert [a.name for a in ref.selectors()] == ["z", "doc"]
    (zref,) = fg.refs_to(1, "z")
    assert zref.kind == "group" and zref.arg == "index"


def test_whole_references_inside_expressions_and_plates():
    fg = graph_file("bayes_linreg")
    assert kinds(fg, "w") == [(2, "target", "whole"), (3, "mean", "whole")]
    assert kinds(fg, "X") == [(3, "mean", "direct")]
    fg = graph_file("bernoulli_mixture")
    plates = {p.var: p.factors for p in fg.plates()}
    assert plates == {"k": (0,), "d": (0, 2), "n": (1, 2)}
    (ref,) = fg.refs_to(2, "p")
    assert [a.kind for a in ref.axes] == ["gate", "loop"]


def test_text_dump_names_edge_kinds_and_blankets():
    out = graph_file("lda").to_text()
    assert "for t in 1:T" in out and "theta      p        group   theta[doc[t]]" in out
    assert "c: factors f2 f3; neighbours doc phi theta w" in out


def test_dot_draws_plates_as_clusters():
    dot = graph_file("bayes_gmm").to_dot()
    assert dot.count("subgraph cluster_") == 2
    assert 'label="for k in 1:K"' in dot and 'label="gate mu[z[n]]"' in dot
    assert '"z" -- "f4:MvNormal(x)" [label="direct z[n]", style=dashed]' in dot


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.emm")), ids=lambda p: p.stem)
def test_every_reference_is_an_edge(path):
    fg = graph_file(path.stem)
    for i, f in enumerate(fg.model.factors):
        refs = fg.refs(i)
        assert refs[0].arg == "target" and refs[0].var == f.target
        assert all(r.kind in ("whole", "direct", "group", "gate", "lag") for r in refs)
