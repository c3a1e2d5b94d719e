"""The numerics protocol of a family entry, and what every entry shares.

An entry describes one exponential family

    log p(x | eta) = <eta, t(x)> - A(eta) + log h(x)

with ``t`` and ``eta`` tuples of arrays (one per statistic; leading axes are a batch).
Its methods, all numpy:

- ``stats(x)``             t(x)
- ``natural(**params)``    eta from the family's arguments (by keyword, e.g. mean/cov/prec)
- ``log_normalizer(eta)``  A(eta)
- ``log_base(x)``          log h(x)
- ``mean_map(eta)``        E[t(x)] = grad A(eta)
- ``inverse_mean_map(mu)`` eta from E[t] (where closed)
- ``mode(eta)``            argmax_x <eta, t(x)> + log h(x): with eta = prior natural
                           parameters plus the messages of the data, the MAP / ML update
- ``entropy(eta)``         H[p] in nats (None where not closed)
- ``sample(rng, eta, size)``
- ``MESSAGES``             argument -> (family of that argument's conjugate form, method,
                           runtime function):
                           the coefficients, on the argument's sufficient statistics, of
                           log p summed over items (the message of ENGINE.md)
"""
from __future__ import annotations

import numpy as np


class ExpFamily:
    """Shared methods; subclasses define ``EVENT_RANKS`` (event rank of each statistic)."""
    name = ""
    # the log density of x in the family's parameter names (plain, LaTeX): the derivation
    # writes a MAP objective's prior terms in full with it
    DENSITY = ("", "")
    KIND = ""   # the code generator's emitter for statements of this family, if any
    # runtime functions (copied into generated modules) for this family as a conjugate
    # form: natural parameters from its arguments, and the mode of a form
    RUNTIME_NATURAL = ""
    RUNTIME_MODE = ""
    # E_q[log p(v | args)] from q's expected statistics (a param in a variational prior)
    EXPECTED_LOGPDF = ""
    EVENT_RANKS: tuple[int, ...] = ()
    MESSAGES: dict = {}

    def inner(self, eta, t):
        """<eta, t>: the elementwise product summed over each statistic's event axes."""
        total = 0.0
        for e, s, r in zip(eta, t, self.EVENT_RANKS):
            prod = np.asarray(e) * np.asarray(s)
            total = total + (prod.sum(axis=tuple(range(-r, 0))) if r else prod)
        return total

    def logpdf(self, x, eta):
        return self.inner(eta, self.stats(x)) - self.log_normalizer(eta) + self.log_base(x)

    def inverse_mean_map(self, mu):  # pragma: no cover - overridden where closed
        return None

    def entropy(self, eta):
        """H = A(eta) - <eta, E[t]> - E[log h]; families with log h = 0 inherit this."""
        return self.log_normalizer(eta) - self.inner(eta, self.mean_map(eta))

    def message(self, arg: str, **stats):
        """The message of this factor to its argument ``arg`` (see MESSAGES)."""
        return getattr(self, self.MESSAGES[arg][1])(**stats)
