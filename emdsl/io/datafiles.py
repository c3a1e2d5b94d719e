"""Reading data files for ``fit`` (CSV, NPZ, NPY, LDA-C): arrays named after the model's data.

File rules
----------
* ``.csv`` (header row; ``""``, ``NA``, ``NaN``, ``N/A`` are missing): a datum with one number
  per row (``y[N] : real``, ``count``, ``cat[K]``) takes the column named after it, or the
  only numeric column if it is the model's only datum.  A datum with a vector per row
  (``x[N] : real[D]``, ``x[N, D] : bin``) takes the columns ``x_1 .. x_D``, or, if it is the
  only datum, every numeric column in file order (numeric: all non-missing cells parse as
  numbers; penguins.csv gives its four measurements and ``year``, so name the wanted columns
  ``x_1..x_D`` or pass arrays).  No row is dropped: a missing value in a used column is an
  error naming the datum, the column and the first bad row.  Categories are 0-based.
* ``.npz``: keys are data (or hyper) names; integer scalars under dim names are returned as
  dims; params and latents (e.g. from ``emdsl sample``) are ignored.  ``.npy``: the only datum.
* ``.ldac`` (a line ``n id:count ...`` per document, 0-based ids): see ``ldac.py``.
"""
from __future__ import annotations

import csv
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..frontend.check import CheckedModel, Var
from . import ldac
from .data import FILE_TYPES, INT_KINDS, MISSING, _decl, _full_exprs
from ..errors import EmmDataError


