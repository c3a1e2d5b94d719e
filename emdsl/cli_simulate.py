"""``emdsl sample`` and ``emdsl check`` (from ``cli.py``): true params, covariates and
sizes for a simulation, the simulation, and the comparison of a fit with its truth."""
from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .errors import EmmDataError
from .frontend import ast


def _csv_bytes(model, arrays: dict) -> str:
    """Data (then latents of the same length) as CSV columns ``y`` or ``x_1 .. x_D``."""
    cols = [(k, a) for k, a in arrays.items() if model.checked.role(k) == "data"]
    rows = {a.shape[0] for _, a in cols if a.ndim}
    if len(rows) != 1 or any(a.ndim not in (1, 2) for _, a in cols):
        raise EmmDataError("these data do not fit in one CSV table",
                           hint="write a .npz file instead")
    n = rows.pop()
    cols += [(k, a) for k, a in arrays.items() if model.checked.role(k) == "latent"
             and a.ndim in (1, 2) and a.shape[0] == n]
    header = [k if a.ndim == 1 else f"{k}_{j + 1}" for k, a in cols
              for j in range(a.shape[1] if a.ndim == 2 else 1)]
    table = zip(*[c for _, a in cols for c in a.reshape(n, -1).T.tolist()])
    return "\n".join([",".join(header)] + [",".join(map(repr, r)) for r in table]) + "\n"


def _read_covariates(model, path, sets: dict) -> dict:
    """The covariates (data the model conditions on but does not draw) in the data file
    ``path``, read as ``fit`` reads data.  Dims that the file or the covariates' shapes
    determine, and hypers stored in it, are added to ``sets`` (a disagreement with ``--set``
    is an error); the data that the model draws are ignored."""
    import dataclasses

    from .io.data import read_data_file
    cm, name = model.checked, Path(path).name
    sampled = {f.target for f in cm.factors}
    covs = [v for v in cm.vars.values() if v.role == "data" and v.name not in sampled]
    if not covs:
        raise EmmDataError(f"model {cm.name} has no covariates (data that it conditions on "
                           "but does not draw), so there is nothing to read from --data",
                           hint="leave out --data and give the sizes with --set")
    view = cm  # an .ldac file holds both the document index and the drawn word
    if Path(path).suffix.lower() != ".ldac":  # else the drawn data need not be in the file
        view = dataclasses.replace(cm, vars={
            k: dataclasses.replace(v, role="latent") if v.role == "data" and k in sampled
            else v for k, v in cm.vars.items()})
    arrays, dims = read_data_file(path, view)
    found: dict = {}

    def put(dim, val, where):
        if found.setdefault(dim, (val, where))[0] != val:
            raise EmmDataError(f"dim '{dim}' is given twice with different values: {dim} = "
                               f"{found[dim][0]} ({found[dim][1]}) and {dim} = {val} ({where})",
                               hint="make the data agree")

    for dim, val in dims.items():
        put(dim, val, f"from {name}")
    for v in covs:  # plate axes, and element axes when the array has them (as bind does)
        arr = np.asarray(arrays[v.name])
        elem = () if v.kind == "cat" else (v.elem_dims[0],) * 2 if v.kind == "spd" \
            else tuple(v.elem_dims)
        exprs = tuple(v.shape) + elem
        exprs = exprs if arr.ndim == len(exprs) else v.shape if arr.ndim >= len(v.shape) else ()
        for ax, e in enumerate(exprs):
            if isinstance(e, ast.Name) and e.id in cm.dims:
                put(e.id, arr.shape[ax], f"from {v.name}.shape[{ax}] in {name}")
    from .cli import _agree
    _agree(sets, found)
    sets.update({k: val for k, (val, _) in found.items()})
    for k, arr in arrays.items():
        if cm.role(k) == "hyper":
            if k in sets and not np.array_equal(np.asarray(sets[k]), arr):
                raise EmmDataError(f"hyper '{k}' is given twice with different values: in "
                                   f"{name} and as --set {k}={sets[k]}")
            sets[k] = arr
    return {v.name: arrays[v.name] for v in covs}


PER_ITEM = 20   # check: rows per item when the rows point into the items (tokens of a document)


