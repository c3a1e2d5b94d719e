"""Printing helpers shared by the code generator: sympy -> numpy source, known .emm
expressions -> numpy source, and a small source-code builder."""
from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import SciPyPrinter

from ..frontend import ast
from ..errors import NonConjugateError


class EmmPrinter(SciPyPrinter):
    """SciPy printer with fully qualified names (``numpy.exp``, ``scipy.special.gammaln``,
    ``numpy.pi``): no name of a model can shadow a function the derivation printed.  A
    function sympy cannot print for numpy is an error here, not a name left undefined."""

    def __init__(self):
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _print_polygamma(self, expr):
        if expr.args[0] == 0:
            return f"scipy.special.digamma({self._print(expr.args[1])})"
        return (f"scipy.special.polygamma({self._print(expr.args[0])}, "
                f"{self._print(expr.args[1])})")

    def _print_loggamma(self, expr):
        return f"scipy.special.gammaln({self._print(expr.args[0])})"

    def _print_LambertW(self, expr):
        """W(y) on its principal real branch; W(c exp(u)) with c > 0 as the Wright omega
        function of u + log c, which neither overflows nor leaves the reals."""
        y = expr.args[0]
        exps = [f for f in sp.Mul.make_args(y) if isinstance(f, sp.exp)]
        if len(expr.args) == 1 and len(exps) == 1:
            c = sp.Mul(*[f for f in sp.Mul.make_args(y) if f is not exps[0]])
            if c.is_positive:
                return (f"numpy.real(scipy.special.wrightomega("
                        f"{self._print(exps[0].args[0] + sp.log(c))}))")
        return f"numpy.real(scipy.special.lambertw({self._print(y)}))"

    def _print_Pi(self, expr):
        return "numpy.pi"  # the constant; a model's own `pi` is a Symbol, printed by its name


_PRINTER = EmmPrinter()


def py(expr: sp.Expr) -> str:
    """numpy source for a sympy expression (elementwise; arrays broadcast)."""
    return _PRINTER.doprint(sp.sympify(expr))


_FUNCS = {"exp": "exp", "log": "log", "sqrt": "sqrt", "sum": "np.sum", "diag": "np.diag",
          "transpose": "np.transpose", "lgamma": "gammaln", "digamma": "digamma",
          "dot": "np.dot"}


def comment_safe(text: str) -> str:
    """Text that can stand in a generated comment or docstring: no line breaks, quotes
    or non-printable characters (file names and source lines come from the user)."""
    out = text.encode("unicode_escape").decode("ascii")
    return out.replace('"""', '\\"\\"\\"')


def known(e: ast.Expr, env: str = "hyp") -> str:
    """numpy source for an expression of dims, hypers and numbers (values from dict ``env``)."""
    if isinstance(e, ast.Num):
        return str(int(e.value)) if e.is_int else repr(e.value)
    if isinstance(e, ast.Name):
        if e.id == "pi":  # a model's own pi (a hyper) shadows the constant
            return f'{env}.get("pi", np.pi)'
        return f'{env}["{e.id}"]'
    if isinstance(e, ast.Neg):
        return f"(-{known(e.operand, env)})"
    if isinstance(e, ast.BinOp):
        op = {"^": "**"}.get(e.op, e.op)
        return f"({known(e.left, env)} {op} {known(e.right, env)})"
    if isinstance(e, ast.Call):
        args = [known(a, env) for a in e.args]
        if e.func == "eye":
            return f"np.eye(int({args[0]}))"
        if e.func in ("zeros", "ones"):
            return f"np.{e.func}(int({args[0]}))"
        if e.func in _FUNCS:
            return f"{_FUNCS[e.func]}({', '.join(args)})"
    if isinstance(e, ast.Index) and all(isinstance(i, ast.Num) and i.is_int for i in e.indices):
        idx = ", ".join(str(int(i.value) - 1) for i in e.indices)  # 1-based -> 0-based
        return f"np.asarray({known(e.base, env)})[{idx}]"
    raise NonConjugateError(f"not supported yet: '{ast.show(e)}' in this position (only "
                            "dims, hypers, numbers and constant indices)", e.span,
                            "use a hyper without a plate index here")


