"""Stage 1: .emm text -> :class:`emdsl.ast.Model`.

The grammar lives in ``grammars/emm.lark`` (shipped inside the wheel as
``emdsl/_grammar/emm.lark``).  A small post-lexer folds runs of newlines / ``;``
into one statement separator and drops separators inside ``( )`` and ``[ ]``.
The Transformer only builds AST nodes; meaning is checked in ``check.py``.
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (UnexpectedCharacters, UnexpectedEOF, UnexpectedInput,
                             UnexpectedToken, VisitError)

from . import ast
from ..cachefiles import cache_dir, read_sealed, write_sealed
from ..errors import EmmSyntaxError, Span, did_you_mean


def grammar_text() -> str:
    """The grammar, from the installed package or (in a checkout) ``grammars/``."""
    try:
        res = resources.files("emdsl").joinpath("_grammar/emm.lark")
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, NotADirectoryError):  # pragma: no cover
        pass
    checkout = Path(__file__).resolve().parents[2] / "grammars" / "emm.lark"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    raise FileNotFoundError("emm.lark not found in the emdsl package nor in grammars/")


class _Separators:
    """Post-lexer: one ``_NL`` per run of newlines/';', none inside brackets."""

    always_accept = ("_NL",)

    def __init__(self):
        self.open: list = []   # unclosed ( and [ tokens of the current parse, innermost last
        self.braces: list = []   # unclosed { tokens, innermost last

    def process(self, stream):
        self.open, self.braces = [], []
        pending = None
        seen_token = False
        for tok in stream:
            if tok.type == "_NL":
                if not self.open and seen_token and pending is None:
                    pending = tok
                continue
            if tok.type in ("LPAR", "LSQB"):
                self.open.append(tok)
            elif tok.type in ("RPAR", "RSQB") and self.open:
                self.open.pop()
            elif tok.type == "LBRACE":
                self.braces.append(tok)
            elif tok.type == "RBRACE" and self.braces:
                self.braces.pop()
            if pending is not None:
                yield pending
                pending = None
            seen_token = True
            yield tok
        if pending is not None:
            yield pending


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser; its tables are cached on disk (sealed: see ``cachefiles``)."""
    import lark
    text = grammar_text()
    key = f"lark {lark.__version__} {hashlib.sha256(text.encode()).hexdigest()}"
    options = dict(parser="lalr", lexer="basic", propagate_positions=True,
                   postlex=_Separators(), maybe_placeholders=True)
    path = cache_dir() / f"grammar-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lark"
    payload = read_sealed(path, key)
    if payload is not None:
        try:
            return Lark.load(io.BytesIO(payload))  # the very bytes whose seal was checked
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt below
            pass
    parser = Lark(text, **options)
    buf = io.BytesIO()
    parser.save(buf)
    write_sealed(path, key, buf.getvalue())
    return parser


