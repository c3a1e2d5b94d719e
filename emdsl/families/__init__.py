"""The family table: everything family-specific, in one place.

``table``    the signatures of every family (scalar ones from ``prelude.emm``) and the
             registry ``family_table``;
``mvnormal``, ``wishart``, ``simplex``
             the numerics of the vector and matrix families (one module each);
``scalar``   the same numerics for a scalar family, found with sympy from its log density.
"""
from .normal_wishart import VB_TEXT as _NW_TEXT
from .simplex import VB_TEXT as _DIR_TEXT
from .table import (FACTORISES, SUBTYPES, VECTOR_FAMILIES, Family, ParamSpec, family_table,
                    is_subtype, prelude, scalar_family)

# the derivation's words for each variational factor's family (expectations, update, KL)
VB_TEXT = {**_DIR_TEXT, **_NW_TEXT}

__all__ = ["VB_TEXT", "FACTORISES", "Family", "ParamSpec", "SUBTYPES", "VECTOR_FAMILIES", "family_table", "is_subtype",
           "prelude", "scalar_family", "NotExponentialFamily", "decompose", "ExpFamForm",
           "to_sympy", "ASSUMPTIONS"]


def __getattr__(name):
    """The symbolic helpers, re-exported lazily (a cached model loads without sympy)."""
    if name in ("decompose", "NotExponentialFamily", "ExpFamForm", "to_sympy", "ASSUMPTIONS"):
        from . import scalar
        return getattr(scalar, name)
    raise AttributeError(name)