def _default_sizes(model, sets: dict) -> None:
    """For ``check``: the sizes the user did not give, chosen so that the params can be
    recovered (sizes with a default keep it). K, the values of the discrete latent: 3. A
    count of groups (the values of a categorical covariate, D in ``doc[t] : cat[D]``):
    3 K, enough groups to tell K components apart; the values of a categorical datum (V
    in ``w[t] : cat[V]``): 3 K; the features of binary or count data (little information
    each): 5 K; any other size: 3. The items: 3,000 per group when they are grouped (a
    group's own params are estimated from its items alone), else 2,000 per component (a
    small component's covariance is estimated from a few hundred); rows that point into
    the items (T in ``doc[t] : cat[D]`` with D the items): PER_ITEM per item."""
    cm = model.checked
    sampled = {f.target for f in cm.factors}
    item, size = cm.item_latent(), model._items()[1]   # the items' plate: its dim
    plate = [size] if size in cm.dims else []

    def dim_of(e):
        return e.id if isinstance(e, ast.Name) and e.id in cm.dims else None
    K = 3
    if item is not None:
        k_name = dim_of(item.elem_dims[0])
        if k_name and k_name not in sets and cm.dims[k_name].default is None:
            sets[k_name] = K
        K = _size(cm, item.elem_dims[0], sets)
    role = {}
    for v in cm.vars.values():
        if v.role != "data":
            continue
        if v.kind == "cat" and dim_of(v.elem_dims[0]):
            role.setdefault(dim_of(v.elem_dims[0]),
                            "categories" if v.name in sampled else "groups")
        if v.name in sampled and v.kind in ("bin", "count"):
            for e in (*v.shape[1:], *v.elem_dims):
                if dim_of(e):
                    role.setdefault(dim_of(e), "features")
    # the plates of data that point into the items (T in doc[T] : cat[D], D the items'):
    # PER_ITEM rows per item, sized after the items
    rows = {dim_of(v.shape[0]) for v in cm.vars.values() if v.role == "data" and v.shape
            and v.kind == "cat" and dim_of(v.elem_dims[0]) in plate and dim_of(v.shape[0])}
    for name, d in cm.dims.items():
        if name not in sets and d.default is None and name not in plate and name not in rows:
            sets[name] = {"groups": 3 * K, "categories": 3 * K, "features": 5 * K}.get(
                role.get(name), 3)
    groups = int(np.prod([_size(cm, ast.Name(n, None), sets) for n, r in role.items()
                          if r == "groups" and n not in plate]))
    for name in plate:
        if name not in sets and cm.dims[name].default is None:
            sets[name] = 3000 * groups if groups > 1 else 2000 * K
    for name in rows:
        if name not in sets and cm.dims[name].default is None:
            sets[name] = PER_ITEM * _size(cm, ast.Name(plate[0], None), sets)


def _size(cm, e, sets: dict) -> int:
    """A size expression's value from the sizes in ``sets`` and the dims' defaults."""
    from .io.data import eval_const
    env = dict(sets)
    for name, d in cm.dims.items():   # defaults in declaration order (they may use others)
        if name not in env and d.default is not None:
            try:
                env[name] = eval_const(d.default, env)
            except Exception:   # noqa: BLE001 - a default needing a size not chosen yet
                pass
    return int(eval_const(e, env))


def _global_latents(cm) -> list:
    """Latents that ``check`` gives a true value, as it does params: every latent but those
    of the items (the discrete latent per item, and any latent with the items' plate),
    whatever its prior (priors are often vague on purpose; the data decide)."""
    item = cm.item_latent()
    plate = item.shape[:1] if item is not None else ()
    return [v.name for v in cm.vars.values() if v.role == "latent" and v is not item
            and not (plate and v.shape[:1] == plate)]


def _data_informed(cm) -> set:
    """Variables the data's distributions read (arguments of a statement that draws data or
    the latent of each item): the ones a fit can recover from the data (a prior's scale
    read only by global latents is not)."""
    item, out = cm.item_latent(), set()
    for f in cm.factors:
        if cm.vars[f.target].role == "data" or cm.vars[f.target] is item:
            for _, e in f.args:
                out |= {n for n in ast.names(e) if cm.role(n) in ("param", "latent")}
    return out