def _span(file: str, meta_or_tok) -> Span:
    m = meta_or_tok
    if isinstance(m, Token):
        return Span(file, m.line, m.column, m.end_line or m.line, m.end_column or m.column + 1)
    if getattr(m, "empty", False):
        return Span(file, 0, 0)
    return Span(file, m.line, m.column, m.end_line, m.end_column)


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    """Lark tree -> frozen AST nodes (one method per aliased alternative)."""

    def __init__(self, file: str, source: str | None = None):
        super().__init__()
        self.file = file
        self.source = source

    def _s(self, meta):
        return _span(self.file, meta)

    # expressions
    def number(self, meta, tok):
        text = str(tok)
        is_int = text.isdigit()
        value = float(text)
        if not math.isfinite(value):  # 1e400, or 400 digits: float() gives inf
            shown = text if len(text) <= 24 else text[:20] + "..."
            raise EmmSyntaxError(f"number out of range: {shown}", self._s(meta),
                                 "a number must be below about 1.8e308 (a double precision "
                                 "float)", self.source)
        return ast.Num(value, is_int, self._s(meta))

    def name(self, meta, tok):
        return ast.Name(str(tok), self._s(meta))

    def _bin(self, op, meta, left, right):
        return ast.BinOp(op, left, right, self._s(meta))

    def add(self, meta, a, b):
        return self._bin("+", meta, a, b)

    def sub(self, meta, a, b):
        return self._bin("-", meta, a, b)

    def mul(self, meta, a, b):
        return self._bin("*", meta, a, b)

    def div(self, meta, a, b):
        return self._bin("/", meta, a, b)

    def matmul(self, meta, a, b):
        return self._bin("@", meta, a, b)

    def pow(self, meta, a, b):
        return self._bin("^", meta, a, b)

    def neg(self, meta, operand):
        return ast.Neg(operand, self._s(meta))

    def index(self, meta, base, *indices):
        return ast.Index(base, tuple(indices), self._s(meta))

    def kwarg(self, meta, name, value):
        return ast.KwArg(str(name), value, _span(self.file, name))

    def arglist(self, meta, *args):
        return [a for a in args if a is not None]  # None: no trailing comma

    def call(self, meta, name, arglist):
        args = arglist or []
        pos = tuple(a for a in args if not isinstance(a, ast.KwArg))
        kws = tuple(a for a in args if isinstance(a, ast.KwArg))
        return ast.Call(str(name), pos, kws, self._s(meta), _span(self.file, name))

    # declarations
    def model_decl(self, meta, name):
        return (str(name), _span(self.file, name))

    def dim_item(self, meta, name, default=None):
        return ast.DimDecl(str(name), default, _span(self.file, name))

    def dim_decl(self, meta, *items):
        return list(items)

    def role(self, meta, tok):
        return str(tok)

    def shape(self, meta, *dims):
        return tuple(dims)

    def type(self, meta, name, *dims):
        return ast.TypeExpr(str(name), tuple(dims), self._s(meta))

    def var_decl(self, meta, role, name, shape, type_, default):
        return ast.VarDecl(role, str(name), shape or (), type_, default,
                           _span(self.file, name))

    def fparam(self, meta, name, type_):
        return ast.FamilyParam(str(name), type_, _span(self.file, name))

    def logpdf_def(self, meta, var, expr):
        return (str(var), expr)

    def family_decl(self, meta, name, *rest):
        *params, support, (var, expr) = rest
        return ast.FamilyDecl(str(name), tuple(params), support, var, expr,
                              _span(self.file, name))

    # statements
    def target_name(self, meta, name):
        return ast.Name(str(name), self._s(meta))

    def target_index(self, meta, name, *indices):
        return ast.Index(ast.Name(str(name), _span(self.file, name)), tuple(indices),
                         self._s(meta))

    def sample(self, meta, target, fam, arglist):
        dist = self.call(meta, fam, arglist)
        dist = ast.Call(dist.func, dist.args, dist.kwargs,
                        Span(self.file, fam.line, fam.column, meta.end_line, meta.end_column),
                        _span(self.file, fam))
        return ast.Sample(target, dist, self._s(meta))

    def let(self, meta, name, value):
        return ast.Let(str(name), value, self._s(meta))

    def block(self, meta, *stmts):
        return tuple(s for s in stmts if s is not None)

    def for_loop(self, meta, var, start, stop, body):
        return ast.For(str(var), start, stop, body, self._s(meta))

    def start(self, meta, header, *items):
        flat = []
        for it in items:
            if isinstance(it, list):
                flat.extend(it)
            elif it is not None:
                flat.append(it)
        return header, tuple(flat)


