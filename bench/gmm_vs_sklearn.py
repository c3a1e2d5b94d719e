#!/usr/bin/env python
"""emdsl's generated EM for a full-covariance Gaussian mixture against scikit-learn.

Run by hand (not in CI), from anywhere:

    python bench/gmm_vs_sklearn.py                      # N=200000, D=10, K=8, 20 iterations
    python bench/gmm_vs_sklearn.py --n 20000 --repeat 1 # quick check
    python bench/gmm_vs_sklearn.py --profile            # + cProfile and per-line times

What it does (see bench/README.md for the numbers):

1. simulates N points in D dimensions from a seeded K-component Gaussian mixture;
2. picks one start (uniform weights, K distinct data points as means, the pooled data
   covariance for every component) and hands it to both libraries;
3. times, best of --repeat rounds (the three interleaved in each round), in this process:
   * ``emdsl`` ``Model.fit(tol=0, reg=0, max_iter=iters, init=start)``, the whole call
     (binding, ``prepare``, the driver's own start, the loop), divided by the E-steps it
     ran (with tol=0 the driver still stops on an exactly repeated objective);
   * the generated ``e_step`` + ``m_step`` loop alone, ``iters`` times, after one
     ``prepare`` (timed apart, like the driver's start ``module.init``);
   * ``sklearn.mixture.GaussianMixture(covariance_type="full", reg_covar=0, tol=0,
     max_iter=iters, weights_init, means_init, precisions_init).fit`` divided by iters (it
     also runs one last E-step and its input checks, so its s/iter is slightly pessimistic);
4. prints s/iter of each, the ratios emdsl/sklearn (target <= 0.15), and the largest
   relative difference (max |a-b| / max |b| per parameter) between the parameters of the
   emdsl loop and of sklearn after the same number of iterations;
5. measures the peak of the memory allocated during an emdsl fit with ``tracemalloc``
   (numpy reports its buffers to it) in units of the (N, K) float64 responsibility array,
   against the bound ``3 x resp + data + t(x)``, t(x) being (N, D + D(D+1)/2) float64;
6. times ``emdsl.load`` in fresh interpreters: a cold compile (``use_cache=False``) and a
   load from a warm cache (a private ``EMDSL_CACHE`` directory), wall clock including the
   interpreter start and the imports;
7. with --profile: cProfile of the e_step/m_step loop, and the wall time of every statement
   of the generated code (an instrumented copy of ``model.code``).

It always imports emdsl from this checkout (an installed emdsl may be older).

BLAS: the large products of both libraries go through numpy's OpenBLAS (sklearn's small
D x D factorisations through scipy's), so the ratio is fair under any ``OPENBLAS_*``
setting; the script prints the variables it saw and threadpoolctl's view (--blas-threads
limits the pools).
"""
from __future__ import annotations

import argparse
import ast
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_REL = "models/gaussian_mixture.emm"
MODEL = ROOT / MODEL_REL
TARGET_RATIO = 0.15
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Measure this checkout, even if another (possibly older) emdsl is installed.
sys.path.insert(0, str(ROOT))
import emdsl  # noqa: E402


