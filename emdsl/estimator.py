"""``emdsl.Estimator(model, **fixed)``: a model as a scikit-learn estimator.

``fit(X, y=None)`` / ``predict`` / ``predict_proba`` / ``fit_predict`` / ``score`` /
``score_samples`` / ``bic`` / ``aic`` / ``get_params`` / ``set_params``, so a model written in
.emm drops into scikit-learn's pipelines, ``clone``, grid searches and model selection, as a
density estimator like ``GaussianMixture``. scikit-learn is not imported here (it is not a
dependency): only ``__sklearn_tags__``, which scikit-learn itself calls, imports it.

X fills the model's datum (the one data variable that is sampled; ``data="name"`` picks one
when there are several): an (N, D) array for a ``real[D]`` datum, (N, 1) for a scalar one. A
model with a covariate as well (``y[n] ~ Normal(dot(w, X[n]), ...)``) takes X as the
covariate and y as the datum.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np

from .errors import EmmDataError, EmmError
from .frontend.check import FIT_OPTIONS
from .io.data import INT_KINDS

__all__ = ["Estimator", "NotFittedError"]


class InputError(EmmDataError, ValueError):
    """What the model says of bad data, dims or options, raised as a ValueError too (as
    scikit-learn's estimators do)."""


@contextlib.contextmanager
def _value_errors():
    try:
        yield
    except EmmDataError as e:
        if isinstance(e, ValueError):
            raise
        raise InputError(e.msg, e.span, e.hint, e.source) from None


class NotFittedError(EmmError, ValueError, AttributeError):
    """predict / score before fit (a ValueError and an AttributeError, as scikit-learn's)."""


@functools.lru_cache(maxsize=1)
def _not_fitted_error() -> type:
    """NotFittedError, which is also scikit-learn's when scikit-learn is installed."""
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted
    except ImportError:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, SklearnNotFitted), {"__module__": __name__})


class Estimator:
    """``Estimator(model, **fixed)``: ``model`` an :class:`emdsl.Model` or the path of a .emm
    file; ``fixed`` its dims and hypers (``K=3``), fit options (``max_iter=200, tol=1e-6,
    seed=0, n_init=4, method="batch"``) and ``data`` (the datum X fills). Every keyword is a
    parameter of the estimator (``get_params`` / ``set_params``), kept as given.

    After ``fit``: ``result_`` (the :class:`~emdsl.results.Fitted` result), ``params_``,
    ``objective_``, ``converged_``, ``n_iter_``, ``n_features_in_`` and, for a model with a
    discrete latent per item, ``labels_`` (the most probable component of each training
    item)."""

    def __init__(self, model=None, **fixed):
        self.model = model
        self._fixed = dict(fixed)   # private: scikit-learn's checks want no other attributes

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict:
        """The estimator's parameters: ``model`` and every keyword it was given."""
        return {"model": self.model, **self._fixed}

    def set_params(self, **params) -> "Estimator":
        """Set parameters (a dim, hyper or fit option of the model, ``data`` or ``model``);
        as scikit-learn's estimators do, names are checked by ``fit``, which says which
        are valid."""
        if "model" in params:
            self.model = params.pop("model")
        self._fixed.update(params)
        return self

    def __getattr__(self, name):   # est.K reads the parameter K
        fixed = self.__dict__.get("_fixed", {})
        if name in fixed:
            return fixed[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        model = self.model
        shown = repr(str(model)) if isinstance(model, (str, Path)) else \
            (f"<{model.name}>" if model is not None and hasattr(model, "name") else repr(model))
        rest = "".join(f", {k}={v!r}" for k, v in self.get_params().items() if k != "model")
        return f"{type(self).__name__}(model={shown}{rest})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags
        return Tags(estimator_type="density_estimator",
                    target_tags=TargetTags(required=False),
                    input_tags=InputTags(two_d_array=True, allow_nan=False))

    def __sklearn_is_fitted__(self) -> bool:
        return "result_" in self.__dict__

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None) -> "Estimator":
        model = self._model()
        opts = {k: v for k, v in self.get_params().items() if k in FIT_OPTIONS}
        fixed = {k: v for k, v in self.get_params().items()
                 if k not in FIT_OPTIONS and k not in ("model", "data")}
        unknown = sorted(set(fixed) - self._names())
        if unknown:
            raise ValueError(f"{type(self).__name__}: {', '.join(unknown)} "
                             f"{'is' if len(unknown) == 1 else 'are'} not a dim, hyper or fit "
                             f"option of model {model.name} (valid: "
                             f"{', '.join(sorted(self._names()))})")
        X = _matrix(X, "X")
        try:
            with _value_errors():
                data = self._data(model, X, y)
                result = model.fit(**data, **fixed, **opts)
        except InputError as e:
            if X.shape[0] > 1:
                raise
            raise InputError(f"n_samples = 1: {e.msg}", hint=e.hint) from None
        self.result_, self.n_features_in_ = result, X.shape[1]
        self.params_, self.objective_ = result.params, result.objective
        self.converged_, self.n_iter_ = result.converged, len(result.elbo)
        if getattr(model.module, "LATENT", None) and not getattr(model.module, "LOCAL_FACTORS", ()):
            self.labels_ = result.predict(**data)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        return self.fit(X, y).labels_

    def predict_proba(self, X) -> np.ndarray:
        """The latent's responsibilities (N, K) of new items."""
        with _value_errors():
            return self._fitted().predict_proba(**self._new(X))

    def predict(self, X) -> np.ndarray:
        """The most probable component of each new item (N,)."""
        with _value_errors():
            return self._fitted().predict(**self._new(X))

    def score_samples(self, X) -> np.ndarray:
        """Each item's log likelihood log p(x_n | params) (N,)."""
        with _value_errors():
            return self._fitted().score_samples(**self._new(X))

    def score(self, X, y=None) -> float:
        """The mean log likelihood per item (higher is better)."""
        with _value_errors():
            return self._fitted().score(**self._new(X, y))

    def bic(self, X) -> float:
        with _value_errors():
            return self._fitted().bic(**self._new(X))

    def aic(self, X) -> float:
        with _value_errors():
            return self._fitted().aic(**self._new(X))

    # ------------------------------------------------------------------ helpers
    def _model(self):
        from .api import Model, load
        model = self.model
        if isinstance(model, Model):
            return model
        if isinstance(model, (str, Path)):
            cached = getattr(self, "_compiled", None)
            if cached is None or cached[0] != str(model):
                self._compiled = (str(model), load(model))
            return self._compiled[1]
        raise ValueError(f"{type(self).__name__}: model must be an emdsl.Model or the path of "
                         f"a .emm file, got {type(model).__name__}")

    def _names(self) -> set:
        cm = self._model().checked
        return {n for n in cm.vars if cm.role(n) == "hyper"} | set(cm.dims) | \
            set(FIT_OPTIONS) | {"data", "model"}

    def _roles(self, model) -> tuple[str, str | None]:
        """(the datum X or y fills, the covariate X fills or None)."""
        cm = model.checked
        sampled = {f.target for f in cm.factors}
        data = [n for n, v in cm.vars.items() if v.role == "data" and v.shape]
        chosen = self.get_params().get("data")
        targets = [n for n in data if n in sampled]
        covariates = [n for n in data if n not in sampled]
        if chosen is not None:
            if chosen not in data:
                raise ValueError(f"data='{chosen}' is not a datum of model {model.name} "
                                 f"(its data: {', '.join(data)})")
            return chosen, None
        if len(targets) == 1 and len(covariates) <= 1:
            return targets[0], (covariates[0] if covariates else None)
        raise ValueError(f"model {model.name} has the data {', '.join(data)}: say which one X "
                         f"fills with data='name'")

    def _data(self, model, X, y) -> dict:
        datum, covariate = self._roles(model)
        if covariate is not None:
            if y is None:
                raise ValueError(f"model {model.name} takes X as its covariate '{covariate}' "
                                 f"and y as its datum '{datum}': give y")
            return {covariate: _fill(model, covariate, X),
                    datum: _fill(model, datum, _matrix(y, "y", vector=True))}
        return {datum: _fill(model, datum, X)}

    def _fitted(self):
        if "result_" not in self.__dict__:
            raise _not_fitted_error()(f"this {type(self).__name__} is not fitted yet: call fit first")
        return self.result_

    def _new(self, X, y=None) -> dict:
        result = self._fitted()
        result.model.require_item_latent()
        X = _matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return self._data(result.model, X, y)