# Friendly messages for common mistakes, matched by parser state (Lark's match_examples).
SYNTAX_EXAMPLES = {
    ("missing '~' in a sampling statement", "write `x[n] ~ Normal(mu, s2)`"): [
        "model M\nx Normal(0, 1)\n",
        "model M\ndim N\nx Normal(0, 1)\n",
        "model M\nfor n in 1:N { x[n] Normal(0, 1) }\n",
        "model M\nfor n in 1:N {\n x[n] Normal(0, 1)\n}\n",
        "model M\ndim N\nfor n in 1:N {\n z[n] ~ Categorical(w)\n x[n] Normal(0, 1)\n}\n",
    ],
    ("a plate needs a range `for i in 1:N { ... }`", "write `for n in 1:N { ... }`"): [
        "model M\nfor n in N { x ~ Normal(0, 1) }\n",
        "model M\nfor n 1:N { x ~ Normal(0, 1) }\n",
        "model M\ndim N\nfor n in N { x ~ Normal(0, 1) }\n",
        "model M\ndim N\nfor n 1:N { x ~ Normal(0, 1) }\n",
        "model M\nfor k in 1:K {\n for n in N { x ~ Normal(0, 1) }\n}\n",
    ],
    ("a declaration needs a type after ':'", "write e.g. `data x[N] : real[D]`"): [
        "model M\ndata x[N]\n",
        "model M\nparam mu\n",
        "model M\ndim N\ndata x[N]\n",
        "model M\ndim N\nparam mu\n",
    ],
    ("the first statement must be `model Name`", "start the file with `model MyModel`"): [
        "dim N\n",
        "data x : real\n",
    ],
}


def parse(source: str, file: str = "<string>") -> ast.Model:
    """Parse .emm source into an :class:`~emdsl.ast.Model` (no semantic checks)."""
    try:
        tree = _parser().parse(source)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, source, file) from None
    _check_depth(tree, source, file)
    try:
        (name, span), items = _ToAst(file, source).transform(tree)
    except VisitError as exc:  # Lark wraps what a transformer method raises
        if isinstance(exc.orig_exc, EmmSyntaxError):
            raise exc.orig_exc from None
        raise
    return ast.Model(name, items, file, source, span)


MAX_DEPTH = 300   # nesting of an expression's operations that every stage handles


def _check_depth(tree, source: str, file: str) -> None:
    """A located error for an expression nested deeper than MAX_DEPTH (a sum of thousands
    of terms written out), found without recursion: the later stages walk expressions
    recursively."""
    from lark import Tree
    stack = [(tree, 0, None)]
    while stack:
        node, depth, top = stack.pop()
        if depth > MAX_DEPTH:
            meta = top.meta
            raise EmmSyntaxError(
                f"this statement's expression is nested more than {MAX_DEPTH} operations "
                "deep (e.g. a sum of hundreds of terms written out)",
                Span(file, meta.line, meta.column, meta.end_line, meta.end_column),
                "write it with fewer nested operations: a vector hyper and dot() or sum() "
                "instead of a long chain of + or *", source)
        for child in node.children:
            if isinstance(child, Tree):
                # a statement (a child of the file or of a plate's block) starts the count
                inner = node.data in ("start", "block")
                stack.append((child, 0 if inner else depth + 1, child if inner else top))


def _top_state(exc):
    state = getattr(exc, "state", None)
    return getattr(state, "position", None), frozenset(getattr(exc, "accepts", None) or ())


@functools.lru_cache(maxsize=1)
def _example_states() -> list:
    """(LALR state on top of the stack, accepted terminals) -> label, for SYNTAX_EXAMPLES.

    Like Lark's ``match_examples``, but keyed on the top state only, so an example also
    matches the same mistake deeper in a file or inside a plate."""
    table = []
    for label, examples in SYNTAX_EXAMPLES.items():
        for text in examples:
            try:
                _parser().parse(text)
            except UnexpectedInput as ut:
                table.append((_top_state(ut), label))
    return table


def _match_example(exc):
    key = _top_state(exc)
    if key[0] is None:
        return None
    return next((label for k, label in _example_states() if k == key), None)