def value_source(e: ast.Expr, loops: tuple = (), params: frozenset = frozenset(),
                 env: str = "hyp", lookup=None) -> str:
    """numpy source for an expression of knowns and params (a prior's arguments), for all
    elements of the plates ``loops`` at once: ``Lambda[k]`` inside ``for k`` is the whole
    array ``params["Lambda"]``."""
    get = lookup or (lambda p: f'params["{p}"]')   # source of a param's value by name
    if isinstance(e, ast.Index) and isinstance(e.base, ast.Name) and e.base.id in params \
            and tuple(getattr(i, "id", None) for i in e.indices) == loops:
        return f"np.asarray({get(e.base.id)}, dtype=float)"
    if isinstance(e, ast.Name) and e.id in params:  # a param shared by the plate's elements
        return f"np.asarray({get(e.id)}, dtype=float)"
    if isinstance(e, ast.BinOp):
        op = {"^": "**"}.get(e.op, e.op)
        return (f"({value_source(e.left, loops, params, env, lookup)} {op} "
                f"{value_source(e.right, loops, params, env, lookup)})")
    if isinstance(e, ast.Neg):
        return f"(-{value_source(e.operand, loops, params, env, lookup)})"
    return known(e, env)


def hyper_locals(s, cm, symbols):
    """Locals ``name = hyp["name"]`` for the dims and hypers among sympy ``symbols``."""
    for sym in sorted(symbols, key=str):
        if str(sym) in cm.dims or cm.role(str(sym)) == "hyper":
            s(f'{sym} = hyp["{sym}"]')


class Source:
    """Accumulates indented lines of generated Python."""

    def __init__(self):
        self.lines: list[str] = []
        self.level = 0

    def __call__(self, text: str = ""):
        for line in text.split("\n"):
            self.lines.append(("    " * self.level + line) if line else "")
        return self

    def indent(self):
        self.level += 1
        return self

    def dedent(self):
        self.level -= 1
        return self

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def module_imports(body: str) -> list:
    """The import lines a module body needs: numpy always; scipy.special and scipy.sparse
    only when used (importing scipy.special costs more than the rest of loading a model)."""
    lines = ["import numpy as np"]
    if re.search(r"\bnumpy\.", body):
        lines.insert(0, "import numpy")
    if "scipy.special." in body:
        lines.append("import scipy.special")
    if "scipy.sparse." in body:
        lines.append("import scipy.sparse")
    if "scipy.optimize." in body:
        lines.append("import scipy.optimize")
    called = _bare_calls(body)
    bare = [n for n in ("exp", "log", "sqrt") if n in called]
    if bare:
        lines.append(f"from numpy import {', '.join(bare)}")
    special = [n for n in ("digamma", "gammaln", "logsumexp", "polygamma") if n in called]
    if special:
        lines.append(f"from scipy.special import {', '.join(special)}")
    return lines


def _bare_calls(body: str) -> set:
    """Names called without a module prefix (``log(...)``, not ``np.log(...)``) in the
    code of ``body`` that no enclosing function imports itself (the family table's
    runtime functions import scipy.special inside, so that a module that only needs them
    in a rarely called function does not pay for scipy.special at load); comments and
    strings do not count."""
    import ast as pyast

    out: set = set()

    def visit(node, local: frozenset):
        if isinstance(node, (pyast.FunctionDef, pyast.Lambda)):
            own = {a.asname or a.name for sub in pyast.walk(node)
                   if isinstance(sub, pyast.ImportFrom) for a in sub.names}
            local = local | own
        if isinstance(node, pyast.Call) and isinstance(node.func, pyast.Name) \
                and node.func.id not in local:
            out.add(node.func.id)
        for child in pyast.iter_child_nodes(node):
            visit(child, local)
    visit(pyast.parse(body), frozenset())
    return out


def logh_sum(const: list, per_row: bool = False) -> str:
    """Source of the sum of the log h(x) terms that prepare keeps for the data ``const``
    (totals ``st["logh_<x>"]``, or per row ``st["logh_rows_<x>"]``)."""
    field = "logh_rows_" if per_row else "logh_"
    return " + ".join(f'st["{field}{x}"]' for x in const) if const else "0.0"


def variable_mean(s, q) -> str:
    """Write E_q[v] of scalar q factor ``q`` (``ScalarQ.variable_mean``) into a local
    (q's parameters already locals) when it is not among v's statistics; returns the
    dict entry for it ('' when v is a statistic or has no closed mean)."""
    found = q.variable_mean()
    if found is None or q.symbol in q.T:
        return ""
    mean, conds = found
    name = f"mean_{q.var}"
    if conds:
        s('with np.errstate(divide="ignore", invalid="ignore"):')
        s(f"    {name} = np.where({' & '.join(f'({py(c)})' for c in conds)}, {py(mean)}, "
          f"np.inf)  # E[{q.symbol}] = exp(A(eta + e_log) - A(eta)); infinite where it "
          "does not exist")
    else:
        s(f"{name} = {py(mean)}  # E[{q.symbol}] = exp(A(eta + e_log) - A(eta))")
    return f'"E[{q.var}]": {name}, '
