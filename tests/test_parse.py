"""The whole v1 language parses (LANGUAGE.md), with spans on the AST nodes; the grammar
ships inside the installed package."""
import importlib.resources
from pathlib import Path

import pytest

import emdsl
from emdsl.frontend import ast
from emdsl.frontend.parse import grammar_text, parse

MODELS = sorted((Path(__file__).resolve().parent.parent / "models").glob("*.emm"))

EVERYTHING = """\
# every construct of the language in one file
model Everything

family Rayleigh(s2 : pos) on pos {
    logpdf(x) = log(x) - log(s2) - x^2 / (2 * s2)
}

dim N, D; dim K = 3
dim T
data   x[N]      : real[D]
data   y[N, D]   : bin
data   doc[T]    : cat[N]
hyper  alpha     : pos = 1e-3
hyper  m0        : real[D] = zeros(D)
hyper  W0        : spd[D] = eye(D) / 2
param  mu[K]     : real[D]
param  A         : real[D, D]
latent z[T]      : cat[K]

let scale = sqrt(alpha) * exp(-1)
for k in 1:K {
    mu[k] ~ MvNormal(m0, prec=W0)   # keyword argument
}
z[1] ~ Categorical(ones(K) / K)
for t in 2:T {
    z[t] ~ Categorical(
        transpose(A)[z[t-1]],      # a newline inside ( ) continues the statement
    )
}
for n in 1:N { for d in 1:D { y[n, d] ~ Bernoulli(0.5) } }
for n in 1:N { x[n] ~ MvNormal(A @ mu[1] + dot(m0, m0), diag(ones(D)) * scale^2) }
"""


def test_every_construct_parses():
    m = parse(EVERYTHING, "everything.emm")
    assert m.name == "Everything"
    assert [f.name for f in m.families] == ["Rayleigh"]
    assert [d.name for d in m.dims] == ["N", "D", "K", "T"]
    assert {v.name: v.role for v in m.vars}["z"] == "latent"
    fors = [s for s in m.statements if isinstance(s, ast.For)]
    assert [f.var for f in fors] == ["k", "t", "n", "n"]
    chain = fors[1]
    assert isinstance(chain.start, ast.Num) and chain.start.value == 2
    sample = chain.body[0]
    assert sample.dist.func == "Categorical"
    mu_prior = fors[0].body[0]
    assert [k.name for k in mu_prior.dist.kwargs] == ["prec"]
    nested = fors[2].body[0]
    assert isinstance(nested, ast.For) and nested.var == "d"


def test_spans_point_at_the_source():
    m = parse(EVERYTHING, "everything.emm")
    lines = EVERYTHING.splitlines()
    for v in m.vars:
        line = lines[v.span.line - 1]
        assert line[v.span.col - 1:].startswith(v.name)
    let = next(s for s in m.statements if isinstance(s, ast.Let))
    assert lines[let.span.line - 1].startswith("let scale")


def test_show_round_trips_expressions():
    m = parse("model M\nlet a = (1 + b[i, j]) * -c ^ 2 / f(x, k=3)\n", "m.emm")
    let = m.statements[0]
    again = parse(f"model M\nlet a = {ast.show(let.value)}\n", "m.emm").statements[0]
    assert again.value == let.value


@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_acceptance_models_parse(path):
    m = parse(path.read_text(), str(path))
    assert m.statements


def test_semicolons_and_blank_lines():
    m = parse("\n\n# c\nmodel M ; dim N ;; dim K = 2\n\n\n", "m.emm")
    assert [d.name for d in m.dims] == ["N", "K"]


def test_grammar_ships_in_the_package():
    """The installed package carries the grammar (the checkout falls back to grammars/)."""
    resource = importlib.resources.files("emdsl").joinpath("_grammar/emm.lark")
    checkout = Path(emdsl.__file__).resolve().parent.parent / "grammars" / "emm.lark"
    assert resource.is_file() or checkout.is_file()
    if "site-packages" in emdsl.__file__:
        assert resource.is_file()
        assert resource.read_text() == grammar_text()
    assert "start:" in grammar_text()