def read_data_file(path, cm: CheckedModel, columns: dict | None = None,
                   drop_missing: bool = False) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Read the model's data from a file (rules in the module docstring).

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv``, ``.npz``, ``.npy`` or ``.ldac`` file.
    cm : CheckedModel
        The model whose data names the file's contents are matched to.
    drop_missing : bool
        CSV: drop the rows with a missing value in a column used (with a
        :class:`MissingRowsWarning`) instead of raising.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        One raw array per data name (validated later by :func:`bind`), e.g. x of shape
        (N, D); ``.ldac`` gives int64 document and word arrays of shape (T,).
    dims : dict of str to int
        Dims the file fixes: for ``.ldac`` the plate, document and vocabulary sizes, for
        ``.npz`` the dims stored in it; ``{}`` otherwise.

    Raises
    ------
    EmmDataError
        Unreadable or unsupported files, unmatched or missing data, missing values.
    """
    path, data_vars = Path(path), [v for v in cm.vars.values() if v.role == "data"]
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise EmmDataError(f"cannot read '{path}': unsupported file type '{suffix}'",
                           hint=f"use one of {', '.join(FILE_TYPES)}")
    if not path.is_file():
        raise EmmDataError(f"data file '{path}' does not exist")
    try:
        if suffix == ".csv":   # (``columns`` receives each datum's CSV columns)
            return _read_csv(path, data_vars, columns, drop_missing), {}
        if suffix == ".ldac":
            return ldac.read(path, cm, data_vars)
        if suffix == ".npy":
            if len(data_vars) != 1:
                raise EmmDataError(f"a .npy file holds one array but model {cm.name} has data "
                                   f"{', '.join(v.name for v in data_vars)}",
                                   hint="use a .npz file with one array per data name")
            # a memmap: the checks read it block by block, a float64 one is never copied
            return {data_vars[0].name: np.load(path, mmap_mode="r", allow_pickle=False)}, {}
        with np.load(path, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
    except (OSError, ValueError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise numpy_file_error(path, exc) from None
    for v in data_vars:
        if v.name not in stored:
            raise EmmDataError(f"data '{v.name}' is not in '{path.name}' (it holds "
                               f"{', '.join(stored) or 'nothing'})",
                               hint=f"save it with np.savez(file, {v.name}=...)")
    for key in stored:
        if cm.role(key) is None or cm.role(key) == "dim" and stored[key].ndim:
            raise EmmDataError(f"'{path.name}' holds '{key}', which is not a data name of "
                               f"model {cm.name}", hint="data names: "
                               + ", ".join(v.name for v in data_vars))
    return ({k: a for k, a in stored.items() if cm.role(k) in ("data", "hyper")},
            {k: a.item() for k, a in stored.items() if cm.role(k) == "dim"})


def _read_csv(path: Path, data_vars, columns=None, drop_missing=False) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv_rows(fh))
    if len(rows) < 2:
        raise EmmDataError(f"'{path.name}' needs a header row and at least one data row")
    return csv_arrays(path, rows[0][1], rows[1:], data_vars, columns, drop_missing)


def csv_rows(fh):
    """(line number, stripped cells) of the non-blank rows of an open CSV file."""
    reader = csv.reader(fh)
    for r in reader:
        cells = [c.strip() for c in r]
        if any(cells):
            yield reader.line_num, cells


def csv_arrays(path: Path, header: list, rows: list, data_vars,
               columns: dict | None = None, drop_missing: bool = False) -> dict[str, np.ndarray]:
    """The data of CSV lines ``rows`` ((line number, cells) pairs) under ``header``: a
    whole file, or one chunk of it (``emdsl.chunks``); ``columns``, when given, receives
    the names of the columns each datum was read from. A missing value in a column used is
    an error naming its row and column, unless ``drop_missing``: then those rows are
    dropped, with a :class:`MissingRowsWarning` saying how many and which lines (a whole
    file of them is an error; a chunk of them, ``drop_missing="chunk"``, gives no rows)."""
    lines = [line for line, _ in rows]
    if len(set(header)) < len(header):
        raise EmmDataError(f"'{path.name}' has the column name(s) "
                           f"{', '.join(sorted({h for h in header if header.count(h) > 1}))} twice")
    for line, r in rows:
        if len(r) != len(header):
            raise EmmDataError(f"line {line} of '{path.name}' has {len(r)} fields but the "
                               f"header has {len(header)}")
    cols = {h: [r[i] for _, r in rows] for i, h in enumerate(header)}
    numeric = [h for h in header if _numeric(cols[h])]
    # a mostly numeric column with a stray word is numeric data with a typo: keep it, so
    # that reading it reports the bad cell instead of silently dropping the column
    numeric = [h for h in header if h in numeric or _mostly_numeric(cols[h])]
    alone, out, plan = len(data_vars) == 1, {}, []
    for v in data_vars:
        rank = len(_full_exprs(v))
        if rank == 1 and v.shape:
            use = [v.name] if v.name in cols else numeric if alone and len(numeric) == 1 \
                else None
            want = f"a column named '{v.name}'"
        elif rank == 2 and v.shape:
            pat = re.compile(re.escape(v.name) + r"_(\d+)$")
            found = sorted((int(m.group(1)), h) for h in header if (m := pat.match(h)))
            if [i for i, _ in found] != list(range(1, len(found) + 1)):
                raise EmmDataError(f"data '{v.name}': the columns "
                                   f"{', '.join(h for _, h in found)} of '{path.name}' are "
                                   f"not numbered 1..{len(found)}")
            use = [h for _, h in found] or (numeric if alone else None)
            want = f"columns named {v.name}_1, {v.name}_2, ..."
        else:
            raise EmmDataError(f"data '{v.name}' ({_decl(v)}) cannot be read from a CSV file",
                               hint="save it in a .npz file instead")
        if not use:
            other = next((c for c in ";\t|" if len(header) == 1 and c in header[0]), None)
            hint = (f"the header looks {'tab' if other == chr(9) else repr(other)}-separated; "
                    "emdsl reads comma-separated CSV files: save it with commas"
                    if other else "rename the columns or pass arrays")
            raise EmmDataError(f"data '{v.name}' needs {want} in '{path.name}' (its columns: "
                               f"{', '.join(header)})", hint=hint)
        plan.append((v, list(use), rank))
    if drop_missing:   # on request only: rows with a missing value in a column used
        used = sorted({h for _, use, _ in plan for h in use}, key=header.index)
        miss = np.array([[c in MISSING for c in cols[h]] for h in used]).any(axis=0)
        if miss.all() and drop_missing != "chunk":
            raise EmmDataError(f"every row of '{path.name}' has a missing value in the "
                               f"columns used ({', '.join(used)})")
        if miss.any():
            warnings.warn(MissingRowsWarning(
                f"dropped {int(miss.sum())} of {len(lines)} rows of '{path.name}' with missing "
                f"values in the columns used (lines "
                f"{', '.join(str(lines[i]) for i in np.flatnonzero(miss)[:10])}"
                f"{', ...' if miss.sum() > 10 else ''})"), stacklevel=2)
            keep = np.flatnonzero(~miss)
            cols = {h: [c[i] for i in keep] for h, c in cols.items()}
            lines = [lines[i] for i in keep]
    for v, use, rank in plan:
        arr = _columns(v, use, cols, lines, path)
        out[v.name] = arr[:, 0] if rank == 1 else arr
        if columns is not None:
            columns[v.name] = use
    return out


class MissingRowsWarning(UserWarning):
    """Rows with missing values were dropped from a data file, as asked
    (``drop_missing=True``, ``--drop-missing``)."""


def _parses(c: str) -> bool:
    try:
        float(c)
    except ValueError:
        return False
    return True


def _numeric(cells) -> bool:
    """Every non-missing cell is a number (and there is at least one)."""
    vals = [c for c in cells if c not in MISSING]
    return bool(vals) and all(_parses(c) for c in vals)


def _mostly_numeric(cells) -> bool:
    """Most non-missing cells are numbers: a numeric column with a typo, not a text column."""
    vals = [c for c in cells if c not in MISSING]
    return sum(_parses(c) for c in vals) > len(vals) / 2


def _columns(v: Var, use, cols, lines, path: Path) -> np.ndarray:
    """The (rows, len(use)) float array of the columns ``use``; no row is ever dropped."""
    miss = np.array([[c in MISSING for c in cols[h]] for h in use]).T
    if miss.any():
        row, j = (int(i) for i in np.argwhere(miss)[0])
        raise EmmDataError(
            f"data '{v.name}': column '{use[j]}' has a missing value in row {row + 1} (line "
            f"{lines[row]} of '{path.name}'); {int(miss.any(axis=1).sum())} of {len(lines)} "
            f"rows have missing values in the columns used ({', '.join(use)})",
            hint="emdsl drops no rows unless asked (--drop-missing, or drop_missing=True): "
                 "remove or impute them, pick columns by naming them "
                 f"{v.name}_1..{v.name}_D, or pass arrays")
    out = np.empty((len(lines), len(use)))
    for j, h in enumerate(use):
        for i, c in enumerate(cols[h]):
            try:
                out[i, j] = float(c)
            except ValueError:
                raise EmmDataError(f"data '{v.name}': column '{h}' has the non-numeric value "
                                   f"{c!r} in row {i + 1} (line {lines[i]} of '{path.name}')",
                                   hint="encode categories as integers 0..K-1"
                                   if v.kind in INT_KINDS else
                                   f"'{v.name}' is {v.kind}: every value must be a number") from None
    return out


def numpy_file_error(path, exc) -> EmmDataError:
    """The error for a .npy / .npz file numpy cannot read: numpy's own message, unless it
    is about pickles, which is what numpy says of any file that is no NumPy array file."""
    suffix = Path(path).suffix.lower()
    if "pickle" in str(exc) or "Python objects" in str(exc) or \
            isinstance(exc, zipfile.BadZipFile):
        return EmmDataError(f"cannot read '{path}': it is not a NumPy {suffix} file (or it "
                            "holds Python objects, which are never loaded)",
                            hint="save numeric arrays with numpy.save / numpy.savez")
    return EmmDataError(f"cannot read '{path}': {exc}")
