"""emdsl: derive and run EM / MAP-EM from a model written in the .emm language."""
__version__ = "0.1.0"

from .errors import (EmmDataError, EmmError, EmmFitError, EmmSemanticError,  # noqa: E402
                     EmmSyntaxError, InternalError, NonConjugateError)

__all__ = ["load", "loads", "EmmError", "EmmSyntaxError", "EmmSemanticError",
           "NonConjugateError", "EmmDataError", "EmmFitError", "InternalError", "__version__"]


def load(path, **kwargs):
    """Parse, check, derive, generate and import the model in ``path``."""
    from .api import load as _load
    return _load(path, **kwargs)


def loads(source, name="inline", **kwargs):
    """The same as :func:`load` from a string."""
    from .api import loads as _loads
    return _loads(source, name=name, **kwargs)