def _matrix(X, what: str, vector: bool = False) -> np.ndarray:
    """X as a finite float array of 2 (or, for y, 1 or 2) dimensions, or a ValueError /
    TypeError saying what is wrong."""
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise TypeError(f"{what} is a sparse matrix: emdsl takes dense arrays "
                        f"(use {what}.toarray())")
    arr = np.asarray(X)
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {what} is complex")
    if arr.dtype.kind not in "biuf":
        try:
            arr = arr.astype(float)
        except TypeError as e:
            raise TypeError(f"{what} must hold numbers: {e}") from None
        except ValueError as e:
            raise ValueError(f"{what} must hold numbers: {e}") from None
    if arr.ndim == 1 and not vector:
        raise ValueError(f"Expected 2D array, got 1D array instead: {what} of shape "
                         f"{arr.shape}. Reshape your data either using {what}.reshape(-1, 1) "
                         "if it has a single feature or .reshape(1, -1) if it contains a "
                         "single sample")
    if arr.ndim not in ((1, 2) if vector else (2,)):
        raise ValueError(f"{what} must be a 2D array, got {arr.ndim} dimensions")
    if arr.shape[0] == 0:
        raise ValueError(f"Found array with 0 sample(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required: {what} is empty")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum "
                         f"of 1 is required: {what} has no columns")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"Input {what} contains NaN or infinity")
    return arr


def _fill(model, name: str, X: np.ndarray) -> np.ndarray:
    """X shaped for datum ``name``: its columns are a vector element's entries, or the one
    column of a scalar element."""
    v = model.checked.vars[name]
    if v.elem_rank == 0 and len(v.shape) == 1 and X.ndim == 2:   # x[N] : real, one column
        if X.shape[1] != 1:
            raise EmmDataError(f"datum '{name}' of model {model.name} is a scalar per item: "
                               f"X needs 1 column, got {X.shape[1]}")
        X = X[:, 0]
    if v.kind in INT_KINDS and np.issubdtype(X.dtype, np.floating) \
            and np.all(X == np.round(X)):
        X = X.astype(np.int64)
    return X

