"""The semantic checker (stage 2) and the parts of the front end it relies on: name
resolution (a model's own `pi`, use before declaration), identifier rules (Python builtins,
family blocks), indices of sampled variables, number literals and line counting.

Golden transcripts of the same errors live in tests/golden/bad (test_errors.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emdsl
from emdsl import EmmSemanticError, EmmSyntaxError
from emdsl.frontend.check import FIT_OPTIONS, PYTHON_BUILTINS, check
from emdsl.frontend.parse import parse

ROOT = Path(__file__).resolve().parents[1]

MIXTURE = """\
model M
dim N
dim K = 2
data x[N] : real
param {w} : simplex[K]
param mu[K] : real
latent z[N] : cat[K]
for n in 1:N {{
    z[n] ~ Categorical({w})
    x[n] ~ Normal(mu[z[n]], 1)
}}
"""


def checked(src: str):
    return check(parse(src, "t.emm"))


def error(src: str, kind=EmmSemanticError):
    with pytest.raises(kind) as info:
        checked(src)
    return info.value


# ----------------------------------------------------------------------------- 1. pi
def test_a_models_own_pi_shadows_the_constant():
    m = checked(MIXTURE.format(w="pi"))
    assert m.role("pi") == "param"
    (cat,) = [f for f in m.factors if f.family.name == "Categorical"]
    assert cat.arg["p"] == emdsl.frontend.ast.Name("pi", None)


def test_a_models_own_pi_is_fitted_as_a_param():
    x = np.r_[np.zeros(30), np.full(10, 8.0)]
    fit = emdsl.loads(MIXTURE.format(w="pi"), use_cache=False).fit(x=x, seed=0)
    assert sorted(fit.params["pi"].round(2)) == [0.25, 0.75]


def test_a_hyper_pi_shadows_the_constant_in_defaults():
    src = "model M\nhyper pi : pos = 3\nhyper a : pos = 2 * pi\n" + \
        MIXTURE.format(w="w").split("\n", 1)[1]
    m = checked(src)
    assert m.vars["a"].default == emdsl.frontend.ast.BinOp("*", emdsl.frontend.ast.Num(2, True, None),
                                                  emdsl.frontend.ast.Name("pi", None), None)


def test_the_constant_pi_still_resolves():
    src = MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], 2 * pi)")
    checked(src)


def test_pi_declared_below_its_use_is_reported():
    src = MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], pi)") + \
        "hyper pi : pos = 3\n"
    e = error(src)
    assert e.msg == "'pi' is used before its declaration at line 12"
    assert e.span.line == 10


# ----------------------------------------------------------------------------- 2. indices
@pytest.mark.parametrize("index", ["n+1", "n - 1", "2*n", "-n"])
def test_index_arithmetic_on_a_sampled_variable_is_rejected(index):
    src = MIXTURE.format(w="w").replace("z[n] ~", f"z[{index}] ~")
    e = error(src)
    assert f"index 1 of 'z' is '{index}'" in e.msg
    assert "plain loop variables or integer constants" in e.msg
    assert (e.span.line, e.span.col) == (9, 7)
    assert "for n in 2:N" in e.hint


def test_the_chain_pattern_is_still_accepted():
    m = checked((ROOT / "models" / "gaussian_hmm.emm").read_text(encoding="utf-8"))
    assert [f.index for f in m.factors if f.target == "z"][0] == (emdsl.frontend.ast.Num(1, True, None),)
    with pytest.raises(emdsl.NonConjugateError, match="not supported yet"):
        emdsl.load(ROOT / "models" / "gaussian_hmm.emm", use_cache=False)


@pytest.mark.parametrize("index", ["0", "1.5"])
def test_a_constant_index_is_a_positive_integer(index):
    e = error(MIXTURE.format(w="w").replace("z[n] ~", f"z[{index}] ~"))
    assert "must be a positive integer" in e.msg


# ----------------------------------------------------------------------------- 3. builtins
@pytest.mark.parametrize("name", ["float", "min", "int", "range", "len", "abs", "dict"])
@pytest.mark.parametrize("decl", ["param {}[K] : real", "dim {}", "let {} = 1",
                                  "model {}", "for {} in 1:N {{ }}"])
def test_python_builtins_are_rejected(name, decl):
    head, rest = MIXTURE.format(w="w").split("\n", 1)
    src = decl.format(name) + "\n" + rest if decl.startswith("model") \
        else head + "\n" + rest.replace("dim K = 2\n", "dim K = 2\n" + decl.format(name) + "\n")
    e = error(src)
    assert e.msg.endswith(f"'{name}' is the name of a Python builtin"), e.msg
    assert "choose another name" in e.hint


def test_every_public_builtin_is_reserved_except_the_languages_own():
    import builtins
    public = {n for n in dir(builtins) if not n.startswith("_")}
    assert public - PYTHON_BUILTINS == {"sum", "bin"}


def test_language_names_that_are_builtins_get_the_languages_message():
    e = error(MIXTURE.format(w="w").replace("param mu[K]", "param sum[K]")
              .replace("mu[z[n]]", "sum[z[n]]"))
    assert e.msg == "'sum' is the name of a family or function"
    # `bin` is a type name but no function: generated code never calls Python's bin
    checked(MIXTURE.format(w="w").replace("mu", "bin"))


# ----------------------------------------------------------------------------- 4. numbers
@pytest.mark.parametrize("text", ["1e400", "1.5E+309", "9" * 400])
def test_non_finite_number_literals_are_syntax_errors(text):
    src = MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", f"Normal(mu[z[n]], {text})")
    with pytest.raises(EmmSyntaxError) as info:
        parse(src, "t.emm")
    e = info.value
    assert e.msg.startswith("number out of range")
    assert (e.span.line, e.span.col) == (10, 29)
    assert e.source == src and "^" in e.format()


def test_tiny_numbers_are_fine():
    parse(MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], 1e-300)"))


# ----------------------------------------------------------------------------- 5. brackets
def test_unclosed_bracket_in_the_first_syntax_error_of_a_process():
    code = "import emdsl; emdsl.loads('model M\\ny ~ Normal(0, 1\\n}\\n')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert "inline:2:11: error: '(' is never closed" in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------- 6. hints
def test_hint_for_a_matrix_datum_sampled_with_one_index():
    src = ("model M\ndim N, D\ndata x[N, D] : bin\nparam p : unit\n"
           "for n in 1:N {\n    x[n] ~ Bernoulli(p)\n}\n")
    e = error(src)
    assert "x[n, n]" not in e.hint
    assert "`for i in 1:D { x[n, i] ~ ... }`" in e.hint


def test_hint_uses_the_enclosing_loops():
    src = ("model M\ndim N, D\ndata x[N, D] : bin\nparam p : unit\n"
           "for n in 1:N { for d in 1:D {\n    x[n] ~ Bernoulli(p)\n} }\n")
    assert error(src).hint == "write `x[n, d]`, one loop variable per index"


def test_hint_without_any_loop_names_two_fresh_variables():
    src = "model M\ndim N, D\ndata x[N, D] : bin\nparam p : unit\nx ~ Bernoulli(p)\n"
    hint = error(src).hint
    assert "`for i in 1:N { for j in 1:D { x[i, j] ~ ... } }`" in hint
    # the hint itself passes the checker
    checked(src.replace("x ~ Bernoulli(p)", "for i in 1:N { for j in 1:D { x[i, j] ~ "
                                             "Bernoulli(p) } }"))


# ----------------------------------------------------------------------------- 7. order
def test_use_before_declaration():
    src = MIXTURE.format(w="w").replace("param mu[K] : real\n", "") + "param mu[K] : real\n"
    e = error(src)
    assert e.msg == "'mu' is used before its declaration at line 11"
    assert (e.span.line, e.span.col) == (9, 19)
    assert e.hint == "move the declaration of param 'mu' above line 9"


def test_dim_used_before_its_declaration():
    e = error("model M\ndata x[N] : real\ndim N\nfor n in 1:N { x[n] ~ Normal(0, 1) }\n")
    assert e.msg == "'N' is used before its declaration at line 3"
    assert e.hint == "move the declaration of dim 'N' above line 2"


def test_sampled_before_its_declaration():
    e = error("model M\ndim N\nfor n in 1:N { x[n] ~ Normal(0, 1) }\ndata x[N] : real\n")
    assert e.msg == "'x' is used before its declaration at line 4"


def test_let_used_before_its_definition():
    src = MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], s)") + \
        "let s = 2\n"
    assert error(src).msg == "'s' is used before its declaration at line 12"


def test_a_name_in_its_own_declaration():
    e = error("model M\nhyper a : pos = a + 1\n")
    assert e.msg == "'a' is used in its own declaration"


def test_a_name_declared_nowhere_is_still_undeclared():
    e = error(MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], s)"))
    assert e.msg == "undeclared name 's'"


# ----------------------------------------------------------------------------- 8. lines
@pytest.mark.parametrize("odd", ["\u2028", "\x0c", "\x1c", "\x85", "\v"])
def test_line_numbers_do_not_drift_on_unusual_line_breaks(odd):
    src = f"model M\n# a comment {odd} with an odd character\n" + \
        MIXTURE.format(w="w").split("\n", 1)[1].replace("Normal(mu[z[n]], 1)",
                                                          "Normal(mu[z[n]], s)")
    e = error(src)
    assert e.span.line == 11
    assert "  11 |     x[n] ~ Normal(mu[z[n]], s)\n" in e.format()
    m = checked(src.replace("mu[z[n]], s)", "mu[z[n]], 1)"))
    assert [f.text for f in m.factors] == ["z[n] ~ Categorical(w)", "x[n] ~ Normal(mu[z[n]], 1)"]


def test_caret_excerpt_with_windows_line_ends():
    src = MIXTURE.format(w="w").replace("Normal(mu[z[n]], 1)", "Normal(mu[z[n]], s)")
    e = error(src.replace("\n", "\r\n"))
    assert "  10 |     x[n] ~ Normal(mu[z[n]], s)\n" in e.format()


# ----------------------------------------------------------------------------- 9. families
FAMILY = """\
model M
family {name}({param} : pos) on pos {{
    logpdf({var}) = log({param}) - {param} * {var}
}}
dim N
data y[N] : pos
param r : pos
for n in 1:N {{ y[n] ~ {name}(r) }}
"""


@pytest.mark.parametrize("name, param, var, msg, where", [
    ("class", "r", "x", "the family name 'class' is a reserved word", (2, 8)),
    ("float", "r", "x", "the family name 'float' is the name of a Python builtin", (2, 8)),
    ("Expo", "lambda", "x", "the family parameter 'lambda' is a reserved word", (2, 13)),
    ("Expo", "_p", "x", "the family parameter '_p' begins with '_'", (2, 13)),
    ("Expo", "seed", "x", "the family parameter 'seed' is the name of a fit option", (2, 13)),
    ("Expo", "r", "min", "the family variable 'min' is the name of a Python builtin", (3, 12)),
    ("Expo", "r", "_x", "the family variable '_x' begins with '_'", (3, 12)),
])
def test_family_identifiers_follow_the_identifier_rules(name, param, var, msg, where):
    e = error(FAMILY.format(name=name, param=param, var=var))
    assert e.msg == msg
    assert (e.span.line, e.span.col) == where


def test_a_valid_family_block_passes():
    m = checked(FAMILY.format(name="Expo", param="rate", var="x"))
    assert m.families["Expo"].param_names == ("rate",)


# ----------------------------------------------------------------------------- misc
def test_fit_options_come_from_the_checker():
    from emdsl import api
    assert api.FIT_OPTIONS is FIT_OPTIONS
    import emdsl.frontend.check
    assert "FIT_OPTIONS" in emdsl.frontend.check.__all__


# ----------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("arg, ok", [
    ("1 - q[z[n]]", True), ("1 / (1 + exp(-a[z[n]]))", True), ("q[z[n]] / 2", True),
    ("exp(-exp(a[z[n]]))", True), ("2 - q[z[n]]", False), ("q[z[n]] + q[z[n]]", False),
    ("1 / (2 + a[z[n]])", False), ("-q[z[n]]", False),
])
def test_probability_arguments_by_their_range(arg, ok):
    """A Bernoulli's p must lie in (0, 1): decided from the range of the expression."""
    decls = "".join(f"param {name}[K] : {kind}\n" for name, kind in (("q", "unit"), ("a", "real"))
                    if f"{name}[" in arg)
    src = f"""model R
dim N
dim K = 2
data y[N] : bin
param w : simplex[K]
{decls}latent z[N] : cat[K]
for n in 1:N {{
  z[n] ~ Categorical(w)
  y[n] ~ Bernoulli({arg})
}}
"""
    if ok:
        check(parse(src, "r.emm"))
    else:
        with pytest.raises(EmmSemanticError, match="needs 'p' of type unit"):
            check(parse(src, "r.emm"))
