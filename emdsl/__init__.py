"""emdsl: derive and run EM / MAP-EM from a model written in the .emm language."""
__version__ = "0.1.0"

from .errors import (EmmDataError, EmmError, EmmFitError, EmmSemanticError,  # noqa: E402
                     EmmSyntaxError, InternalError, NonConjugateError)

__all__ = ["load", "loads", "chunks", "select", "load_result", "Estimator", "EmmError", "EmmSyntaxError", "EmmSemanticError",
           "NonConjugateError", "EmmDataError", "EmmFitError", "InternalError", "__version__"]


def __getattr__(name):
    if name == "Estimator":   # imported on first use (emdsl.Estimator)
        from .estimator import Estimator
        return Estimator
    raise AttributeError(f"module 'emdsl' has no attribute {name!r}")


def load(path, **kwargs):
    """Parse, check, derive, generate and import the model in ``path``."""
    from .api import load as _load
    return _load(path, **kwargs)


def loads(source, name="inline", **kwargs):
    """The same as :func:`load` from a string."""
    from .api import loads as _loads
    return _loads(source, name=name, **kwargs)


def chunks(source, rows=100_000, name=None, drop_missing=False):
    """A re-iterable stream of chunks of ``rows`` items for ``Model.fit(stream, ...)``:
    from arrays (a dict), a .npy (memmap) / .npz / .csv file, a list of chunk dicts or a
    function returning an iterator of them (see :mod:`emdsl.io.chunks`)."""
    from .io.chunks import chunks as _chunks
    return _chunks(source, rows=rows, name=name, drop_missing=drop_missing)


def select(model, dim, values, criterion="bic", **kwargs):
    """Fit ``model`` at each of ``values`` of ``dim`` and choose by BIC or AIC
    (:mod:`emdsl.selection`)."""
    from .selection import select as _select
    return _select(model, dim, values, criterion, **kwargs)


def load_result(path):
    """A result saved with ``result.save(path)`` (its model recompiled; see
    :mod:`emdsl.results`)."""
    from .results import load_result as _load_result
    return _load_result(path)