def _covariates(model, sets: dict, seed: int, given=()) -> dict:
    """Uniformly drawn values for the data the model conditions on (e.g. ``doc[t]``) that
    are not in ``given``."""
    from .io.data import eval_const
    cm, rng, out = model.checked, np.random.default_rng(seed), {}
    sampled = {f.target for f in cm.factors}
    for v in cm.vars.values():
        if v.role == "data" and v.name not in sampled and v.name not in given:
            shape = tuple(int(eval_const(e, sets)) for e in v.shape)
            elem = tuple(int(eval_const(e, sets)) for e in v.elem_dims)
            draw = {"real": lambda: rng.normal(size=shape + elem),   # (a design matrix)
                    "pos": lambda: np.exp(rng.normal(0.0, 0.5, shape + elem)),   # (variances)
                    "unit": lambda: rng.uniform(0.1, 0.9, shape + elem)}.get(v.kind)
            if draw is not None:
                out[v.name] = draw()
                continue
            if v.kind != "cat":
                raise EmmDataError(f"check cannot invent the covariate '{v.name}' ({v.kind})",
                                   hint="give it in a data file with --data FILE, or use "
                                        "`emdsl fit` with your own data")
            size = int(eval_const(v.elem_dims[0], sets))
            out[v.name] = rng.integers(0, size, shape)
    return out


def _given_params(model, path: Path) -> dict:
    """The params in ``path``: the JSON of ``fit -o r.json``, the .npz of ``fit -o r.npz``
    (both must be a fit of this model: its name and its params), or any other .npz (its
    members named as params of the model; the others, e.g. data, are not read)."""
    cm = model.checked
    if path.suffix.lower() not in (".json", ".npz"):
        raise EmmDataError(f"cannot read params from '{path}': not a .json or .npz file",
                           hint="use the JSON or .npz written by `emdsl fit -o`, or a .npz "
                           "of arrays named as the model's params")
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            source, values = doc.get("model"), doc["params"]
        else:
            with np.load(path, allow_pickle=False) as z:
                stored = {k: z[k] for k in z.files}
            meta = json.loads(bytes(stored["meta"]).decode()) if "meta" in stored else {}
            if isinstance(meta, dict) and "model" in meta:   # a saved result (fit -o r.npz)
                source = meta["model"]
                values = {k[len("params/"):]: v for k, v in stored.items()
                          if k.startswith("params/")}
            else:
                source, values = None, {k: v for k, v in stored.items()
                                        if cm.role(k) == "param"}
        if not isinstance(values, dict):
            raise TypeError("its params are not a mapping of name -> values")
        given = {k: np.asarray(v, dtype=float) for k, v in values.items()
                 if cm.role(k) == "param"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError,
            zipfile.BadZipFile) as exc:
        raise EmmDataError(f"cannot read params from '{path}': {exc}",
                           hint="use the JSON or .npz written by `emdsl fit -o`, or a .npz "
                           "of arrays named as the model's params") from None
    if source is not None and source != model.name:
        raise EmmDataError(f"'{path}' holds a fit of model {source}, not of {model.name}",
                           hint=f"give params of {model.name} (fit it with `emdsl fit`)")
    others = sorted(k for k in values if cm.role(k) != "param" and "." not in k)
    if others:   # (a variational fit's q fields, "mu.mean", are not params: not read)
        raise EmmDataError(f"'{path}' gives {', '.join(others)}, which "
                           f"{'is not a param' if len(others) == 1 else 'are not params'} "
                           f"of {model.name}")
    names = [v.name for v in cm.vars.values() if v.role == "param"]
    if not given and source is None and names:   # (a variational fit's may hold none)
        raise EmmDataError(f"'{path}' holds no params of {model.name}",
                           hint=f"name its arrays as the params: {', '.join(names)}")
    fields = sorted({k.split(".")[0] for k in values if "." in k})
    if fields:   # a variational fit: its q factors are distributions, not values to draw at
        warnings.warn(f"'{path}' holds the variational factors of {', '.join(fields)} "
                      f"(q fields such as {next(k for k in values if '.' in k)}), not values: "
                      f"{'it is' if len(fields) == 1 else 'they are'} drawn from "
                      f"{'its prior' if len(fields) == 1 else 'their priors'}", stacklevel=2)
    return given


