"""Fit-time values: read data files, evaluate constant expressions, bind data/dims/hypers.

``read_data_file(path, cm)`` turns a ``.csv``, ``.npz``, ``.npy`` or ``.ldac`` file into arrays
named after the model's data; ``bind(cm, values)`` checks the user's data, dims and hypers
against the declarations and returns a :class:`Bound`.  Every problem is an
:class:`~emdsl.errors.EmmDataError` that names the variable and the shapes or values involved.
A file's dims are meant to be merged under the user's own keywords,
``bind(cm, {**file_dims, **file_arrays, **user_kwargs})``.

File rules
----------
* CSV (header row required; ``""``, ``NA``, ``NaN``, ``N/A`` mean missing): a datum with one
  number per row (``y[N] : real``, ``count``, ``cat[K]`` ...) takes the column named after it,
  or the only numeric column when it is the model's only datum.  A datum with a vector per
  row (``x[N] : real[D]``, ``x[N, D] : bin``) takes the columns ``x_1 .. x_D``, or, when it is
  the model's only datum, every numeric column in file order (a column is numeric when all
  its non-missing cells parse as numbers; so penguins.csv gives the four measurements and
  ``year``: name the wanted columns ``x_1..x_D`` or pass arrays to choose).  Rows are never
  dropped: a missing value in a used column is an error naming the datum, the column and the
  first bad row.  Categories are 0-based integers, as on the numpy side.
* ``.npz``: keys are data names; keys naming dims (integer scalars) are returned as dims;
  keys naming params, latents or hypers (e.g. a file written by ``emdsl sample``) are ignored.
* ``.npy``: one array, the model's only datum.
* ``.ldac`` (``n id:count id:count ...`` per document, 0-based ids): the model needs two
  ``cat`` data in one plate, the document (used only as an index) and the word (modelled by
  ``~``).  The counts are expanded to long format in document order, and the file gives the
  plate dim (total token count), the document count and the vocabulary size (the lines of a
  sibling ``.tokens`` file if there is one, else the largest id + 1).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

from . import ast
from .check import CheckedModel, Var
from .errors import EmmDataError

INT_KINDS = ("cat", "count", "bin")
MISSING = ("", "NA", "na", "NaN", "nan", "N/A")
FILE_TYPES = (".csv", ".npz", ".npy", ".ldac")


@dataclass(frozen=True)
class Bound:
    """Values of a checked model, validated: ``data`` (int64 for cat/count/bin, else float64,
    shape = plate shape + element shape), ``dims`` (name -> positive int, every declared dim)
    and ``hypers`` (name -> array of the hyper's element shape, ``()`` for scalars)."""

    data: dict[str, np.ndarray]
    dims: dict[str, int]
    hypers: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- constants
def _size(x, span) -> int:
    if np.ndim(x) != 0 or float(x) != int(x) or int(x) < 0:
        raise EmmDataError(f"a size must be a non-negative integer, got {x!r}", span)
    return int(x)


def _transpose(a):
    return np.swapaxes(a, -1, -2) if np.ndim(a) >= 2 else np.asarray(a)


_FUNCS = {  # name -> (number of arguments, implementation)
    "exp": (1, np.exp), "log": (1, np.log), "sqrt": (1, np.sqrt), "sum": (1, np.sum),
    "diag": (1, np.diag), "transpose": (1, _transpose), "lgamma": (1, special.gammaln),
    "digamma": (1, special.digamma), "dot": (2, np.dot),
}
_SIZED = {"eye": np.eye, "zeros": np.zeros, "ones": np.ones}


def eval_const(expr: ast.Expr, env: dict) -> np.ndarray | float:
    """Evaluate a constant expression (dim defaults, hyper defaults, sizes) with numpy.

    Parameters
    ----------
    expr : ast.Expr
        Numbers, names, 1-based indexing ``a[i]``, ``+ - * / ^ @``, unary minus, ``pi`` and
        the functions ``exp log sqrt sum diag eye zeros ones transpose lgamma digamma dot``.
    env : dict
        Name -> value: dims as ``int``, hypers as arrays of any shape.  ``pi`` defaults to
        ``numpy.pi`` unless ``env`` binds it.

    Returns
    -------
    numpy.ndarray or float
        An array, or a Python ``int``/``float`` for a scalar result (``int`` when only
        integers, ``+ - *`` and non-negative integer powers were involved).

    Raises
    ------
    EmmDataError
        An unbound name, an unknown function, a bad size or shapes numpy cannot combine.
    """
    with np.errstate(all="ignore"):
        out = _ev(expr, env)
    if isinstance(out, (np.ndarray, np.generic)) and np.ndim(out) == 0:
        return out.item()
    return out


def _ev(e, env):
    if isinstance(e, ast.Num):
        return int(e.value) if e.is_int else float(e.value)
    if isinstance(e, ast.Name):
        if e.id in env:
            return env[e.id]
        if e.id == "pi":
            return float(np.pi)
        raise EmmDataError(f"'{e.id}' has no value here", e.span,
                           hint="a constant may use dims, numbers and earlier hypers")
    if isinstance(e, ast.Neg):
        return -_ev(e.operand, env)
    if isinstance(e, ast.Index):
        base = np.asarray(_ev(e.base, env))
        idx = tuple(_size(_ev(i, env), i.span) - 1 for i in e.indices)
        try:
            return base[idx]
        except IndexError:
            raise EmmDataError(f"index out of range in '{ast.show(e)}' (shape {base.shape})",
                               e.span) from None
    if isinstance(e, ast.BinOp):
        a, b = _ev(e.left, env), _ev(e.right, env)
        try:
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                return np.true_divide(a, b)
            if e.op == "^":
                if isinstance(a, int) and isinstance(b, int) and b >= 0:
                    return a ** b
                return np.power(np.asarray(a, dtype=float), b)
            if np.ndim(a) == 0 or np.ndim(b) == 0:
                raise EmmDataError("'@' needs a vector or matrix on both sides", e.span)
            return np.matmul(a, b)
        except ValueError as exc:
            raise EmmDataError(f"cannot evaluate '{ast.show(e)}': {exc}", e.span) from None
    if isinstance(e, ast.Call):
        if e.kwargs:
            raise EmmDataError(f"'{e.func}' takes no keyword arguments", e.span)
        args = [_ev(a, env) for a in e.args]
        if e.func in _SIZED:
            if not 1 <= len(args) <= (1 if e.func == "eye" else 2):
                raise EmmDataError(f"'{e.func}' takes a size, got {len(args)} arguments", e.span)
            return _SIZED[e.func](tuple(_size(a, x.span) for a, x in zip(args, e.args)))[()] \
                if e.func != "eye" else np.eye(_size(args[0], e.args[0].span))
        if e.func not in _FUNCS:
            raise EmmDataError(f"unknown function '{e.func}'", e.span,
                               hint=f"functions: {', '.join(sorted({*_FUNCS, *_SIZED}))}")
        n, fn = _FUNCS[e.func]
        if len(args) != n:
            raise EmmDataError(f"'{e.func}' takes {n} argument(s), got {len(args)}", e.span)
        if e.func == "diag" and np.ndim(args[0]) not in (1, 2):
            raise EmmDataError("'diag' needs a vector or a matrix", e.span)
        try:
            return fn(*args)
        except ValueError as exc:
            raise EmmDataError(f"cannot evaluate '{ast.show(e)}': {exc}", e.span) from None
    raise EmmDataError(f"'{ast.show(e)}' is not a constant expression", getattr(e, "span", None))


# ----------------------------------------------------------------------------- shapes
def _elem_exprs(v: Var) -> tuple:
    """Element shape of one item of ``v``: ``spd[D]`` is (D, D), ``cat[K]`` a scalar."""
    if v.kind == "cat":
        return ()
    if v.kind == "spd":
        return (v.elem_dims[0], v.elem_dims[0])
    return tuple(v.elem_dims)


def _full_exprs(v: Var) -> tuple:
    return tuple(v.shape) + _elem_exprs(v)


def _names(e) -> set:
    return {s.id for s in ast.walk_expr(e) if isinstance(s, ast.Name)}


def _dim_of(e, dims):
    return eval_const(e, dims) if _names(e) <= set(dims) else None


def _tup(xs) -> str:
    xs = [str(x) for x in xs]
    return f"({xs[0]},)" if len(xs) == 1 else f"({', '.join(xs)})"


def _decl(v: Var) -> str:
    plate = f"[{', '.join(ast.show(s) for s in v.shape)}]" if v.shape else ""
    elem = f"[{', '.join(ast.show(s) for s in v.elem_dims)}]" if v.elem_dims else ""
    return f"{v.name}{plate} : {v.kind}{elem}"


def _err(cm: CheckedModel, v: Var | None, msg: str, hint: str | None = None):
    return EmmDataError(msg, v.span if v else None, hint=hint, source=cm.model.source)


# ----------------------------------------------------------------------------- bind
def bind(cm: CheckedModel, values: dict) -> Bound:
    """Check data, dims and hypers against the model and fill in dims and hyper defaults.

    Parameters
    ----------
    cm : CheckedModel
        The checked model.
    values : dict
        The user's keyword arguments: data arrays (each of shape plate shape + element
        shape, e.g. (N, D) for ``x[N] : real[D]``, categories 0-based), dims (positive
        ints) and hypers (arrays of the hyper's element shape).  ``None`` counts as not
        given.  Fit options must be removed before the call.

    Returns
    -------
    Bound
        Validated arrays and every dim of the model.

    Raises
    ------
    EmmDataError
        Unknown names, params/latents passed as data, missing data, a dim given twice with
        different values or not determinable, wrong shapes, non-finite values or values
        outside the support of the declared type.
    """
    values = {k: v for k, v in values.items() if v is not None}
    data_vars = [v for v in cm.vars.values() if v.role == "data"]
    hyper_vars = [v for v in cm.vars.values() if v.role == "hyper"]
    valid = [v.name for v in data_vars] + list(cm.dims) + [v.name for v in hyper_vars]
    for name in values:
        role = cm.role(name)
        if role in ("param", "latent"):
            raise _err(cm, cm.vars[name], f"'{name}' is a {role} of the model, not data",
                       f"give starting values with init={{'{name}': ...}}")
        if role is None:
            raise _err(cm, None, f"'{name}' is not a data, dim or hyper of model {cm.name}; "
                       f"valid names: {', '.join(valid)}")
    for v in data_vars:
        if v.name not in values:
            shp = _tup(ast.show(e) for e in _full_exprs(v))
            raise _err(cm, v, f"data '{v.name}' is missing; pass it as {v.name}=... "
                       f"(an array of shape {shp})")

    dims: dict[str, int] = {}
    origin: dict[str, str] = {}

    def put(name, val, where):
        if name in dims and dims[name] != val:
            raise _err(cm, None, f"dim '{name}' is given twice with different values: "
                       f"{name} = {dims[name]} ({origin[name]}) and {name} = {val} ({where})",
                       "make the data and the dims agree")
        dims.setdefault(name, val)
        origin.setdefault(name, where)

    for name in cm.dims:
        if name in values:
            put(name, _dim_value(cm, name, values[name], f"{name}={values[name]!r}"),
                f"given as {name}={values[name]!r}")
    arrays = {v.name: _as_array(cm, v, values[v.name])
              for v in data_vars + hyper_vars if v.name in values}
    for name, arr in arrays.items():
        exprs = _full_exprs(cm.vars[name])
        if arr.ndim == len(exprs):
            for ax, e in enumerate(exprs):
                if isinstance(e, ast.Name):
                    put(e.id, arr.shape[ax], f"from {name}.shape[{ax}]")
    pending = [d for d in cm.dims.values() if d.name not in dims and d.default is not None]
    while pending:
        ready = [d for d in pending if _names(d.default) <= set(dims)]
        if not ready:
            break
        for d in ready:
            val = eval_const(d.default, dims)
            dims[d.name] = _dim_value(cm, d.name, val, f"the default {ast.show(d.default)}")
            pending.remove(d)
    for name in arrays:
        _check_shape(cm, cm.vars[name], arrays[name], dims)
    for name, d in cm.dims.items():
        if name not in dims:
            raise EmmDataError(f"dim '{name}' cannot be determined from the data and has no "
                               f"default; pass it as {name}=...", d.span,
                               hint=f"e.g. fit(..., {name}=3) or --set {name}=3",
                               source=cm.model.source)
    for v in data_vars + hyper_vars:
        if v.name in arrays:
            _check_shape(cm, v, arrays[v.name], dims)
    data = {v.name: _check_values(cm, v, arrays[v.name], dims) for v in data_vars}
    hypers: dict[str, np.ndarray] = {}
    for v in hyper_vars:
        if v.name in arrays:
            arr = arrays[v.name]
        elif v.default is not None:
            arr = _as_array(cm, v, eval_const(v.default, {**dims, **hypers}))
            _check_shape(cm, v, arr, dims, given="its default evaluates to")
        else:
            raise _err(cm, v, f"hyper '{v.name}' has no default; pass it as {v.name}=...")
        hypers[v.name] = _check_values(cm, v, arr, dims)
    return Bound(data, dict(dims), hypers)


def _dim_value(cm, name, val, what) -> int:
    ok = isinstance(val, (int, float, np.integer, np.floating)) and not isinstance(val, bool)
    if ok and np.isfinite(val) and float(val) == int(val) and int(val) >= 1:
        return int(val)
    raise _err(cm, None, f"dim '{name}' must be a positive integer, but {what} is {val!r}")


def _as_array(cm, v: Var, value) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        arr, why = None, str(exc).split("\n")[0]
    else:
        why = f"its dtype is {arr.dtype}"
    if arr is None or arr.dtype.kind not in "biuf":
        raise _err(cm, v, f"{v.role} '{v.name}' cannot be converted to a numeric array "
                   f"({why})", "pass a numpy array of numbers")
    return arr


def _check_shape(cm, v: Var, arr, dims, given="the given array has"):
    exprs = _full_exprs(v)
    want = [_dim_of(e, dims) for e in exprs]
    if arr.ndim == len(want) and all(w is None or w == s for w, s in zip(want, arr.shape)):
        return
    names = _tup(ast.show(e) for e in exprs) if exprs else "()"
    vals = _tup("?" if w is None else w for w in want) if exprs else "()"
    hint = None
    if arr.ndim == len(want) + 1 and arr.shape[-1] == 1:
        hint = "drop the trailing axis of length 1, e.g. x.ravel()"
    elif not exprs and arr.size == 1:
        hint = "pass a scalar"
    raise _err(cm, v, f"{v.role} '{v.name}' is declared {_decl(v)}, shape {names} = {vals}, "
               f"but {given} shape {_tup(arr.shape) if arr.ndim else '()'}", hint)


def _where(v: Var, arr, mask) -> str:
    """'x[3, 1] = -2' (or 'x[3]' for a row / matrix) at the first True of ``mask``."""
    idx = tuple(int(i) for i in np.argwhere(mask)[0])
    ref = f"{v.name}[{', '.join(map(str, idx))}]" if idx else v.name
    val = np.asarray(arr)[idx]
    return f"{ref} = {val.item()!r}" if val.ndim == 0 else ref


def _first(a, mask) -> float:
    hits = np.argwhere(mask)
    return float(np.asarray(a)[tuple(hits[0])]) if len(hits) else float("nan")


def _check_values(cm, v: Var, arr, dims) -> np.ndarray:
    what = f"{v.role} '{v.name}'"
    x = np.asarray(arr, dtype=float)
    bad = ~np.isfinite(x)
    if bad.any():
        raise _err(cm, v, f"{what} has {int(bad.sum())} NaN/inf value(s), the first at "
                   f"{_where(v, arr, bad).split(' = ')[0]}", "remove or impute them")

    def fail(mask, why, hint=None):
        if mask.any():
            raise _err(cm, v, f"{what} is declared {_decl(v)} but {_where(v, arr, mask)} "
                       f"{why}", hint)

    k = v.kind
    if k in INT_KINDS:
        fail(x != np.round(x), "is not an integer", "pass integer values")
    if k == "count":
        fail(x < 0, "is negative", "counts are 0, 1, 2, ...")
    elif k == "bin":
        fail((x != 0) & (x != 1), "is not 0 or 1")
    elif k == "cat":
        K = _dim_of(v.elem_dims[0], dims)
        name = ast.show(v.elem_dims[0])
        fail((x < 0) | (x >= K), f"is outside 0..{K - 1} ({name} = {K}; categories are "
             f"0-based in numpy)", f"a value >= {name} needs a larger {name}=...")
    elif k == "pos":
        fail(x <= 0, "is not > 0", "pos values are strictly positive")
    elif k == "unit":
        fail((x <= 0) | (x >= 1), "is not in (0, 1)")
    elif k == "simplex":
        fail(x < 0, "is negative", "a simplex is non-negative and sums to 1")
        s = x.sum(axis=-1)
        fail(np.abs(s - 1) > 1e-6, f"sums to {_first(s, np.abs(s - 1) > 1e-6):.6g}, not 1",
             "a simplex is non-negative and sums to 1")
    elif k == "spd":
        scale = max(1.0, float(np.abs(x).max()) if x.size else 1.0)
        fail(np.abs(x - np.swapaxes(x, -1, -2)).max(axis=(-1, -2)) > 1e-8 * scale,
             "is not symmetric", "pass symmetric positive definite matrices")
        low = np.linalg.eigvalsh(x).min(axis=-1)
        fail(low <= 0, f"is not positive definite (smallest eigenvalue "
             f"{_first(low, low <= 0):.6g})", "pass symmetric positive definite matrices")
    return x.astype(np.int64) if k in INT_KINDS else x
