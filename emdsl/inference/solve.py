"""Symbolic solving within time limits (part of stage 4): compilation never hangs.

A sympy ``solve`` or ``simplify`` that does not finish within ``SOLVE_SECONDS`` gives up:
the param gets a numerical M-step instead, and the derivation says so.
"""
from __future__ import annotations

import contextlib
import signal
import threading

import sympy as sp

from ..families.scalar import tidy


SOLVE_SECONDS = 5.0   # a symbolic solve that takes longer falls back to Newton's method
TIMED_OUT = "timed out"


class SolveTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise SolveTimeout in the block after ``seconds`` (a timer signal; only in the main
    thread of a process on a system with SIGALRM, elsewhere without a limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise SolveTimeout()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def edge_conditions(logp, u, kind) -> list:
    """Where a prior's density may be unbounded at an edge of its support: (edge, c) for
    every edge at which log p ~ c log|u - edge| (a Gamma's shape - 1 at 0, a Beta's a - 1
    at 0 and b - 1 at 1), unless a negative power (the InvGamma's -scale / u) dominates.
    The density is unbounded there, and the MAP may not exist, when c < 0."""
    edges = {"pos": (0,), "unit": (0, 1)}.get(kind, ())
    expanded = sp.expand(sp.expand_log(logp, force=True))
    out = []
    for edge in edges:
        t = u if edge == 0 else 1 - u
        c = sp.Integer(0)
        dominated = False
        for term in sp.Add.make_args(expanded):
            factors = sp.Mul.make_args(term)
            logs = [f for f in factors if f == sp.log(t)]
            if logs:
                c += sp.Mul(*[f for f in factors if f != sp.log(t)])
            for f in factors:
                base, power = f.as_base_exp()
                if base == t and power.is_negative:
                    coeff = sp.Mul(*[g for g in factors if g is not f])
                    dominated |= bool(coeff.is_negative)
        if c != 0 and not dominated and not c.is_nonnegative:
            out.append((edge, tidy(c)))
    return out


def simplify_within(e):
    """``tidy`` within a time limit (the expression as it is, past the limit)."""
    try:
        with time_limit(SOLVE_SECONDS / 2):
            return tidy(e)
    except SolveTimeout:
        return e


def unique_solution(eq, u, kind):
    """The unique admissible root of ``eq`` in ``u``, or None (no closed form).

    Polynomial equations of degree > 2 are left to the numerical M-step: sympy's cubic and
    quartic formulas are slow with symbolic coefficients and never give a usable update.
    So are equations with a gamma-type special function of the unknown (a Gamma shape):
    sympy has no inverse for them and would search for a long time before saying so."""
    special = (sp.polygamma, sp.loggamma, sp.gamma, sp.digamma, sp.zeta, sp.erf)
    if any(f.has(u) for f in eq.atoms(*special)):
        return None  # a special function of the unknown has no elementary inverse
    numer = sp.numer(sp.cancel(sp.together(eq)))
    if numer.is_polynomial(u) and sp.degree(numer, u) > 2:
        return None
    try:
        # check=False: sympy's own verification simplifies every candidate and can take
        # minutes on symbolic coefficients; the admissibility filter below is enough
        with time_limit(SOLVE_SECONDS):
            sols = sp.solve(eq, u, dict=False, check=False)
    except SolveTimeout:
        return TIMED_OUT
    except (NotImplementedError, ValueError, TypeError):
        return None
    good = []
    pole = sp.denom(sp.together(eq)).has(u)
    for s in sols if isinstance(sols, list) else [sols]:
        if isinstance(s, dict) or s.has(u) or s.has(sp.I) or s.has(sp.Piecewise):
            continue
        if s.has(sp.zoo, sp.oo, -sp.oo, sp.nan) or (pole and s.is_zero):
            continue  # not a root: a pole of the equation (solve ran with check=False)
        if kind in ("pos", "unit") and s.is_positive is False:
            continue
        good.append(s)
    return good[0] if len(good) == 1 else None


