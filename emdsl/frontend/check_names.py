"""Naming rules of the checker (part of stage 2): which identifiers a model may declare.

Generated modules bind a model's names as Python locals next to their own names, so a
model may not use Python keywords or builtins, the generated code's own names, or names
beginning with '_'.
"""
from __future__ import annotations

import builtins
import keyword
import re

from . import ast
from ..errors import Span

# keyword arguments of Model.fit (api.py imports them from here); a model may not use them
FIT_OPTIONS = ("seed", "max_iter", "tol", "method", "n_init", "init", "verbose",
               "batch_size", "kappa", "reg", "callback", "local_iter", "checkpoint",
               "checkpoint_every", "resume", "delay")
# names the generated module uses next to the model's own names (its functions, imports
# and the locals of its functions); a model may not declare them
GENERATED_NAMES = frozenset((
    "q_now", "prior_scale", "prior_params", "expectations", "item_resp", "row_resp",
    "n_items", "only", "np", "numpy", "scipy", "exp", "log", "sqrt", "digamma", "gammaln", "logsumexp", "polygamma",
    "MODEL", "ALGORITHM", "LATENT", "PARAMS", "DATA", "BLOCK_BYTES", "n_components",
    "hyper_problems", "problems",
    "param_shapes", "prepare", "e_step", "block_stats", "finish_stats", "expected_stats",
    "m_step", "log_prior", "init", "elbo", "fit", "st", "hyp", "data", "params", "n_rows",
    "n_comp", "resp", "resp_block", "ess", "loglik", "lo", "hi", "log_joint", "log_prior_z",
    "count_k", "old", "new", "counts", "counts_total", "stats", "n_k", "dim", "sum_x",
    "sum_xx", "shift", "mean_k", "cov_k", "prec_x", "prec_0", "prior_mean", "lhs", "rhs",
    "features", "rng", "reg", "trace", "log_p", "values", "n_cells", "centred_mean",
    "prec_cells", "msg_h", "msg_J", "prior_prec", "prior_mean_c", "mean_cells", "scatter",
    "dev", "prior_msg", "prior_eta", "value", "centring", "centre", "merge_stats",
    "PARAM_KINDS", "t_block"))
# generated names built from a model name: eta_x_0, A_x, S_x_0, N_x, log_phi, ...
GENERATED_PREFIXES = ("eta", "A", "S", "N", "T", "C", "G", "logh", "log", "mean", "cov",
                      "shift", "B", "X", "spread", "data", "shape")
BUILTIN_FUNCS = {"dot", "exp", "log", "sqrt", "sum", "diag", "eye", "zeros", "ones",
                 "transpose", "lgamma", "digamma"}
# element type kinds and how many element dims each takes
TYPE_RANK = {"real": None, "pos": None, "unit": 0, "simplex": 1, "spd": 1, "cat": 1,
             "count": 0, "bin": 0}
# names the language itself defines (functions, types, the constant pi); the ones that are
# also Python builtins (`sum`, `bin`) are reported by the language's own rules instead
LANGUAGE_NAMES = frozenset(BUILTIN_FUNCS) | frozenset(TYPE_RANK) | {"pi"}
# Python's builtins (float, int, min, range, ...): generated code calls them, so a model
# name may not hide them
PYTHON_BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_")) - LANGUAGE_NAMES


def identifier_problem(name: str, what: str):
    """(message, hint) when ``name`` may not be declared as a ``what``, else None."""
    if name.startswith("_"):
        return (f"the {what} '{name}' begins with '_'",
                "names beginning with '_' are reserved for generated code")
    if keyword.iskeyword(name) or name in ("print", "sp", "numpy"):
        return (f"the {what} '{name}' is a reserved word",
                "choose another name (generated Python code must stay valid)")
    if name in GENERATED_NAMES:
        return f"the {what} '{name}' is a name the generated code uses", "choose another name"
    if name in FIT_OPTIONS:
        return (f"the {what} '{name}' is the name of a fit option",
                f"fit options ({', '.join(FIT_OPTIONS)}) cannot be model names")
    if name in PYTHON_BUILTINS:
        return (f"the {what} '{name}' is the name of a Python builtin",
                f"generated Python code uses Python's '{name}', so a model may not hide it; "
                "choose another name")
    return None


def generated_clash(name: str, declared) -> str | None:
    """The declared name whose generated statistic ``name`` would shadow (``N_y`` for a
    datum ``y``), else None."""
    head, _, rest = name.partition("_")
    base = re.sub(r"_\d+$", "", rest)
    return base if head in GENERATED_PREFIXES and base in declared else None


def index_hint(v, loops, declared) -> str:
    """Write ``x[n, i]``: one distinct index variable per plate index of ``v``, the
    enclosing loop over each size if there is one, else a fresh name and its loop."""
    free = list(loops)
    taken = {lp.var for lp in loops} | set(declared)
    fresh = (c for c in "ijklmpqrsuvw" + "abcdefgh" if c not in taken)
    names, new_loops = [], []
    for size in v.shape:
        lp = next((lp for lp in free if ast.show(lp.stop) == ast.show(size)), None)
        if lp is not None:
            free.remove(lp)
            names.append(lp.var)
        else:
            name = next(fresh, f"i{len(names) + 1}")
            names.append(name)
            new_loops.append(f"for {name} in 1:{ast.show(size)}")
    target = f"{v.name}[{', '.join(names)}]"
    if new_loops:
        nested = " ".join(f"{lp} {{" for lp in new_loops)
        return (f"index each plate axis by its own loop variable: "
                f"`{nested} {target} ~ ... {' '.join('}' * len(new_loops))}`")
    if len(names) > 1:
        return f"write `{target}`, one loop variable per index"
    return f"write `{target}`"


def family_var_span(src: str, decl: ast.FamilyDecl) -> Span:
    """Where ``logpdf(x)`` names the family's variable (the AST keeps no span for it)."""
    lines = src.split("\n") if src else []
    if not 1 <= decl.span.line <= len(lines):
        return decl.span
    start = sum(len(ln) + 1 for ln in lines[:decl.span.line - 1]) + decl.span.col - 1
    m = re.compile(r"logpdf\s*\(\s*(" + re.escape(decl.var) + r")\b").search(src, start)
    if m is None:
        return decl.span
    line = src.count("\n", 0, m.start(1)) + 1
    col = m.start(1) - (src.rfind("\n", 0, m.start(1)) + 1) + 1
    return Span(decl.span.file, line, col, line, col + len(decl.var))