def _true_params(model, args, sets: dict, seed=None, latents=()) -> dict:
    """Params to simulate from: ``--params`` (a ``fit -o`` JSON or a .npz; dims not in
    ``sets`` are read off their shapes), else drawn at random from ``seed`` (default
    ``--seed``); so are the ``latents`` named (``check``: see :func:`_global_latents`)."""
    from .io.data import eval_const
    from .runtime.sample import dim_value
    cm, given = model.checked, {}
    if args.params:
        given = _given_params(model, Path(args.params))
        for name, arr in given.items():
            v = cm.vars.get(name)
            for e, n in zip(v.shape + v.elem_dims if v else (), arr.shape):
                if isinstance(e, ast.Name) and e.id in cm.dims:
                    sets.setdefault(e.id, n)
    env = {}
    for name, d in cm.dims.items():
        if name in sets:
            env[name] = dim_value(name, sets[name])
        elif d.default is None:
            raise EmmDataError(f"dim '{name}' has no default; give it with --set {name}=...")
        else:
            env[name] = dim_value(name, eval_const(d.default, env),
                                  f" (its default {ast.show(d.default)})")
    rng, out = np.random.default_rng(args.seed if seed is None else seed), {}
    for v in (v for v in cm.vars.values()
              if (v.role == "param" or v.name in latents) and v.name not in given):
        plate = tuple(int(eval_const(e, env)) for e in v.shape)
        elem = tuple(int(eval_const(e, env)) for e in v.elem_dims)
        # means spread out, so that mixture components are distinct; a family of simplexes
        # (one per component or group) sparse, so that they differ; a single simplex (the
        # mixing weights) even, so that no component is nearly empty
        out[v.name] = (
            rng.dirichlet(np.full(elem[0], 0.5 if plate else 5.0), size=plate)
            if v.kind == "simplex"
            else np.broadcast_to(np.eye(elem[0]), plate + elem * 2).copy() if v.kind == "spd"
            else rng.uniform(0.2, 0.8, plate + elem) if v.kind == "unit"
            else np.exp(rng.normal(np.log(3.0), 1.0, plate + elem)) if v.kind == "pos"
            else rng.normal(0.0, 5.0, plate + elem))
    return {**out, **given}


def _simulate(model, args, auto=False) -> tuple[dict, dict, dict]:
    """(true params, the simulation, the dims and hypers used); ``auto`` fills in sizes
    and covariates that were not given (for ``check``)."""
    from .io.data import INT_KINDS
    sets = dict(args.set or [])
    given = _read_covariates(model, args.data, sets) if args.data else {}
    sampled = {f.target for f in model.checked.factors}
    missing = [v.name for v in model.checked.vars.values()
               if v.role == "data" and v.name not in sampled and v.name not in given]
    if missing and not auto:
        raise EmmDataError(f"model {model.name} conditions on the covariate(s) "
                           f"{', '.join(missing)}, which sample does not draw",
                           hint="give them in a data file with --data FILE (.csv, .npz, .npy "
                                "or .ldac)")
    if auto:
        _default_sizes(model, sets)
    covariates = {**(_covariates(model, sets, args.seed, given) if auto else {}), **given}
    latents = _global_latents(model.checked) if auto else ()
    truth = _true_params(model, args, sets, latents=latents)
    if auto and not args.params and _separable(model):
        truth = _most_separated(model, args, sets, covariates, truth, latents)
    sim = model.sample(params=truth, seed=args.seed, **sets, **covariates)
    covariates = {k: np.asarray(a, dtype=np.int64 if model.checked.vars[k].kind in INT_KINDS
                                else float) for k, a in covariates.items()}  # as validated
    return truth, {k: np.asarray(v) for k, v in {**covariates, **sim}.items()}, sets


CANDIDATES, SEPARATED = 32, 0.95


def _separable(model) -> bool:
    """A discrete latent per item and point params: the E-step at the true params tells
    how clearly the components are apart."""
    mod = model.module
    return bool(getattr(mod, "LATENT", None)) and not getattr(mod, "Q_FACTORS", None)


