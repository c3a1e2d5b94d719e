"""Fit-time values: read data files, evaluate constant expressions, bind data/dims/hypers.

``read_data_file(path, cm)`` turns a file into arrays named after the model's data;
``bind(cm, values)`` checks data, dims and hypers against the declarations and returns a
:class:`Bound`.  Every problem is an :class:`~emdsl.errors.EmmDataError` naming the variable
and the shapes or values involved.  A file's dims go under the user's own keywords:
``bind(cm, {**file_dims, **file_arrays, **user_kwargs})``.

The file formats are described in :mod:`emdsl.datafiles`.
"""
from __future__ import annotations

import difflib
import operator
from dataclasses import dataclass

import numpy as np
from scipy import special

from ..frontend import ast
from ..frontend.check import FIT_OPTIONS, CheckedModel, Var
from ..errors import EmmDataError

INT_KINDS = ("cat", "count", "bin")
MISSING = ("", "NA", "na", "NaN", "nan", "N/A")
FILE_TYPES = (".csv", ".npz", ".npy", ".ldac")


@dataclass(frozen=True)
class Bound:
    """Validated values: ``data`` (int64 for cat/count/bin, else float64; shape = plate shape
    + element shape), ``dims`` (every declared dim, a positive int) and ``hypers`` (arrays of
    the hyper's element shape, ``()`` for scalars)."""

    data: dict[str, np.ndarray]
    dims: dict[str, int]
    hypers: dict[str, np.ndarray]


# ----------------------------------------------------------------------------- constants
def _size(x) -> int:
    if np.ndim(x) != 0 or not np.isfinite(x) or float(x) != int(x) or int(x) < 0:
        raise ValueError(f"a size must be a non-negative integer, got {x!r}")
    return int(x)


def _guard(fn, ok, why):
    def run(*args):
        if not ok(*args):
            raise ValueError(why)
        return fn(*args)
    return run


_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": np.true_divide,
        "^": lambda a, b: np.power(np.asarray(a, dtype=float), b),
        "@": _guard(np.matmul, lambda a, b: np.ndim(a) and np.ndim(b),
                    "'@' needs a vector or a matrix on both sides")}
_FUNCS = {  # name -> (number of arguments, implementation)
    "exp": (1, np.exp), "log": (1, np.log), "sqrt": (1, np.sqrt), "sum": (1, np.sum),
    "diag": (1, _guard(np.diag, lambda a: np.ndim(a) in (1, 2), "diag needs a vector or "
                       "a matrix")),
    "transpose": (1, lambda a: np.swapaxes(a, -1, -2) if np.ndim(a) >= 2 else np.asarray(a)),
    "lgamma": (1, special.gammaln), "digamma": (1, special.digamma), "dot": (2, np.dot),
    "eye": (1, lambda n: np.eye(_size(n))), "zeros": (1, lambda n: np.zeros(_size(n))),
    "ones": (1, lambda n: np.ones(_size(n))),
}


def eval_const(expr: ast.Expr, env: dict) -> np.ndarray | float:
    """Evaluate a constant expression (dim and hyper defaults, sizes) with numpy/scipy.

    Parameters
    ----------
    expr : ast.Expr
        Numbers, names, 1-based indexing ``a[i]``, ``+ - * / ^ @``, unary minus, ``pi`` and
        ``exp log sqrt sum diag eye zeros ones transpose lgamma digamma dot``.
    env : dict
        Name -> value: dims as ``int``, hypers as arrays of any shape.  ``pi`` is
        ``numpy.pi`` unless ``env`` binds it.

    Returns
    -------
    numpy.ndarray or float
        An array, or a Python ``int``/``float`` for a scalar (``int`` when only integers
        and ``+ - *`` were involved).

    Raises
    ------
    EmmDataError
        An unbound name, an unknown function, a bad size or shapes numpy cannot combine.
    """
    with np.errstate(all="ignore"):
        out = _ev(expr, env)
    return out.item() if isinstance(out, (np.ndarray, np.generic)) and out.ndim == 0 else out


