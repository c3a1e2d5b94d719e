"""Messages that help (issue 8, item 7): "did you mean" for misspelt keywords, families
and names; an unclosed brace names the line where it opened; a hint that fits the role
of a variable sampled twice."""
from __future__ import annotations

from pathlib import Path

import pytest

import emdsl
from emdsl.errors import EmmError, EmmSemanticError, EmmSyntaxError, did_you_mean

GMM = (Path(__file__).resolve().parents[1] / "models" / "gaussian_mixture.emm").read_text()


def _error(source):
    with pytest.raises(EmmError) as info:
        emdsl.loads(source, name="m.emm", use_cache=False)
    return info.value


@pytest.mark.parametrize("wrong, right, kind, message, suggestion", [
    ("MvNormal(mu", "MvNormall(mu", EmmSemanticError, "unknown family 'MvNormall'",
     "did you mean 'MvNormal'?"),
    ("MvNormal(mu", "mvnormal(mu", EmmSemanticError, "unknown family 'mvnormal'",
     "did you mean 'MvNormal'?"),
    ("latent z[N]", "latnet z[N]", EmmSyntaxError, "unknown keyword 'latnet'",
     "did you mean 'latent'?"),
    ("param  weights", "parm weights", EmmSyntaxError, "unknown keyword 'parm'",
     "did you mean 'param'?"),
    ("(mu[z[n]]", "(muu[z[n]]", EmmSemanticError, "undeclared name 'muu'",
     "did you mean 'mu'?"),
    ("Categorical(weights)", "Categorical(weigths)", EmmSemanticError,
     "undeclared name 'weigths'", "did you mean 'weights'?"),
    ("x[n] ~", "xx[n] ~", EmmSemanticError, "'xx' is sampled but not declared",
     "did you mean 'x'?"),
])
def test_misspellings_get_the_closest_name(wrong, right, kind, message, suggestion):
    err = _error(GMM.replace(wrong, right))
    assert isinstance(err, kind) and err.msg == message
    assert err.hint.startswith(suggestion)
    assert err.span.line > 0 and "^" in err.format()


def test_no_suggestion_when_nothing_is_close():
    err = _error(GMM.replace("MvNormal(mu", "Zebra(mu"))
    assert "did you mean" not in err.hint and "family" in err.hint
    assert did_you_mean("zzz", ["mu", "Sigma"]) is None
    assert did_you_mean("sigma", ["mu", "Sigma"]) == "did you mean 'Sigma'?"


def test_an_unclosed_brace_names_the_line_where_it_opened():
    err = _error(GMM.rstrip().rstrip("}"))
    assert err.msg == "the '{' of line 15 is never closed" and err.span.line == 15
    nested = ("model M\ndim N\nparam mu : real\nfor n in 1:N {\n  for k in 1:3 {\n"
              "    x[n] ~ Normal(mu, 1)\n  }\ndata x[N] : real\n")
    err = _error(nested)
    assert err.span.line == 8 and "the '{' of line 4 is still open" in err.hint


def test_a_param_sampled_twice_is_told_about_priors():
    src = ("model M\ndim N\nparam mu : real\ndata x[N] : real\nmu ~ Normal(0, 10)\n"
           "mu ~ Normal(1, 10)\nfor n in 1:N { x[n] ~ Normal(mu, 1) }\n")
    err = _error(src)
    assert "sampled twice" in err.msg and "takes one prior" in err.hint


def test_the_cli_prints_the_suggestion_without_a_traceback(tmp_path, capsys):
    from emdsl.cli import main
    (tmp_path / "m.emm").write_text(GMM.replace("latent z[N]", "latnet z[N]"))
    assert main(["compile", str(tmp_path / "m.emm")]) == 1
    err = capsys.readouterr().err
    assert "did you mean 'latent'?" in err and "Traceback" not in err
