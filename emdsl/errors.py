"""One error hierarchy for emdsl.

Every user-facing error is an :class:`EmmError`.  Model errors carry a :class:`Span`
and print as ``file:line:col: error: <what>``, the source line, a caret under the
offending column and a ``hint:`` line.  Data errors name the variable and the
expected and actual shapes.  Compiler bugs are :class:`InternalError` and are
printed with an "internal compiler error, please report" line instead.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A location in a model source: 1-based line and column, end exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class EmmError(Exception):
    """Base class of every error a user can cause (bad model, bad data, bad option)."""

    kind = "error"

    def __init__(self, msg: str, span: Span | None = None, hint: str | None = None,
                 source: str | None = None):
        super().__init__(msg)
        self.msg = msg
        self.span = span
        self.hint = hint
        self.source = source

    def format(self) -> str:
        """The full message: location, what, source line with caret, hint."""
        lines = []
        where = f"{self.span}: " if self.span else ""
        lines.append(f"{where}{self.kind}: {self.msg}")
        excerpt = caret_excerpt(self.source, self.span)
        if excerpt:
            lines.append(excerpt)
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


class EmmSyntaxError(EmmError):
    """The model text does not follow the grammar."""


class EmmSemanticError(EmmError):
    """The model parses but breaks a rule of the language (names, roles, types, shapes)."""


class NonConjugateError(EmmError):
    """The model is valid but emdsl cannot derive its updates (not supported yet)."""


class EmmDataError(EmmError):
    """Data, dims, hypers or fit options given at fit time do not fit the model."""


class EmmFitError(EmmError):
    """The fit failed numerically (a covariance not positive definite, a non-finite
    objective); the message says what happened and the hint what to try."""


class InternalError(Exception):
    """A bug in emdsl itself, never the user's fault."""

    def format(self) -> str:
        return (f"internal compiler error: {self.args[0] if self.args else ''}\n"
                "This is a bug in emdsl, please report it with the model that triggered it.")


def did_you_mean(word: str, candidates, otherwise: str | None = None) -> str | None:
    """A hint naming the candidate closest to a misspelt ``word`` ("did you mean 'mu'?";
    close: the same name in another case, or difflib's ratio >= 0.6), ``otherwise``
    appended; just ``otherwise`` when no candidate is close."""
    import difflib
    names = sorted({c for c in candidates if c != word})
    by_case = {c.lower(): c for c in names}
    close = ([by_case[word.lower()]] if word.lower() in by_case
             else difflib.get_close_matches(word, names, n=1, cutoff=0.6))
    if not close:
        return otherwise
    return f"did you mean '{close[0]}'?" + (f" ({otherwise})" if otherwise else "")


def caret_excerpt(source: str | None, span: Span | None) -> str:
    """The source line of ``span`` with a ``^`` under its first column (and ``~`` after)."""
    if not source or not span or span.line < 1:
        return ""
    # only "\n" ends a line, as in the parser (splitlines() would also split at "\x0c",
    # "\u2028" ... inside comments and shift every later line)
    src_lines = source.split("\n")
    if span.line > len(src_lines):
        return ""
    text = src_lines[span.line - 1].rstrip("\r").replace("\t", " ")
    width = 1
    if span.end_line == span.line and span.end_col > span.col:
        width = span.end_col - span.col
    width = max(1, min(width, max(1, len(text) - span.col + 1)))
    col = span.col
    if len(text) > EXCERPT:   # a long line: the part around the caret, cut with "..."
        start = max(0, col - 1 - EXCERPT // 4)
        cut = text[start:start + EXCERPT]
        text = ("..." if start else "") + cut + ("..." if start + EXCERPT < len(text) else "")
        col = col - start + (3 if start else 0)
        width = max(1, min(width, len(text) - col + 1))
    gutter = f"{span.line:>4} | "
    return f"{gutter}{text}\n{' ' * len(gutter)}{' ' * (col - 1)}^{'~' * (width - 1)}"


EXCERPT = 120   # characters of a long source line shown in a message