def _most_separated(model, args, sets: dict, covariates: dict, first: dict, latents):
    """The first random truth whose components the data tell apart (a mean largest
    responsibility of at least SEPARATED on a simulation of at most 400 items), else the
    best of CANDIDATES."""
    cm = model.checked
    plate = cm.item_latent().shape[0]
    n = min(400, _size(cm, plate, sets))
    pointers = [k for k in covariates if cm.vars[k].kind == "cat" and cm.vars[k].elem_dims
                and ast.show(cm.vars[k].elem_dims[0]) == ast.show(plate)
                and cm.vars[k].shape[:1] != (plate,)]   # doc[T] : cat[D]: items' groups
    if pointers:   # they name every group: the simulation keeps them all
        n = _size(cm, plate, sets)
    small = {**sets, plate.id: n} if plate.id in cm.dims else dict(sets)
    covs = {k: np.asarray(v)[:n] if cm.vars[k].shape[:1] == (plate,) else v
            for k, v in covariates.items()}
    best = None
    for j in range(CANDIDATES):
        truth = first if j == 0 else _true_params(model, args, sets, seed=args.seed + 7919 * j,
                                                  latents=latents)
        sim = model.sample(params=truth, seed=args.seed, **small, **covs)
        score = _separation(model, truth, {**covs, **sim}, small)
        if best is None or score > best[0]:
            best = (score, truth)
        if score >= SEPARATED:
            break
    return best[1]


def _separation(model, truth: dict, sim: dict, sets: dict) -> float:
    """The mean over items of the largest responsibility at the true params (1: every
    item's component is clear from its data; 1/K: the components are indistinguishable)."""
    from types import SimpleNamespace
    data = {k: v for k, v in sim.items() if model.checked.role(k) == "data"}
    fixed = {k: v for k, v in sets.items() if model.checked.role(k) in ("dim", "hyper")}
    resp = model.evaluate(SimpleNamespace(params=truth, fixed=fixed), data)[0]
    return float(np.mean(np.max(resp, axis=1)))


def sample_command(args, load, write) -> int:
    """``emdsl sample``: simulate data (and latents) from the model."""
    model, suffix = load(args.model), Path(args.output).suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise EmmDataError(f"cannot write '{args.output}': use a .npz or .csv file name")
    truth, sim, sets = _simulate(model, args)
    if suffix == ".npz":
        dims = {k: np.asarray(v) for k, v in sets.items() if model.checked.role(k) == "dim"}
        write(args.output, lambda fh: np.savez(fh, **{**dims, **truth, **sim}))
    else:
        write(args.output, _csv_bytes(model, sim))
    print(f"wrote {', '.join(f'{k} {v.shape}' for k, v in sim.items())} to {args.output}")
    return 0


def check_command(args, load) -> int:
    """``emdsl check``: simulate from the model, fit the simulation, report how well the
    params come back. When random starts miss, the fit from the true assignments of the
    items tells a local optimum (it reaches a higher objective and recovers the params)
    from a derivation that does not recover them."""
    model = load(args.model)
    truth, sim, sets = _simulate(model, args, auto=True)
    sim = {**truth, **sim}
    data = {k: v for k, v in sim.items() if model.checked.role(k) == "data"}
    res = model.fit(**data, **sets, seed=args.seed + 1, n_init=args.n_init)
    print(f"{model.name}: fitted {', '.join(f'{k} {v.shape}' for k, v in data.items())} "
          f"simulated with seed {args.seed}; n_iter {res.n_iter}, converged {res.converged}")
    latent = getattr(model.module, "LATENT", None)   # K: its values, from the fit's dims
    K = int(model.module.n_components(res.fixed)) if latent else 0
    worst, lines = _recovery(model, res, sim, K)
    if lines:
        print("\n".join(lines))
    if worst is None:
        print("the simulation holds no true params to compare with")
        return 0
    ok = worst < args.tolerance
    if not ok and latent and latent in sim:
        start = model.fit(**data, **sets, seed=args.seed + 1,
                          init={latent: np.eye(K)[np.asarray(sim[latent], dtype=np.int64)]})
        worst2, lines2 = _recovery(model, start, sim, K)
        gap = start.objective - res.objective
        if worst2 < args.tolerance and gap >= -1e-9 * abs(start.objective):
            print(f"worst relative error {worst:.3g} from random starts, which stopped in a "
                  f"local optimum: {res.objective_name} {res.objective:.10g} < "
                  f"{start.objective:.10g} from the true assignments of the items, where")
            print("\n".join(lines2))
            print(f"worst relative error {worst2:.3g}: recovered from the true assignments "
                  "(more restarts, --n-init, may find it from random starts)")
            return 0
    verdict = "recovered" if ok else f"NOT recovered (tolerance {args.tolerance:g}); try larger N"
    print(f"worst relative error {worst:.3g}: {verdict}")
    return 0 if ok else 1