def _syntax_error(exc: UnexpectedInput, source: str, file: str) -> EmmSyntaxError:
    line, col = getattr(exc, "line", 0), getattr(exc, "column", 0)
    if isinstance(exc, UnexpectedEOF) or line is None or line < 1:
        lines = source.rstrip().split("\n")  # only "\n" ends a line, as in the lexer
        line, col = len(lines), len(lines[-1]) + 1
    # copy the unclosed brackets of this parse first: matching the examples below parses
    # them (on first use), which resets the post-lexer's state
    open_brackets = list(_parser().options.postlex.open)
    open_braces = list(_parser().options.postlex.braces)
    label = _match_example(exc)
    tok = getattr(exc, "token", None)
    if open_brackets and not isinstance(exc, UnexpectedCharacters) and (
            isinstance(exc, UnexpectedEOF) or tok is None
                          or tok.type in ("$END", "RBRACE") or tok.line > open_brackets[-1].line):
        b = open_brackets[-1]
        closer = ")" if b.type == "LPAR" else "]"
        return EmmSyntaxError(f"'{b}' is never closed", Span(file, b.line, b.column, b.line,
                                                             b.column + 1),
                              f"add the matching '{closer}'; a newline inside ( ) or [ ] "
                              "continues the statement", source)
    at_end = isinstance(exc, UnexpectedEOF) or tok is None or tok.type == "$END" or (
        tok.type == "_NL" and not source[getattr(tok, "end_pos", len(source)):].strip())
    if open_braces and not isinstance(exc, UnexpectedCharacters) and at_end:
        b = open_braces[-1]
        return EmmSyntaxError(f"the '{{' of line {b.line} is never closed",
                              Span(file, b.line, b.column, b.line, b.column + 1),
                              "add the matching '}' after the plate's last statement", source)
    # a misspelt keyword: the line's first word, then a name where the error is found
    word = re.match(r"\s*([A-Za-z_]\w*)\s+([A-Za-z_]\w*)", _line_text(source, line))
    suggestion = word and word.group(1) not in KEYWORDS and did_you_mean(word.group(1),
                                                                            KEYWORDS)
    if suggestion and not isinstance(exc, UnexpectedCharacters) and col == word.start(2) + 1:
        return EmmSyntaxError(f"unknown keyword '{word.group(1)}'",
                              Span(file, line, word.start(1) + 1, line, word.end(1) + 1),
                              f"{suggestion} (a statement starts with one of: "
                              f"{', '.join(KEYWORDS)}, or is `target ~ Family(...)`)", source)
    if isinstance(exc, UnexpectedCharacters):
        ch = source[exc.pos_in_stream] if exc.pos_in_stream < len(source) else "?"
        msg, hint = f"unexpected character {ch!r}", "remove it or check the operator"
    elif label:
        msg, hint = label
    elif isinstance(exc, UnexpectedToken):
        tok = exc.token
        what = "end of line" if tok.type in ("_NL", "$END") else f"{str(tok)!r}"
        expected = sorted(_pretty_terminal(t) for t in exc.accepts or exc.expected)
        msg = f"unexpected {what}"
        hint = "expected one of: " + ", ".join(expected[:12])
    else:
        msg, hint = "unexpected end of input", "the model ends in the middle of a statement"
    if open_braces and isinstance(exc, UnexpectedToken) and not label:
        hint += (f"; the '{{' of line {open_braces[-1].line} is still open (declarations go "
                 "outside plates: close it with '}')")
    return EmmSyntaxError(msg, Span(file, line, col, line, col + 1), hint, source)


KEYWORDS = ("model", "dim", "data", "hyper", "param", "latent", "family", "for", "let")


def _line_text(source: str, line: int) -> str:
    lines = source.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


_TERMINAL_NAMES = {
    "NAME": "a name", "NUMBER": "a number", "_NL": "end of line", "LPAR": "'('",
    "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "TILDE": "'~'", "PLUS": "'+'",
    "MINUS": "'-'", "STAR": "'*'", "SLASH": "'/'", "CIRCUMFLEX": "'^'", "AT": "'@'",
    "$END": "end of file",
}


def _pretty_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    return repr(name.lower())
