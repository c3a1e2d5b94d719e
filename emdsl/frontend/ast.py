"""Frozen dataclasses for the surface syntax of .emm models (built by ``parse.py``).

Every node carries a :class:`~emdsl.errors.Span`.  Nothing here checks meaning;
that is ``check.py``'s job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import Span

ROLES = ("data", "hyper", "param", "latent")
TYPE_NAMES = ("real", "pos", "unit", "simplex", "spd", "cat", "count", "bin")


# ----------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: float
    is_int: bool
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Name:
    id: str
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Index:
    """``base[i, j]``; ``base`` is usually a :class:`Name`."""
    base: "Expr"
    indices: tuple["Expr", ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / ^ @
    left: "Expr"
    right: "Expr"
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span = field(compare=False)


@dataclass(frozen=True)
class KwArg:
    name: str
    value: "Expr"
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Call:
    """A function or family application: ``func(args..., key=value...)``."""
    func: str
    args: tuple["Expr", ...]
    kwargs: tuple[KwArg, ...]
    span: Span = field(compare=False)
    func_span: Span = field(compare=False, default=None)


Expr = Union[Num, Name, Index, BinOp, Neg, Call]


# ----------------------------------------------------------------------------- declarations
@dataclass(frozen=True)
class TypeExpr:
    """``real``, ``real[D]``, ``simplex[K]``, ``cat[K]`` ... ; ``dims`` are expressions."""
    kind: str
    dims: tuple[Expr, ...]
    span: Span = field(compare=False)


@dataclass(frozen=True)
class DimDecl:
    name: str
    default: Expr | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class VarDecl:
    """``role name[shape] : type (= default)``."""
    role: str
    name: str
    shape: tuple[Expr, ...]
    type: TypeExpr
    default: Expr | None
    span: Span = field(compare=False)


@dataclass(frozen=True)
class FamilyParam:
    name: str
    type: TypeExpr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class FamilyDecl:
    """``family Name(p : type, ...) on type { logpdf(x) = expr }``."""
    name: str
    params: tuple[FamilyParam, ...]
    support: TypeExpr
    var: str
    logpdf: Expr
    span: Span = field(compare=False)


# ----------------------------------------------------------------------------- statements
@dataclass(frozen=True)
class Sample:
    """``target ~ dist``; ``target`` is a Name or an Index of a Name."""
    target: Expr
    dist: Call
    span: Span = field(compare=False)


@dataclass(frozen=True)
class Let:
    name: str
    value: Expr
    span: Span = field(compare=False)


@dataclass(frozen=True)
class For:
    """A plate ``for var in start:stop { body }`` (1-based, inclusive)."""
    var: str
    start: Expr
    stop: Expr
    body: tuple["Stmt", ...]
    span: Span = field(compare=False)


Stmt = Union[Sample, Let, For]
Item = Union[DimDecl, VarDecl, FamilyDecl, Sample, Let, For]


@dataclass(frozen=True)
class Model:
    name: str
    items: tuple[Item, ...]
    file: str
    source: str = field(repr=False, compare=False)
    span: Span = field(compare=False)

    @property
    def dims(self) -> tuple[DimDecl, ...]:
        return tuple(i for i in self.items if isinstance(i, DimDecl))

    @property
    def vars(self) -> tuple[VarDecl, ...]:
        return tuple(i for i in self.items if isinstance(i, VarDecl))

    @property
    def families(self) -> tuple[FamilyDecl, ...]:
        return tuple(i for i in self.items if isinstance(i, FamilyDecl))

    @property
    def statements(self) -> tuple[Stmt, ...]:
        return tuple(i for i in self.items if isinstance(i, (Sample, Let, For)))


def walk_expr(e: Expr):
    """Yield ``e`` and every sub-expression, depth first."""
    yield e
    if isinstance(e, Index):
        yield from walk_expr(e.base)
        for i in e.indices:
            yield from walk_expr(i)
    elif isinstance(e, BinOp):
        yield from walk_expr(e.left)
        yield from walk_expr(e.right)
    elif isinstance(e, Neg):
        yield from walk_expr(e.operand)
    elif isinstance(e, Call):
        for a in e.args:
            yield from walk_expr(a)
        for k in e.kwargs:
            yield from walk_expr(k.value)


def names(e: Expr) -> list[str]:
    """The names ``e`` mentions, in order of first appearance."""
    out: list[str] = []
    for sub in walk_expr(e):
        if isinstance(sub, Name) and sub.id not in out:
            out.append(sub.id)
    return out


def show(e: Expr) -> str:
    """Print an expression back in .emm syntax."""
    if isinstance(e, Num):
        return str(int(e.value)) if e.is_int else repr(e.value)
    if isinstance(e, Name):
        return e.id
    if isinstance(e, Index):
        return f"{show(e.base)}[{', '.join(show(i) for i in e.indices)}]"
    if isinstance(e, BinOp):
        op = e.op if e.op in "^" else f" {e.op} "
        return f"({show(e.left)}{op}{show(e.right)})"
    if isinstance(e, Neg):
        return f"-{show(e.operand)}"
    if isinstance(e, Call):
        parts = [show(a) for a in e.args] + [f"{k.name}={show(k.value)}" for k in e.kwargs]
        return f"{e.func}({', '.join(parts)})"
    raise TypeError(e)