# ----------------------------------------------------------------------------- data
def simulate(n, d, k, seed):
    """N points from a seeded K-component mixture with random full covariances."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    means = rng.normal(0.0, 3.0, size=(k, d))
    A = rng.normal(size=(k, d, d))
    covs = A @ np.swapaxes(A, 1, 2) / d + 0.5 * np.eye(d)
    z = rng.choice(k, size=n, p=weights)
    x = np.empty((n, d))
    for j in range(k):
        idx = np.flatnonzero(z == j)
        L = np.linalg.cholesky(covs[j])
        x[idx] = means[j] + rng.standard_normal((idx.size, d)) @ L.T
    return x


def starting_values(x, k, seed):
    """Uniform weights, K distinct data points as means, the pooled covariance for all."""
    rng = np.random.default_rng(seed + 1)
    n, d = x.shape
    mu = x[rng.choice(n, size=k, replace=False)].copy()
    sigma = np.repeat(np.cov(x, rowvar=False)[None], k, axis=0)
    return {"weights": np.full(k, 1.0 / k), "mu": mu, "Sigma": sigma}


# ----------------------------------------------------------------------------- timing
def best_of(repeat, fn):
    """(best wall-clock seconds, last result) over ``repeat`` calls of fn()."""
    best, out = float("inf"), None
    for _ in range(repeat):
        out = None
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def emdsl_fit(model, x, k, start, iters):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 never converges
        return model.fit(x=x, K=k, init=start, max_iter=iters, tol=0, reg=0)


def emdsl_loop(mod, st, h, start, iters, split=None):
    """The generated e_step + m_step, ``iters`` times, from ``start`` (prepare done)."""
    params = {key: np.array(v, dtype=float) for key, v in start.items()}
    te = tm = 0.0
    with np.errstate(divide="ignore", under="ignore"):  # as Model.fit does
        for _ in range(iters):
            t0 = time.perf_counter()
            _, ess, _ = mod.e_step(st, params, h)
            t1 = time.perf_counter()
            params = mod.m_step(ess, params, h, 0.0)
            t2 = time.perf_counter()
            te += t1 - t0
            tm += t2 - t1
    if split is not None:
        split.append((te, tm))
    return params


def sklearn_gm(start, iters):
    from sklearn.mixture import GaussianMixture
    return GaussianMixture(
        n_components=len(start["weights"]), covariance_type="full", reg_covar=0, tol=0,
        max_iter=iters, init_params="kmeans", weights_init=start["weights"],
        means_init=start["mu"], precisions_init=np.linalg.inv(start["Sigma"]))


def sklearn_fit(x, start, iters):
    gm = sklearn_gm(start, iters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm.fit(x)
    return gm


def rel_diff(a, b):
    """max |a - b| / max |b| (relative to the parameter's scale, robust to ~0 entries)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ----------------------------------------------------------------------------- memory
def traced_peak(fn):
    """Peak bytes allocated (and traced) while fn() runs, the result dropped afterwards."""
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del out
    return peak


def memory_report(model, x, k, start, iters):
    n, d = x.shape
    mod = model.module
    h = {"N": n, "D": d, "K": k}
    resp = n * k * 8
    data = n * d * 8
    tx = n * (d + d * (d + 1) // 2) * 8
    bound = 3 * resp + data + tx
    out = {"resp_bytes": resp, "data_bytes": data, "tx_bytes": tx, "bound_bytes": bound}
    out["fit_peak"] = traced_peak(lambda: emdsl_fit(model, x, k, start, iters))
    # the phases, each measured on its own (peak over the phase, live inputs excluded)
    out["prepare_peak"] = traced_peak(lambda: mod.prepare({"x": x}, h))
    st = mod.prepare({"x": x}, h)
    out["init_peak"] = traced_peak(
        lambda: mod.init(st, {"x": x}, h, np.random.default_rng(0), 0.0))
    out["loop_peak"] = traced_peak(lambda: emdsl_loop(mod, st, h, start, 2))
    del st
    out["sklearn_peak"] = traced_peak(lambda: sklearn_fit(x, start, iters))
    return out


# ----------------------------------------------------------------------------- load times
def load_times(repeat):
    """Wall clock of a fresh ``python -c 'import emdsl; emdsl.load(...)'``, cold and warm."""
    child = (
        "import json, sys, time\n"
        "t0 = time.perf_counter()\n"
        "import emdsl\n"
        "t1 = time.perf_counter()\n"
        "m = emdsl.load(sys.argv[1], use_cache=sys.argv[2] == '1')\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'import': t1 - t0, 'load': t2 - t1}))\n")
    out = {}
    with tempfile.TemporaryDirectory(prefix="emdsl-bench-cache-") as cache:
        env = dict(os.environ, EMDSL_CACHE=cache,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))

        def run(use_cache):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", child, MODEL_REL, use_cache],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  check=True)
            wall = time.perf_counter() - t0
            inner = json.loads(proc.stdout.strip().splitlines()[-1])
            return {"wall": wall, **inner}

        def best(use_cache):
            runs = [run(use_cache) for _ in range(repeat)]
            return min(runs, key=lambda r: r["wall"])

        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        out["bare_python"] = time.perf_counter() - t0
        out["cold"] = best("0")            # use_cache=False: parse ... codegen every time
        run("1")                           # fill the private cache
        out["warm"] = best("1")
    return out


# ----------------------------------------------------------------------------- profiling
class _Timed(ast.NodeTransformer):
    """Wrap every simple statement of the generated code in a timer keyed by (function, line).

    Cheaper and more faithful than a ``sys.settrace`` line profiler, which slows down every
    Python-level call (e.g. inside ``scipy.special.logsumexp``) and so inflates such lines.
    """

    SIMPLE = (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Return)

    def __init__(self):
        self.func = "<module>"

    def visit_FunctionDef(self, node):
        outer, self.func = self.func, node.name
        self.generic_visit(node)
        self.func = outer
        return node

    def generic_visit(self, node):
        for field in ("body", "orelse", "finalbody"):
            stmts = getattr(node, field, None)
            if isinstance(stmts, list) and stmts and isinstance(stmts[0], ast.stmt):
                setattr(node, field, [w for st in stmts for w in self._wrap(st)])
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.For, ast.While, ast.If, ast.With,
                                  ast.Try)):
                self.visit(child)
        return node

    def _wrap(self, st):
        if self.func == "<module>" or not isinstance(st, self.SIMPLE):
            return [st]
        key = repr((self.func, st.lineno))
        start = ast.parse("__t0 = __pc()").body
        stop = ast.parse(f"__acc[{key}] = __acc.get({key}, 0.0) + (__pc() - __t0); "
                         f"__hits[{key}] = __hits.get({key}, 0) + 1").body
        if isinstance(st, ast.Return) and st.value is not None:
            keep = ast.Assign(targets=[ast.Name("__ret", ast.Store())], value=st.value)
            ret = ast.Return(ast.Name("__ret", ast.Load()))
            out = start + [keep] + stop + [ret]
        else:
            out = start + [st] + stop
        for node in out:
            ast.copy_location(node, st)
            ast.fix_missing_locations(node)
        return out


