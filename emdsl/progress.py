"""The command line's progress report on a terminal: a tqdm bar when tqdm is installed
(``pip install 'emdsl[progress]'``), else one rewritten line."""
from __future__ import annotations

import sys


class Progress:
    """A progress bar on a terminal (tqdm when installed, ``pip install 'emdsl[progress]'``;
    else one rewritten line): pass, items per second and the objective."""

    def __init__(self, model, values, max_iter):
        import time
        items, _ = model._items()
        data = next((values[k] for k in items if k in values), None)
        self.n = len(data) if data is not None and hasattr(data, "__len__") else None
        self.clock, self.start, self.last = time.perf_counter, time.perf_counter(), None
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=max_iter or 1000, unit="pass", file=sys.stderr,
                            dynamic_ncols=True, leave=False)
        except ImportError:
            self.bar = None

    def update(self, it, value, params):
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = f"{self.n * (it + 1) / elapsed:,.0f} items/s" if self.n else \
            f"{(it + 1) / elapsed:.2f} passes/s"
        change = value - self.last if self.last is not None else float("nan")
        self.last = value
        if self.bar is not None:
            self.bar.set_postfix_str(f"objective {value:.10g}  change {change:.3g}  {rate}",
                                     refresh=False)
            self.bar.update(1)
        else:
            sys.stderr.write(f"\rpass {it + 1:5d}  objective {value:.10g}  change "
                             f"{change:.3g}  {rate}   ")

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            sys.stderr.write("\n")
