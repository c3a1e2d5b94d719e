"""The Python API of INTERFACE.md: ``load``, ``loads`` and :class:`Model`."""
from __future__ import annotations

import functools
import inspect
import re
import types
from pathlib import Path

import numpy as np

from .compile import compile_source
from .frontend import ast
from .frontend.check import FIT_OPTIONS
from .errors import EmmDataError, EmmError, EmmFitError
from .runtime import batch
from .runtime import online
from .runtime.online import DriverError



def load(path, use_cache: bool = True) -> "Model":
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise EmmError(f"cannot read model file '{path}': {exc.strerror}") from None
    try:
        source = raw.decode("utf-8")   # (loads drops a byte-order mark)
    except UnicodeDecodeError as exc:
        from .errors import EmmSyntaxError, Span
        line = raw[:exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        text = raw.decode("utf-8", errors="replace")
        raise EmmSyntaxError(f"the model file is not UTF-8: byte 0x{raw[exc.start]:02x} at "
                             f"line {line}, column {col} is not part of a UTF-8 character",
                             Span(str(path), line, col, line, col + 1),
                             "save the file as UTF-8 (the encoding every editor offers)",
                             text) from None
    return loads(source, name=str(path), use_cache=use_cache)


def loads(source: str, name: str = "inline", use_cache: bool = True) -> "Model":
    source = source[1:] if source.startswith("\ufeff") else source   # a byte-order mark
    # (some editors write one) is dropped
    try:
        compiled = compile_source(source, name, use_cache)
    except EmmError as exc:
        exc.source = exc.source or source
        raise
    return Model(compiled)


def _check_sizes(mod, h: dict, in_memory: bool = True) -> None:
    """Dims checked before anything is allocated: no more components than items, and
    params (and, for a batch fit in memory, the responsibilities) that fit in this
    machine's memory."""
    latent = getattr(mod, "LATENT", None)
    n, k = (int(mod.n_items(h)), int(mod.n_components(h))) if latent else (0, 0)
    if latent and k > n:
        raise EmmDataError(f"more components than items: {latent} takes {k} values but "
                           f"there are {n} items", hint="use fewer components or more data")
    sizes = {name: float(np.prod(shape, dtype=float))
             for name, shape in dict(mod.param_shapes(h)).items()}
    sizes["responsibilities"] = float(n) * k if latent and in_memory else 0.0
    need = 8.0 * sum(sizes.values())
    from .io.data import physical_memory
    have = physical_memory()
    if need > have:
        big = max(sizes, key=sizes.get)
        raise EmmDataError(f"these dims need {need / 2**30:,.1f} GiB for the params and "
                           f"responsibilities alone ({big}: {sizes[big]:,.0f} numbers), more "
                           f"than this machine's {have / 2**30:,.1f} GiB",
                           hint="check the dims (and the ids of categorical data, which set "
                           "their sizes)")


def _check_init_value(name: str, kind: str, value) -> None:
    """init values in the support of their param's type (finite; pos > 0; a simplex's
    rows non-negative summing to 1; spd symmetric positive definite)."""
    from .io.data import _SUPPORT   # the data's support checks: (bad values, ...)
    x = np.asarray(value, dtype=float)
    why = None
    if not np.all(np.isfinite(x)):
        why = "has NaN or infinite entries"
    elif kind == "pos" and np.any(_SUPPORT["pos"][0](x)):
        why = f"must be > 0 (a pos value), its smallest entry is {x.min():.6g}"
    elif kind == "unit" and np.any(_SUPPORT["unit"][0](x)):
        why = "must lie in (0, 1)"
    elif kind == "simplex" and (np.any(_SUPPORT["simplex"][0](x))
                                or not np.allclose(x.sum(axis=-1), 1.0)):
        why = "must be a simplex: non-negative entries that sum to 1 along its last axis"
    elif kind == "spd" and (not np.allclose(x, np.swapaxes(x, -1, -2))
                            or np.any(np.linalg.eigvalsh(x).min(axis=-1) <= 0)):
        why = "must hold symmetric positive definite matrices"
    if why:
        raise EmmDataError(f"init: '{name}' {why}", hint="give starting values in the "
                           "param's support, or leave it out to start from the data")


def _fit_options(opts: dict) -> dict:
    """Validate the fit options (INTERFACE.md); returns those the batch driver takes."""
    method = opts.setdefault("method", "batch")
    if method not in ("batch", "stepwise", "incremental", "svi"):
        raise EmmDataError(f"method '{method}' is not available",
                           hint="use method='batch', 'stepwise', 'incremental' or 'svi'")
    for k, methods in (("batch_size", ("stepwise", "incremental", "svi")),
                       ("kappa", ("stepwise", "svi")), ("delay", ("svi",))):
        if opts.get(k) is not None and method not in methods:
            raise EmmDataError(f"fit option {k} is for method="
                               + " or ".join(repr(m) for m in methods) + f", not {method!r}")
        if opts.get(k) is None:
            opts.pop(k, None)

    def number(name, cast, low, strict=False):
        if name not in opts:
            return
        val = opts[name]
        try:
            num = cast(val)
            if cast is int and num != val:
                raise ValueError
        except (TypeError, ValueError):
            raise EmmDataError(f"fit option {name} must be a{'n integer' if cast is int else ' number'}"
                               f", got {val!r}") from None
        if not isinstance(num, int) and not np.isfinite(num):   # (ints of any size are)
            raise EmmDataError(f"fit option {name} must be a finite number, got {val!r}")
        if num < low or (strict and num == low):
            raise EmmDataError(f"fit option {name} must be {'>' if strict else '>='} {low}, "
                               f"got {val!r}")
        opts[name] = num
    number("max_iter", int, 1)
    number("checkpoint_every", int, 1)
    if opts.get("checkpoint_every") is not None and opts.get("checkpoint") is None:
        raise EmmDataError("fit option checkpoint_every needs checkpoint=PATH")
    for k in ("checkpoint", "resume"):
        if opts.get(k) is not None and not isinstance(opts[k], (str, Path)):
            raise EmmDataError(f"fit option {k} must be a file path, got {opts[k]!r}")
    number("batch_size", int, 1)
    number("delay", float, 1.0)   # rho_0 = delay^-kappa <= 1
    number("kappa", float, 0.5, strict=True)
    if opts.get("kappa", 1.0) > 1.0:
        raise EmmDataError(f"fit option kappa must be in (0.5, 1], got {opts['kappa']!r}")
    if method in ("stepwise", "svi"):   # the defaults, explicit (a checkpoint records them)
        opts.setdefault("kappa", online.KAPPA[method])
    if method == "svi":
        opts.setdefault("delay", online.DELAY)
    number("local_iter", int, 0)
    number("n_init", int, 1)
    number("tol", float, 0.0)
    number("reg", float, 0.0)
    if "seed" in opts and opts["seed"] is not None:
        number("seed", int, 0)
    if "init" in opts and opts["init"] is not None and not isinstance(opts["init"], dict):
        raise EmmDataError("fit option init must be a dict of param name -> array")
    if "callback" in opts and opts["callback"] is not None and not callable(opts["callback"]):
        raise EmmDataError("fit option callback must be callable(iteration, elbo, params)")
    return opts


class Model:
    """A compiled model: ``fit``, ``sample``, ``derivation``, ``code`` and ``graph``."""

    def __init__(self, compiled):
        self._compiled = compiled
        self.checked = compiled.checked
        self.name = self.checked.name
        self.code = compiled.code

    def __reduce__(self):   # pickled as its source; compiled again (from the cache) when loaded
        return (loads, (self.checked.model.source, self.checked.model.file))

    @functools.cached_property
    def module(self):
        """The generated module, executed on first use (a fit, a sample): compiling,
        ``derivation()``, ``code`` and the graph do not import its numpy and scipy."""
        module = types.ModuleType(f"emdsl_generated_{self.name}")
        exec(compile(self.code, f"<emdsl:{self.checked.model.file!r}>", "exec"),  # noqa: S102
             module.__dict__)
        return module

    @property
    def factor_graph(self):
        """The :class:`~emdsl.graph.FactorGraph` (variables, factors, DOT output)."""
        if self._compiled.graph is None:
            from .graph import build_graph
            self._compiled.graph = build_graph(self.checked)
        return self._compiled.graph

    @property
    def graph(self):
        """The networkx factor graph."""
        return self.factor_graph.g

    def __repr__(self):
        return f"<emdsl.Model {self.name} ({self.module.ALGORITHM})>"

    def plot_graph(self, path=None, ax=None):
        """The factor graph with its plates, drawn by matplotlib (no Graphviz; ``pip
        install 'emdsl[plot]'``); saved to ``path`` when given. Returns the figure."""
        from . import plots
        fig = plots.factor_graph(self.factor_graph, ax)
        if path is not None:
            plots.save(fig, path)
        return fig

    def _repr_markdown_(self) -> str:
        """In a notebook: the model's source and its derivation (Markdown with maths)."""
        source = self.checked.model.source.strip()
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall("`+", source)), default=0))
        return (f"**{self.name}** ({self.module.ALGORITHM})\n\n{fence}\n{source}\n{fence}"
                f"\n\n{self.derivation()}")

    def _bind(self, values: dict):
        from .io.data import bind
        return bind(self.checked, values)

    def fit(self, stream=None, **kwargs) -> batch.FitResult:
        """Fit by EM / MAP-EM, or by CAVI / variational EM when the model has global
        latents. Keyword arguments: data, dims, hypers, fit options; ``init`` may give
        params (or variational parameters, ``"mu.mean"``) and the latent's responsibilities
        (``init={"z": R}``, R (N, K)): the first update is then of the globals from R.
        ``stream``: the items' data as chunks (``emdsl.chunks(...)``, or what it takes),
        read again on every pass; the other data, dims and hypers as keywords.

        Numerical failures (a covariance that is not positive definite, an objective that
        is not finite) raise :class:`~emdsl.errors.EmmFitError` with advice."""
        opts = _fit_options({k: kwargs.pop(k) for k in list(kwargs) if k in FIT_OPTIONS})
        if opts.get("local_iter") is not None and not getattr(self.module, "LOCAL_FACTORS", ()):
            raise EmmDataError(f"fit option local_iter sets the sweeps of factors per group of "
                               f"items (LDA's theta), and {self.name} has none",
                               hint="leave out local_iter")
        items, size = self._items()
        if stream is not None or opts["method"] != "batch":
            pointers = [v.name for v in self.checked.vars.values() if v.role == "data"
                        and v.name not in items and v.kind == "cat" and v.elem_dims
                        and ast.show(v.elem_dims[0]) == size]   # e.g. doc[T] : cat[D]
            if stream is not None:   # chunks carry them with the items' data, or fail
                pointers = [p for p in pointers if p in kwargs]
            if not items or pointers:
                what = (f"{', '.join(pointers)} point{'s' if len(pointers) == 1 else ''} "
                        f"into the items ('{size}') from another plate" if pointers else
                        f"are not indexed by the plate of its items ('{size}')")
                raise EmmDataError(f"model {self.name}'s data {what}, so they cannot be "
                                   "cut into chunks of items (documents of tokens: later "
                                   "work)", hint="use method='batch' with the data in memory")
        from .runtime.distributed import is_dask
        dask_data = {k: v for k, v in kwargs.items() if k in items and is_dask(v)}
        own = self.item_latents()
        if own and (stream is not None or opts["method"] != "batch" or dask_data):
            raise EmmDataError(f"latent {', '.join(own)} of model {self.name} has one value "
                               "per item, so every item's factor is fitted with the data in "
                               "memory, not over chunks, minibatches or partitions",
                               hint="use method='batch' with numpy arrays")
        if dask_data:
            plain = [k for k in items if k in kwargs and k not in dask_data]
            if plain:
                one = len(dask_data) == 1
                verb = "is a dask array" if one else "are dask arrays"
                raise EmmDataError(f"{', '.join(dask_data)} {verb} but {', '.join(plain)} "
                                   f"{'is' if len(plain) == 1 else 'are'} not: the items' "
                                   "data go to the cluster together, in the same partitions",
                                   hint="pass every datum indexed by the items as a dask array "
                                   "with the same chunks along the items (da.from_array(y, "
                                   "chunks=x.chunks[0]))")
            if stream is not None or opts["method"] != "batch":
                raise EmmDataError("dask arrays are fitted by batch EM (method='batch'), "
                                   "each iteration mapped over their partitions")
            h, bound = self._bind_dask(kwargs, dask_data, size), None
        elif stream is not None:
            from .io.chunks import bind_stream, chunks
            h, fresh = bind_stream(self.checked, chunks(stream), kwargs, items, size)
            bound = None
        else:
            bound = self._bind(kwargs)
            h = {**bound.dims, **bound.hypers}
        problems = self.module.hyper_problems(h)
        if problems:
            raise EmmDataError(problems[0], hint="change the hyper at fit time or in the model")
        _check_sizes(self.module, h, in_memory=not dask_data and stream is None
                     and opts["method"] == "batch")
        if bound is not None:
            batch.warn_far_from_zero(self.module, bound.data)
        init = opts.get("init")
        if init:
            shapes = dict(self.module.param_shapes(h))
            latent = self.module.LATENT
            if latent:
                shapes[latent] = (self.module.n_items(h), self.module.n_components(h))
            for k, v in init.items():
                if k == latent:
                    r = np.asarray(v, dtype=float)
                    if r.shape == shapes[k] and (np.any(~np.isfinite(r)) or np.any(r < 0)
                                                 or not np.allclose(r.sum(axis=1), 1.0)):
                        raise EmmDataError(f"init: '{k}' must be responsibilities: "
                                           "non-negative rows that sum to 1")
                if k not in shapes:
                    raise EmmDataError(f"init: '{k}' is not a param of {self.name}",
                                       hint=f"params: {', '.join(shapes)}")
                if np.shape(v) != shapes[k]:
                    raise EmmDataError(f"init: '{k}' must have shape {shapes[k]}, "
                                       f"got {np.shape(v)}")
                if k != latent:
                    _check_init_value(k, self.module.PARAM_KINDS.get(k, "real"), v)
        method = opts.pop("method")
        bar = self._progress(kwargs, opts)
        self._checkpointing(method, h, opts, "dask arrays" if dask_data else
                            "a stream" if bound is None else "arrays in memory")
        try:
            with np.errstate(divide="ignore", under="ignore"):
                if method == "batch" and bound is not None:
                    return self._own(batch.run(self.module, bound.data, h, **opts), h, size)
                from .runtime.sources import ArraySource, StreamSource
                if dask_data:
                    from .runtime.distributed import DaskSource
                    source = DaskSource(self.module, self.code, {**kwargs, **dask_data}, h,
                                        items, size)
                elif bound is None:
                    source = StreamSource(self.module, fresh, h, items, size)
                else:
                    source = ArraySource(self.module, bound.data, h, items, size)
                return self._own(self._fit_online(method, source, opts), h, size)
        except (FloatingPointError, np.linalg.LinAlgError) as exc:
            data_fault = isinstance(exc, batch.ImpossibleDataError)
            raise EmmFitError(str(exc), hint=None if data_fault else "try another seed, "
                              "n_init > 1, fewer components or a larger `reg`") from None
        except DriverError as exc:   # an option or a combination the drivers do not take
            raise EmmDataError(str(exc)) from None
        except ValueError as exc:  # numpy could not combine the given arrays
            if "broadcast" not in str(exc) and "shape" not in str(exc):
                raise
            raise EmmFitError(f"the given values do not fit together: {exc}",
                              hint="check that vector hypers have the sizes the model's types "
                              "give them (e.g. `alpha : pos[K]` for a `simplex[K]`)") from None
        finally:
            if bar is not None:
                bar.close()

    def _progress(self, values, opts):
        """With verbose=True on a terminal, a progress bar (pass, items per second, the
        objective) instead of printed lines; None otherwise."""
        import sys
        if not opts.get("verbose") or not sys.stderr.isatty():
            return None
        from .progress import Progress
        bar = Progress(self, values, opts.get("max_iter"))
        user = opts.get("callback")

        def both(it, value, params):
            bar.update(it, value, params)
            if user is not None:
                user(it, value, params)
        opts["callback"], opts["verbose"] = both, False
        return bar

    def _checkpointing(self, method, h, opts, source_kind) -> None:
        """Replace the checkpoint / resume paths in ``opts`` by a Checkpoint and the saved
        state (checked against this run: the model, the method, the items, the options)."""
        from .runtime import checkpoint as ck
        path, every = opts.pop("checkpoint", None), opts.pop("checkpoint_every", None)
        resume = opts.pop("resume", None)
        if path is None and resume is None:
            return
        if opts.get("n_init", 1) > 1:
            raise EmmDataError("checkpoint / resume take one start: n_init must be 1")
        if resume is not None and opts.get("init"):
            raise EmmDataError("init and resume both give the fit's start",
                               hint="leave out init: resume continues from the params the "
                               "checkpoint holds")
        defaults = {k: inspect.signature(online.run).parameters[k].default for k in ck.OPTIONS}
        shape = {k: opts.get(k, defaults[k]) for k in ck.OPTIONS}   # a default spelt out: same
        shape["dims and hypers"] = {k: np.asarray(v).tolist() for k, v in sorted(h.items())}
        shape["data"] = source_kind
        ident = ck.identity(self.name, self.checked.model.source, method,
                            self.module.n_items(h), shape)
        if path is not None:
            if Path(path).is_dir():
                raise EmmDataError(f"checkpoint '{path}' is a directory; give a file path "
                                   "such as run.npz")
            opts["checkpoint"] = ck.Checkpoint(path, every or 1, ident)
        if resume is not None:
            opts["resume"] = ck.load(resume, ident, defaults)
            done = opts["resume"]["iteration"]
            driver = batch.run if method == "batch" and source_kind == "arrays in memory" \
                else online.run   # (whose default max_iter applies when it is not given)
            asked = opts.get("max_iter", inspect.signature(driver).parameters["max_iter"].default)
            if asked < done:
                raise EmmDataError(f"checkpoint '{resume}' holds {done} iterations and "
                                   f"max_iter={asked} asks for fewer"
                                   + ("" if "max_iter" in opts else " (its default)"),
                                   hint=f"give max_iter >= {done} (the run's total count)")

    def _bind_dask(self, kwargs, dask_data, size) -> dict:
        """Dims and hypers of a fit on dask arrays: the first partition is checked like
        ``fit``'s arrays (names, shapes, values), the plate's size is the arrays' length."""
        lengths = {int(v.shape[0]) for v in dask_data.values()}
        if len(lengths) > 1:
            raise EmmDataError(f"the dask arrays {', '.join(dask_data)} have different "
                               f"numbers of items ({', '.join(map(str, sorted(lengths)))})")
        first = {k: np.asarray(v[: v.chunks[0][0]].compute()) for k, v in dask_data.items()}
        b = self._bind({**{k: v for k, v in kwargs.items() if k not in dask_data}, **first})
        return {**b.dims, **b.hypers, size: lengths.pop()}

    def _items(self) -> tuple[tuple, str]:
        """(the data indexed by the item plate, the name of its dim): the plate of the
        discrete latent, else of the first datum with a plate."""
        cm = self.checked
        first = cm.item_latent() or next((v for v in cm.vars.values()
                                          if v.role == "data" and v.shape), None)
        if first is None:   # no datum with a plate: nothing to cut into chunks
            return (), ""
        size = ast.show(first.shape[0])
        return tuple(v.name for v in cm.vars.values() if v.role == "data" and v.shape
                     and ast.show(v.shape[0]) == size), size

    def _own(self, result, h: dict, size: str):
        """The result as users see it: knowing its model and the fit's dims and hypers
        (not the items')."""
        from .results import Fitted
        return Fitted(result, self, {k: v for k, v in h.items() if k != size})

    def evaluate(self, result, data: dict) -> tuple:
        """(responsibilities (N, K) of the items of ``data``, log p(data | params) (for a
        variational fit the data's part of the ELBO), N, each item's log p(x_n) (N,)) at
        ``result``'s params, with the fit's dims and hypers."""
        mod = self.module
        self.require_item_latent()
        size = self._items()[1]
        for k, v in data.items():   # a dim or hyper of the fit is the fit's
            if k in result.fixed and self.checked.role(k) in ("dim", "hyper") and \
                    not np.array_equal(np.asarray(v), np.asarray(result.fixed[k])):
                raise EmmDataError(f"'{k}' is {np.asarray(result.fixed[k]).tolist()} in the "
                                   f"fit; new data cannot change it (given {v!r})",
                                   hint=f"leave out {k}=...")
        if getattr(mod, "LOCAL_FACTORS", ()):
            raise EmmDataError(f"{self.name} has factors per group ({', '.join(mod.LOCAL_FACTORS)}"
                               "): new groups need their own fit", hint="fit the new data "
                               "with init= the fitted global params")
        from .io.data import _full_exprs
        for name, value in data.items():   # the fit's dims hold for new data
            v = self.checked.vars.get(name)
            if v is None or v.role != "data":
                continue
            for ax, e in enumerate(_full_exprs(v)):
                given = np.shape(value)[ax] if ax < np.ndim(value) else None
                if isinstance(e, ast.Name) and e.id in result.fixed and e.id != size \
                        and given is not None and given != result.fixed[e.id]:
                    raise EmmDataError(f"data '{name}' has {given} along axis {ax} but the "
                                       f"fit's {e.id} is {result.fixed[e.id]}",
                                       hint=f"new data have the fitted model's {e.id}")
        bound = self._bind({**result.fixed, **data})   # (equal where both give a value)
        h = {**bound.dims, **bound.hypers}
        with np.errstate(divide="ignore", under="ignore"):
            st = mod.prepare(bound.data, h)
            rows = np.zeros(st["n_rows"])
            resp, _, loglik = mod.e_step(st, result.params, h, rows=rows)
        return (batch.item_resp(mod, st, resp), float(loglik), int(mod.n_items(h)),
                batch.item_resp(mod, st, rows[:, None])[:, 0])

    def item_latents(self) -> list:
        """The continuous latents with one value per item (eight schools' theta[j]: the
        items' plate), in a model without a discrete latent."""
        if getattr(self.module, "LATENT", None):
            return []
        size = self._items()[1]
        return [v.name for v in self.checked.vars.values() if v.role == "latent"
                and [ast.show(e) for e in v.shape[:1]] == [size]]

    def require_item_latent(self) -> None:
        """An error unless the model has a discrete latent per item (what predict and
        score work on)."""
        if not getattr(self.module, "LATENT", None):
            raise EmmDataError(f"{self.name} has no discrete latent per item: there is "
                               "nothing to predict or score item by item",
                               hint="compare fits by result.objective")

    def n_parameters(self, fixed: dict) -> int:
        """Free parameters of the model's params at dims ``fixed``."""
        from .io.data import eval_const
        total = 0
        for v in self.checked.vars.values():
            if v.role != "param":
                continue
            cells = int(np.prod([int(eval_const(e, fixed)) for e in v.shape]))
            d = [int(eval_const(e, fixed)) for e in v.elem_dims]
            each = {"simplex": lambda: d[0] - 1, "spd": lambda: d[0] * (d[0] + 1) // 2,
                    "cat": lambda: 1}.get(v.kind, lambda: int(np.prod(d)) if d else 1)()
            total += cells * each
        return total

    def _fit_online(self, method, source, opts):
        """Stepwise / incremental EM, or batch EM over a stream (runtime/online.py)."""
        import warnings
        result = online.run(self.module, source, method=method, **opts)
        for w in result.warnings:
            warnings.warn(w[1], w[0], stacklevel=3)
        return result

    def sample(self, params=None, seed=0, **kwargs) -> dict:
        """Forward-simulate data and latents; see :mod:`emdsl.runtime.sample`."""
        from .runtime.sample import simulate
        return simulate(self, params or {}, seed, kwargs)

    def derivation(self, format: str = "markdown") -> str:
        """The derivation of the updates as a document: ``markdown`` (maths in ``$$``),
        ``latex`` (a standalone document), ``html`` (a self-contained page, KaTeX
        bundled) or ``text``; each step names the generated function and line."""
        from .explain import explain
        updates = self._compiled.updates
        if updates is None:
            from .compile import derive_updates
            updates = self._compiled.updates = derive_updates(self.checked,
                                                              self.factor_graph)
        file = self.checked.model.file
        return explain(updates, format, code=self.code,
                       model_file=file if file.endswith(".emm") else "")