def line_times(model, st, h, start, iters):
    """Wall time per statement (inclusive of calls) of an instrumented copy of the module."""
    tree = _Timed().visit(ast.parse(model.code))
    acc, hits = {}, {}
    ns = {"__acc": acc, "__hits": hits, "__pc": time.perf_counter}
    exec(compile(tree, "<emdsl-instrumented>", "exec"), ns)  # noqa: S102
    timed = type(model.module)("emdsl_instrumented")
    timed.__dict__.update(ns)
    t0 = time.perf_counter()
    emdsl_loop(timed, st, h, start, iters)
    wall = time.perf_counter() - t0
    return acc, hits, wall


def profile(model, x, k, start, iters):
    n, d = x.shape
    mod = model.module
    h = {"N": n, "D": d, "K": k}
    st = mod.prepare({"x": x}, h)
    print("\n== cProfile: generated e_step + m_step loop, prepare excluded "
          f"({iters} iterations), by own time (the @ products count in their caller) ==")
    prof = cProfile.Profile()
    prof.runcall(emdsl_loop, mod, st, h, start, iters)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:6000])

    t_plain, _ = best_of(1, lambda: emdsl_loop(mod, st, h, start, iters))
    acc, hits, wall = line_times(model, st, h, start, iters)
    src = model.code.splitlines()
    print(f"\n== per-statement wall time of the generated code (inclusive of calls, so a "
          f"line that calls expected_stats contains it; {iters} iterations; instrumented "
          f"loop {wall / iters:.4f} s/iter, uninstrumented {t_plain / iters:.4f} s/iter) ==")
    print(f"{'function':<16}{'line':>5}{'hits':>7}{'s/iter':>9}{'of loop':>9}  source")
    for (fn, line), t in sorted(acc.items(), key=lambda kv: -kv[1])[:14]:
        text = src[line - 1].strip() if 0 < line <= len(src) else "?"
        print(f"{fn:<16}{line:>5}{hits[(fn, line)]:>7}{t / iters:>9.4f}"
              f"{t / wall:>9.1%}  {text[:88]}")


# ----------------------------------------------------------------------------- main
def blas_info():
    try:
        from threadpoolctl import threadpool_info
        return [{k: v for k, v in lib.items() if k in ("internal_api", "version",
                                                        "num_threads", "architecture")}
                for lib in threadpool_info() if lib.get("user_api") == "blas"]
    except Exception as exc:  # threadpoolctl is optional
        return [f"threadpoolctl unavailable: {exc}"]