def _ev(e, env):
    if isinstance(e, ast.Num):
        return int(e.value) if e.is_int else float(e.value)
    if isinstance(e, ast.Name):
        if e.id in env or e.id == "pi":
            return env.get(e.id, float(np.pi))
        raise EmmDataError(f"'{e.id}' has no value here", e.span,
                           hint="a constant may use dims, numbers and earlier hypers")
    if isinstance(e, ast.Neg):
        return -_ev(e.operand, env)
    if isinstance(e, ast.Call) and (e.func not in _FUNCS or e.kwargs
                                    or len(e.args) != _FUNCS[e.func][0]):
        raise EmmDataError(f"'{ast.show(e)}': unknown function or wrong arguments", e.span,
                           hint=", ".join(f"{f}({', '.join('ab'[:n])})"
                                          for f, (n, _) in _FUNCS.items()))
    try:
        if isinstance(e, ast.Index):
            base = np.asarray(_ev(e.base, env))
            return base[tuple(_size(_ev(i, env)) - 1 for i in e.indices)]
        if isinstance(e, ast.BinOp):
            return _OPS[e.op](_ev(e.left, env), _ev(e.right, env))
        if isinstance(e, ast.Call):
            return _FUNCS[e.func][1](*(_ev(a, env) for a in e.args))
    except (ValueError, IndexError, TypeError) as exc:
        raise EmmDataError(f"cannot evaluate '{ast.show(e)}': {exc}", e.span) from None
    raise EmmDataError(f"'{ast.show(e)}' is not a constant expression", getattr(e, "span", None))


# ----------------------------------------------------------------------------- shapes
def _full_exprs(v: Var) -> tuple:
    """Plate shape + element shape of ``v``: ``spd[D]`` is (D, D), ``cat[K]`` a scalar."""
    elem = () if v.kind == "cat" else (v.elem_dims[0],) * 2 if v.kind == "spd" \
        else tuple(v.elem_dims)
    return tuple(v.shape) + elem


def _dim_of(e, dims):
    return eval_const(e, dims) if set(ast.names(e)) <= set(dims) else None


def _tup(xs) -> str:
    xs = [str(x) for x in xs]
    return f"({xs[0]},)" if len(xs) == 1 else f"({', '.join(xs)})"  # () for a scalar


def _decl(v: Var) -> str:
    plate = f"[{', '.join(ast.show(s) for s in v.shape)}]" if v.shape else ""
    elem = f"[{', '.join(ast.show(s) for s in v.elem_dims)}]" if v.elem_dims else ""
    return f"{v.name}{plate} : {v.kind}{elem}"


def _err(cm: CheckedModel, v: Var | None, msg: str, hint: str | None = None):
    return EmmDataError(msg, v.span if v else None, hint=hint, source=cm.model.source)


# ----------------------------------------------------------------------------- bind
def bind(cm: CheckedModel, values: dict) -> Bound:
    """Check data, dims and hypers against the model; fill in dims and hyper defaults.

    Parameters
    ----------
    cm : CheckedModel
        The checked model.
    values : dict
        The user's keyword arguments without fit options: data arrays (plate shape + element
        shape, e.g. (N, D) for ``x[N] : real[D]``; categories 0-based), dims (positive ints)
        and hypers (arrays of the element shape).  ``None`` counts as not given.

    Returns
    -------
    Bound
        The validated arrays and every dim of the model.  Dims come from explicit values,
        data shapes (a conflict between any two is an error), then their defaults.

    Raises
    ------
    EmmDataError
        Unknown names, params/latents passed as data, missing data, a dim given twice with
        different values or not determinable, wrong shapes, NaN/inf, or values outside the
        support of the declared type.
    """
    values = {k: v for k, v in values.items() if v is not None}
    data_vars = [v for v in cm.vars.values() if v.role == "data"]
    hyper_vars = [v for v in cm.vars.values() if v.role == "hyper"]
    for name in values:
        role = cm.role(name)
        if role in ("param", "latent"):
            raise _err(cm, cm.vars[name], f"'{name}' is a {role} of the model, not data",
                       f"give starting values with init={{'{name}': ...}}")
        if role is None:
            valid = [v.name for v in data_vars] + list(cm.dims) + [v.name for v in hyper_vars]
            known = {n.lower(): n for n in list(FIT_OPTIONS) + valid}   # (K for k)
            close = [known[c] for c in difflib.get_close_matches(name.lower(), known, n=1)]
            hint = None if not close else f"did you mean {close[0]}=...?" + (
                " (a fit option)" if close[0] in FIT_OPTIONS and close[0] not in valid else "")
            if name in FIT_OPTIONS:   # (given to predict, score, sample ...)
                hint = f"{name} is an option of fit, which this call does not take"
            raise _err(cm, None, f"'{name}' is not a data, dim or hyper of model {cm.name}; "
                       f"valid names: {', '.join(valid)}", hint)
    for v in data_vars:
        if v.name not in values:
            raise _err(cm, v, f"data '{v.name}' is missing; pass it as {v.name}=... (an array "
                       f"of shape {_tup(ast.show(e) for e in _full_exprs(v))})")
    dims: dict[str, int] = {}
    origin: dict[str, str] = {}

    def put(name, val, where):
        if dims.setdefault(name, val) != val:
            raise _err(cm, None, f"dim '{name}' is given twice with different values: "
                       f"{name} = {dims[name]} ({origin[name]}) and {name} = {val} ({where})",
                       "make the data and the dims agree")
        origin.setdefault(name, where)

    for name in cm.dims:
        if name in values:
            given = f"{name}={_plain(values[name])!r}"
            put(name, _dim_value(cm, name, values[name], given), f"given as {given}")
    arrays = {v.name: _as_array(cm, v, values[v.name])
              for v in data_vars + hyper_vars if v.name in values}
    for v in data_vars:  # plate axes bind even when the element axes are wrong
        arr, exprs = arrays[v.name], _full_exprs(v)
        n = len(exprs) if arr.ndim == len(exprs) else len(v.shape) * (arr.ndim >= len(v.shape))
        seen = set()  # spd[D] binds D from its first axis; the shape check compares the second
        for ax, e in enumerate(exprs[:n]):
            if isinstance(e, ast.Name) and e.id not in seen:
                put(e.id, arr.shape[ax], f"from {v.name}.shape[{ax}]")
                seen.add(e.id)
    pending = [d for d in cm.dims.values() if d.name not in dims and d.default is not None]
    while ready := [d for d in pending if set(ast.names(d.default)) <= set(dims)]:
        for d in ready:
            val = eval_const(d.default, dims)
            dims[d.name] = _dim_value(cm, d.name, val, f"{ast.show(d.default)} = {val!r}")
            pending.remove(d)
    for name, arr in arrays.items():
        _check_shape(cm, cm.vars[name], arr, dims)
    for v in data_vars:
        arr = arrays[v.name]
        if v.shape and arr.ndim and 0 in arr.shape[:len(v.shape)]:
            raise _err(cm, v, f"data '{v.name}' is empty (shape {_tup(arr.shape)}): there is "
                       "nothing to fit", "pass at least one item")
    for name, d in cm.dims.items():
        if name not in dims:
            raise EmmDataError(f"dim '{name}' cannot be determined from the data and has no "
                               f"default; pass it as {name}=...", d.span, source=cm.model.source,
                               hint=f"e.g. fit(..., {name}=3) or --set {name}=3")
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


