"""The factor-graph picture without Graphviz (issue 8, item 4): the layout puts every node
inside exactly the plates it belongs to, plates nest or stay apart, and the generative
order runs down the page; the drawing writes a picture."""
from __future__ import annotations

from pathlib import Path

import pytest

from emdsl.frontend.check import check
from emdsl.frontend.parse import parse
from emdsl.graph import build_graph
from emdsl.graph.layout import _homes, layout

ROOT = Path(__file__).resolve().parents[1]

NESTED = """model Nested
dim N, K, J
data   y[N]     : real
data   g[N]     : cat[K]
data   h[N]     : cat[J]
hyper  s0       : pos = 1.0
param  top      : real
param  mid[K]   : real
param  low[K, J] : real
param  sd       : pos
for k in 1:K {
    mid[k] ~ Normal(top, s0)
    for j in 1:J {
        low[k, j] ~ Normal(mid[k], s0)
    }
}
for n in 1:N {
    y[n] ~ Normal(low[g[n], h[n]], sd)
}
"""


def _graphs():
    out = [pytest.param(p, id=p.stem) for p in sorted((ROOT / "models").glob("*.emm"))]
    return out + [pytest.param(NESTED, id="nested")]


def _fg(src):
    if isinstance(src, Path):
        return build_graph(check(parse(src.read_text(), str(src))))
    return build_graph(check(parse(src, "nested.emm")))


def _inside(p, box):
    x, y = p
    return box.x0 < x < box.x1 and box.y0 < y < box.y1


@pytest.mark.parametrize("src", _graphs())
def test_every_node_is_inside_exactly_its_plates(src):
    fg = _fg(src)
    lay, homes = layout(fg), _homes(fg)
    assert set(lay.positions) == set(fg.g.nodes)
    nests = {path[:i] for path in homes.values() for i in range(1, len(path) + 1)}
    assert sorted(box.path for box in lay.plates) == sorted(nests)
    for box in lay.plates:
        for node, pos in lay.positions.items():
            member = homes[node][:box.depth] == box.path
            assert _inside(pos, box) == member, (node, box.label)


@pytest.mark.parametrize("src", _graphs())
def test_plates_nest_or_stay_apart_and_the_order_runs_down(src):
    fg = _fg(src)
    lay = layout(fg)
    for a in lay.plates:
        for b in lay.plates:
            if a is b:
                continue
            apart = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
            a_in_b = b.x0 < a.x0 and a.x1 < b.x1 and b.y0 < a.y0 and a.y1 < b.y1
            b_in_a = a.x0 < b.x0 and b.x1 < a.x1 and a.y0 < b.y0 and b.y1 < a.y1
            assert apart or (a_in_b and a.path[:b.depth] == b.path) or \
                (b_in_a and b.path[:a.depth] == a.path), (a, b)
    for i, f in enumerate(fg.model.factors):
        node = fg.node_of(i)
        fy = lay.positions[node][1]
        for r in fg.refs(i):
            vy = lay.positions[r.var][1]
            if r.arg == "target":
                assert vy < fy
            elif r.var != f.target:   # (a lag z[t-1] reads the variable it samples)
                assert vy > fy, (r.var, node)


def test_nested_plates_draw_inside_each_other(tmp_path):
    pytest.importorskip("matplotlib")
    from emdsl import plots
    fg = _fg(NESTED)
    lay = layout(fg)
    boxes = {b.label: b for b in lay.plates}
    k, j = boxes["k = 1..K"], boxes["j = 1..J"]
    assert k.x0 < j.x0 and j.x1 < k.x1 and j.path[:1] == k.path and j.depth == 2
    plots.save(plots.factor_graph(fg), tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


def test_params_without_a_prior_sit_in_the_plates_of_their_declared_shape():
    """gaussian_mixture's mu[K] and Sigma[K] (no prior, no loop over K) get a k = 1..K plate
    of their own, outside the items' plate; topics_em's theta[D] sits in a D plate."""
    lay = layout(_fg(ROOT / "models" / "gaussian_mixture.emm"))
    boxes = {b.label: b for b in lay.plates}
    for name in ("mu", "Sigma"):
        assert _inside(lay.positions[name], boxes["k = 1..K"])
        assert not _inside(lay.positions[name], boxes["n = 1..N"])
    lay = layout(_fg(ROOT / "models" / "topics_em.emm"))
    inside = [b.label for b in lay.plates if _inside(lay.positions["theta"], b)]
    assert inside == ["d = 1..D"]