def revision():
    """The checkout's commit, and whether emdsl/ differs from it (read-only git calls)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "emdsl", "models"],
                               cwd=ROOT, text=True, capture_output=True,
                               check=True).stdout.strip()
        return rev + (" (emdsl/ or models/ modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200_000, help="points (default 200000)")
    ap.add_argument("--d", type=int, default=10, help="dimensions (default 10)")
    ap.add_argument("--k", type=int, default=8, help="components (default 8)")
    ap.add_argument("--iters", type=int, default=20, help="EM iterations (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc part")
    ap.add_argument("--no-load", action="store_true", help="skip the load-time part")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the generated e_step/m_step (cProfile + line times)")
    ap.add_argument("--blas-threads", type=int, metavar="T",
                    help="limit every BLAS pool to T threads (threadpoolctl) for the whole run")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    import scipy.linalg  # noqa: F401  (load every BLAS before threadpoolctl looks)
    import sklearn.mixture  # noqa: F401
    if args.blas_threads:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=args.blas_threads, user_api="blas"):
            return run(args)
    return run(args)


def run(args):
    import sklearn
    n, d, k, iters = args.n, args.d, args.k, args.iters
    res = {"args": vars(args), "env": {v: os.environ.get(v) for v in ENV_VARS},
           "revision": revision(), "loadavg_start": os.getloadavg()[0]}
    print(f"emdsl {emdsl.__version__}, numpy {np.__version__}, sklearn {sklearn.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"emdsl from {Path(emdsl.__file__).parent}, checkout {res['revision']}; "
          f"load average {res['loadavg_start']:.2f} at start")
    print("env: " + ", ".join(f"{v}={os.environ.get(v, '(unset)')}" for v in ENV_VARS))
    print(f"BLAS: {blas_info()}")

    x = simulate(n, d, k, args.seed)
    start = starting_values(x, k, args.seed)
    model = emdsl.load(MODEL, use_cache=False)  # the code of this checkout, not a cached one
    mod = model.module
    h = {"N": n, "D": d, "K": k}
    print(f"\ndata: N={n} D={d} K={k}, {iters} iterations")

    # -- speed: the candidates interleaved round by round (this VM's timings drift)
    times = {key: [] for key in ("fit", "prepare", "start", "loop", "e", "m", "sklearn")}
    fit = gm = loop_params = None
    for _ in range(args.repeat):
        t, fit = best_of(1, lambda: emdsl_fit(model, x, k, start, iters))
        times["fit"].append(t)
        t, st = best_of(1, lambda: mod.prepare({"x": x}, h))
        times["prepare"].append(t)
        with np.errstate(divide="ignore", under="ignore"):
            t, _ = best_of(1, lambda: mod.init(st, {"x": x}, h, np.random.default_rng(0), 0.0))
        times["start"].append(t)
        splits = []
        t, loop_params = best_of(1, lambda: emdsl_loop(mod, st, h, start, iters, splits))
        times["loop"].append(t)
        times["e"].append(splits[0][0])
        times["m"].append(splits[0][1])
        del st
        gm = None
        t, gm = best_of(1, lambda: sklearn_fit(x, start, iters))
        times["sklearn"].append(t)
    if fit.n_iter != iters:
        print(f"NOTE: emdsl's fit stopped after {fit.n_iter} E-steps, not {iters}: with tol=0 "
              "the driver still stops when two successive objectives are exactly equal "
              "(|change| <= tol |value|); its s/iter below divides by the E-steps it ran")
    if gm.n_iter_ != iters:
        print(f"WARNING: sklearn stopped after {gm.n_iter_} iterations, not {iters}")

    best = {key: min(v) for key, v in times.items()}
    med = {key: float(np.median(v)) for key, v in times.items()}
    fit_iters = fit.n_iter
    per = {"emdsl_fit": best["fit"] / fit_iters, "emdsl_loop": best["loop"] / iters,
           "emdsl_e_step": best["e"] / iters, "emdsl_m_step": best["m"] / iters,
           "sklearn_fit": best["sklearn"] / iters}
    per_median = {"emdsl_fit": med["fit"] / fit_iters, "emdsl_loop": med["loop"] / iters,
                  "sklearn_fit": med["sklearn"] / iters}
    ratio_fit = per["emdsl_fit"] / per["sklearn_fit"]
    ratio_loop = per["emdsl_loop"] / per["sklearn_fit"]
    res.update(seconds_per_iter=per, seconds_per_iter_median=per_median, times=times,
               fit_n_iter=fit_iters, prepare_once=best["prepare"], driver_start_once=best["start"],
               ratio_fit=ratio_fit, ratio_loop=ratio_loop)
    print(f"\n== speed: seconds per EM iteration, best of {args.repeat} interleaved rounds "
          "(median in brackets) ==")
    print(f"emdsl   Model.fit (whole call)          {per['emdsl_fit']:.4f} s/iter "
          f"[{per_median['emdsl_fit']:.4f}]  ({best['fit']:.3f} s per fit, "
          f"{fit_iters} E-steps)")
    print(f"emdsl   e_step+m_step, prepare excluded {per['emdsl_loop']:.4f} s/iter "
          f"[{per_median['emdsl_loop']:.4f}]  (e_step {per['emdsl_e_step']:.4f}, "
          f"m_step {per['emdsl_m_step']:.5f})")
    print(f"sklearn GaussianMixture.fit             {per['sklearn_fit']:.4f} s/iter "
          f"[{per_median['sklearn_fit']:.4f}]  ({best['sklearn']:.3f} s per fit, "
          f"{iters + 1} E-steps)")
    print(f"one-off parts of Model.fit: prepare {best['prepare']:.3f} s, driver start "
          f"(module.init, k-means++; Model.fit skips it when init= gives every param) "
          f"{best['start']:.3f} s")
    for name, r, rm in (("fit", ratio_fit, per_median["emdsl_fit"] / per_median["sklearn_fit"]),
                        ("loop", ratio_loop, med["loop"] / med["sklearn"])):
        verdict = "meets" if r <= TARGET_RATIO else "MISSES"
        print(f"ratio emdsl {name}/sklearn = {r:.3f} [median {rm:.3f}]  "
              f"({verdict} the target <= {TARGET_RATIO})")

    # -- agreement: the loop ran exactly `iters` E- and M-steps, like sklearn
    skp = {"weights": gm.weights_, "mu": gm.means_, "Sigma": gm.covariances_}
    diffs = {p: rel_diff(loop_params[p], skp[p]) for p in skp}
    fit_diff = max(rel_diff(fit.params[p], skp[p]) for p in skp)
    ll_emdsl = fit.elbo[-1] / n   # log-lik per point at the fit's last E-step
    ll_sk = gm.lower_bound_       # sklearn's, at its last E-step inside the loop
    res.update(rel_diff=diffs, max_rel_diff=max(diffs.values()), fit_vs_sklearn=fit_diff,
               loglik_per_point={"emdsl": ll_emdsl, "sklearn": ll_sk})
    print(f"\n== agreement after {iters} iterations (max |a-b| / max |b| per parameter) ==")
    print("emdsl e_step/m_step loop vs sklearn: "
          + "  ".join(f"{p} {v:.2e}" for p, v in diffs.items())
          + f"  -> max {max(diffs.values()):.2e}")
    print(f"emdsl Model.fit ({fit.n_iter} E-steps) vs sklearn: max {fit_diff:.2e}; mean "
          f"log-lik at the last E-step: emdsl {ll_emdsl:.12f}, sklearn {ll_sk:.12f}")

    # -- memory
    if not args.no_memory:
        mem = memory_report(model, x, k, start, iters)
        res["memory"] = mem
        r = mem["resp_bytes"]
        mb = 2.0 ** 20
        print("\n== peak memory allocated during the call (tracemalloc; the input x "
              "itself excluded) ==")
        print(f"units: resp (N,K) = {r / mb:.1f} MiB; data (N,D) = {mem['data_bytes'] / r:.2f} "
              f"resp; t(x) = {mem['tx_bytes'] / r:.2f} resp; bound 3 x resp + data + t(x) = "
              f"{mem['bound_bytes'] / r:.2f} resp = {mem['bound_bytes'] / mb:.1f} MiB")
        for key, label in (("fit_peak", "emdsl fit (whole)"),
                           ("prepare_peak", "  prepare alone"),
                           ("init_peak", "  driver start (module.init) alone"),
                           ("loop_peak", "  e_step+m_step loop alone (t(x) live)"),
                           ("sklearn_peak", "sklearn fit (for reference)")):
            v = mem[key]
            print(f"{label:<40} {v / mb:8.1f} MiB = {v / r:6.2f} resp = "
                  f"{v / mem['bound_bytes']:.2f} x bound")

    # -- load times
    if not args.no_load:
        lt = load_times(args.repeat)
        res["load"] = lt
        print(f"\n== emdsl.load('{MODEL_REL}') in a fresh interpreter (best of "
              f"{args.repeat}; wall clock incl. interpreter start and imports) ==")
        print(f"bare 'python -c pass'            {lt['bare_python']:.3f} s")
        for key, label in (("cold", "cold compile (use_cache=False)"),
                           ("warm", "warm cache (use_cache=True)")):
            v = lt[key]
            print(f"{label:<32} {v['wall']:.3f} s  (import emdsl {v['import']:.3f} s, "
                  f"load {v['load']:.3f} s)")

    if args.profile:
        profile(model, x, k, start, iters)

    res["loadavg_end"] = os.getloadavg()[0]
    print(f"\nload average {res['loadavg_end']:.2f} at the end (other work on the machine "
          "skews every number above)")

    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()