def _component_axes(model, name: str) -> list:
    """The axes of variable ``name``'s array that run over the discrete latent's
    components, by its declared shape (``mu[K] : real[D]``: axis 0; ``w : simplex[K]``:
    axis 0 of the element; a param whose size happens to equal K is not one)."""
    cm = model.checked
    comp = ast.show(cm.vars[model.module.LATENT].elem_dims[0])
    v = cm.vars[name]
    dims = list(v.shape) + list(v.elem_dims) * (2 if v.kind == "spd" else 1)
    return [i for i, d in enumerate(dims) if ast.show(d) == comp]


def _recovery(model, res, sim: dict, K: int):
    """(the worst relative error, one line per compared variable) of fit ``res`` against
    the truth in ``sim``, its K components matched (0: no discrete latent); the worst is
    None when there is nothing to compare (the lines say why)."""
    from scipy.optimize import linear_sum_assignment
    estimates = {k: np.asarray(v) for k, v in res.params.items()}
    no_mean = []
    for var, q in getattr(model.module, "Q_FACTORS", {}).items():   # a latent's posterior
        post = res.posterior[var]                                   # mean against its draw
        mean = post.get("mean", post.get(f"E[{var}]"))
        if mean is not None and var in sim:
            estimates[var] = np.asarray(mean)
        elif var in sim:
            no_mean.append(var)
    informed = _data_informed(model.checked)
    own = sorted(k for k in model.item_latents() if k in estimates and k in sim)
    left = sorted(k for k in estimates if k in sim and k not in informed and k not in own)
    lines = []
    if own:
        lines.append(f"  not compared: {', '.join(own)} (one value per item, each informed by "
                     "its own item alone: no number of items recovers "
                     f"{'it' if len(own) == 1 else 'them'})")
        informed = informed - set(own)
    if no_mean:
        lines.append(f"  not compared: {', '.join(no_mean)} (no closed form for the "
                     "posterior mean)")
    if left:
        one = len(left) == 1
        lines.append(f"  not compared: {', '.join(left)} (no data statement reads "
                     f"{'it' if one else 'them'}: only other latents inform "
                     f"{'it' if one else 'them'}, so one simulation cannot recover "
                     f"{'it' if one else 'them'})")
    truth = {k: sim[k] for k in estimates if k in sim and k in informed
             and sim[k].shape == estimates[k].shape}
    if not truth:
        return None, lines
    est = {k: np.asarray(estimates[k], dtype=float) for k in truth}
    axes = {k: _component_axes(model, k) for k in truth} if K else {}
    cost = sum(np.abs(np.moveaxis(truth[k], ax[0], 0)[:, None]
                      - np.moveaxis(est[k], ax[0], 0)[None]).reshape(K, K, -1).sum(-1)
               for k, ax in axes.items() if ax)
    perm = linear_sum_assignment(cost)[1] if np.ndim(cost) else np.arange(K)  # label switching
    worst = 0.0
    for k, true in truth.items():
        e = est[k]
        for ax in axes.get(k, ()):
            e = np.take(e, perm, axis=ax)
        err, scale = float(np.max(np.abs(e - true))), float(np.max(np.abs(true))) or 1.0
        worst = max(worst, err / scale)
        lines.append(f"  {k:<10} max |estimate - truth| = {err:.4g}  (relative {err / scale:.3g})")
    return worst, lines