def _plain(val):
    return val.item() if isinstance(val, (np.generic, np.ndarray)) and np.ndim(val) == 0 else val


def _dim_value(cm, name, val, what) -> int:
    val = _plain(val)  # 3, 3.0, np.int64(3) and np.array(3) are all fine
    ok = isinstance(val, (int, float)) and not isinstance(val, bool) and (
        isinstance(val, int) or np.isfinite(val))   # a Python int of any size is finite
    if ok and float(val) == int(val) and int(val) >= 1:
        return int(val)
    raise _err(cm, None, f"dim '{name}' must be a positive integer, got {what}")


def _as_array(cm, v: Var, value) -> np.ndarray:
    try:
        arr = np.asarray(value)
        why = "" if arr.dtype.kind in "biuf" else f"its dtype is {arr.dtype}"
    except (ValueError, TypeError) as exc:
        why = str(exc).split("\n")[0]
    if why:
        raise _err(cm, v, f"{v.role} '{v.name}' cannot be converted to a numeric array "
                   f"({why})", "pass a numpy array of numbers")
    return arr


def _check_shape(cm, v: Var, arr, dims, given="the given array has"):
    exprs = _full_exprs(v)
    want = [_dim_of(e, dims) for e in exprs]
    if arr.ndim == len(want) and all(w is None or w == s for w, s in zip(want, arr.shape)):
        return
    hint = "drop the axis of length 1, e.g. with .ravel()" if arr.ndim == len(want) + 1 \
        and arr.shape[-1] == 1 else None
    raise _err(cm, v, f"{v.role} '{v.name}' is declared {_decl(v)}, shape "
               f"{_tup(ast.show(e) for e in exprs)} = {_tup('?' if w is None else w for w in want)}"
               f", but {given} shape {_tup(arr.shape)}", hint)


_SUPPORT = {  # kind -> (bad values, what is wrong, hint)
    "count": (lambda x: x < 0, "is negative", "counts are 0, 1, 2, ..."),
    "bin": (lambda x: (x != 0) & (x != 1), "is not 0 or 1", None),
    "pos": (lambda x: x <= 0, "is not > 0", "pos values are strictly positive"),
    "unit": (lambda x: (x <= 0) | (x >= 1), "is not in (0, 1)", None),
    "simplex": (lambda x: x < 0, "is negative", "a simplex is non-negative and sums to 1"),
}


CHECK_ROWS = 65536   # data are checked block by block (a memmap is never read whole)


def _check_values(cm, v: Var, arr, dims) -> np.ndarray:
    """Finite and in the support of ``v``'s type; int64 for integer kinds, else float64 (an
    array or memmap already of that type is not copied). Long data are checked CHECK_ROWS
    rows at a time (each block converted on its own), so the check's memory is set by the
    block, not by N."""
    arr = np.asarray(arr)
    if v.role == "data" and arr.ndim and len(arr) > CHECK_ROWS:
        def block(lo):
            return np.asarray(arr[lo:lo + CHECK_ROWS], dtype=float)

        def bad_total():   # only when reporting: a second pass over the blocks
            return sum(int((~np.isfinite(block(lo))).sum())
                       for lo in range(0, len(arr), CHECK_ROWS))
        for lo in range(0, len(arr), CHECK_ROWS):
            _check_block(cm, v, arr[lo:lo + CHECK_ROWS], block(lo), dims, lo, bad_total)
    else:
        _check_block(cm, v, arr, np.asarray(arr, dtype=float), dims, 0)
    want = np.int64 if v.kind in INT_KINDS else np.float64
    return arr if arr.dtype == want else arr.astype(want)


def _check_block(cm, v: Var, arr, x, dims, offset: int, bad_total=None) -> None:
    """The checks of :func:`_check_values` on rows ``offset``... of ``v`` (``x`` = ``arr``
    as float64)."""

    def at(mask):  # 'x[3, 1] = -2', or 'x[3]' for a row or a matrix, at the first True
        idx = tuple(int(i) for i in np.argwhere(mask)[0])
        shown = (idx[0] + offset,) + idx[1:] if idx else idx
        ref = f"{v.name}[{', '.join(map(str, shown))}]" if shown else v.name
        val = np.asarray(arr)[idx]
        return (ref, f"{ref} = {val.item()!r}" if val.ndim == 0 else ref, x[idx])

    def fail(mask, why, hint=None):
        if np.any(mask):
            raise _err(cm, v, f"{v.role} '{v.name}' is declared {_decl(v)} but {at(mask)[1]} "
                       f"{why}", hint)

    bad = ~np.isfinite(x)
    if bad.any():
        total = bad_total() if bad_total is not None else int(bad.sum())
        raise _err(cm, v, f"{v.role} '{v.name}' has {total} NaN/inf value(s), the "
                   f"first at {at(bad)[0]}", "remove or impute them")
    k = v.kind
    if k in INT_KINDS:
        fail(np.abs(x) > 2.0 ** 53, "is beyond 2^53 = 9.0e15 (counts that large are not "
             "exact in float64 and overflow their sums)", "rescale or cap the counts")
        fail(x != np.round(x), "is not an integer", "pass integer values")
    else:
        fail(np.abs(x) > 1e100, "is beyond 1e100 in magnitude (its square, which the "
             "statistics hold, would overflow float64)", "rescale the data, e.g. divide it "
             "by a power of 10")
    if k in _SUPPORT:
        fail(_SUPPORT[k][0](x), *_SUPPORT[k][1:])
    if k == "cat":
        K, name = _dim_of(v.elem_dims[0], dims), ast.show(v.elem_dims[0])
        fail((x < 0) | (x >= K), f"is outside 0..{K - 1} ({name} = {K}; categories are "
             "0-based in numpy)", f"a larger category needs a larger {name}=...")
    elif k == "simplex":
        off = np.abs(x.sum(axis=-1) - 1) > 1e-6
        fail(off, f"sums to {at(off)[2].sum() if off.any() else 1:.6g}, not 1",
             "a simplex is non-negative and sums to 1")
    elif k == "spd":
        fail(np.abs(x - np.swapaxes(x, -1, -2)).max(axis=(-1, -2))
             > 1e-8 * max(1.0, np.abs(x).max()), "is not symmetric")
        low = np.linalg.eigvalsh(x).min(axis=-1)
        fail(low <= 0, f"is not positive definite (smallest eigenvalue "
             f"{low[tuple(np.argwhere(low <= 0)[0])] if np.any(low <= 0) else 0:.6g})",
             "pass symmetric positive definite matrices")


# ----------------------------------------------------------------------------- files


def physical_memory() -> float:
    """Bytes of memory this machine has (2^40 where the platform does not say)."""
    import os
    try:
        return float(os.sysconf("SC_PAGE_SIZE")) * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return float(2 ** 40)


def read_data_file(path, cm: CheckedModel, columns=None, drop_missing=False):
    """Read the model's data from a file; see :mod:`emdsl.datafiles` for the rules."""
    from .datafiles import read_data_file as read
    return read(path, cm, columns, drop_missing)
