"""How a factor indexes a variable: index maps, one per reference.

A reference ``mu[z[n]]`` inside ``for n in 1:N`` is read as a tuple of :class:`Axis`, one
per index position of ``mu``.  Each axis says how the factor's plate element picks that
index:

- ``loop``  - a loop variable of the factor (``x[n]``, ``p[k, d]``);
- ``lag``   - a loop variable plus a constant (``z[t-1]``: a chain);
- ``const`` - a literal position (``z[1]``);
- ``gate``  - the value of a categorical *latent* (``mu[z[n]]``: a mixture);
- ``group`` - the value of a categorical *datum* (``theta[doc[t]]``: long format);
- ``other`` - anything else (index arithmetic the engine has no pattern for).

A gate or group axis carries the index map of its selector (``z[doc[t]]`` is a gate by
``z`` whose own index is a group by ``doc``).  The edge kind of a reference summarises its
axes: ``lag`` > ``gate`` > ``group`` > ``direct`` > ``whole`` (no index at all).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..frontend import ast
from ..errors import Span

EDGE_KINDS = ("whole", "direct", "group", "gate", "lag")


@dataclass(frozen=True)
class Axis:
    kind: str                       # loop | lag | const | gate | group | other
    name: str = ""                  # loop variable, selector variable, or the shown expr
    offset: int = 0                 # lag: the constant added; const: the 1-based value
    inner: tuple["Axis", ...] = ()  # gate / group: the selector's own index map
    span: Span | None = field(default=None, compare=False)  # the index expression

    def show(self) -> str:
        if self.kind == "loop":
            return self.name
        if self.kind == "lag":
            return f"{self.name}{self.offset:+d}"
        if self.kind == "const":
            return str(self.offset)
        if self.kind in ("gate", "group"):
            return f"{self.name}[{', '.join(a.show() for a in self.inner)}]"
        return self.name

    def walk(self):
        """This axis and every axis nested in it."""
        yield self
        for a in self.inner:
            yield from a.walk()

    @property
    def loops(self) -> tuple[str, ...]:
        """The loop variables this axis depends on, outermost reference first."""
        out: list[str] = []
        for a in self.walk():
            if a.kind in ("loop", "lag") and a.name not in out:
                out.append(a.name)
        return tuple(out)


@dataclass(frozen=True)
class Ref:
    """One reference of a factor to a variable: ``var`` indexed by ``axes``."""
    var: str
    axes: tuple[Axis, ...]
    arg: str                # the family argument it appears in, 'target' or 'index'
    text: str               # the reference printed back, e.g. 'mu[z[n]]'
    span: Span | None = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return edge_kind(self.axes)

    def selectors(self) -> tuple[Axis, ...]:
        """The gate and group axes, outermost first (nested ones included)."""
        return tuple(a for ax in self.axes for a in ax.walk() if a.kind in ("gate", "group"))


def edge_kind(axes: tuple[Axis, ...]) -> str:
    kinds = {a.kind for ax in axes for a in ax.walk()}
    for k, label in (("lag", "lag"), ("gate", "gate"), ("group", "group")):
        if k in kinds:
            return label
    return "direct" if axes else "whole"


def index_map(e: ast.Expr, loop_vars: set, cat_role) -> Axis:
    """The :class:`Axis` of one index expression ``e``.

    ``loop_vars``: the loop variables in scope; ``cat_role(name)``: 'latent' or 'data'
    when ``name`` is a categorical variable of that role, else None."""
    if isinstance(e, ast.Name) and e.id in loop_vars:
        return Axis("loop", e.id, span=e.span)
    if isinstance(e, ast.Num) and e.is_int:
        return Axis("const", offset=int(e.value), span=e.span)
    if isinstance(e, ast.BinOp) and e.op in "+-" and isinstance(e.left, ast.Name) \
            and e.left.id in loop_vars and isinstance(e.right, ast.Num) and e.right.is_int:
        off = int(e.right.value)
        return Axis("lag", e.left.id, offset=off if e.op == "+" else -off, span=e.span)
    if isinstance(e, ast.Index) and isinstance(e.base, ast.Name):
        role = cat_role(e.base.id)
        if role in ("latent", "data"):
            inner = tuple(index_map(i, loop_vars, cat_role) for i in e.indices)
            return Axis("gate" if role == "latent" else "group", e.base.id, inner=inner,
                        span=e.span)
    return Axis("other", ast.show(e), span=e.span)


def references(e: ast.Expr, arg: str, is_var, loop_vars: set, cat_role) -> list[Ref]:
    """Every reference to a model variable in ``e``, outermost first: ``mu[z[n]]`` gives
    the reference to ``mu`` and, with ``arg='index'``, the references inside its index
    (``z[n]``, and ``doc[t]`` for ``z[doc[t]]``)."""
    out: list[Ref] = []
    if isinstance(e, ast.Name):
        if is_var(e.id):
            out.append(Ref(e.id, (), arg, e.id, e.span))
        return out
    if isinstance(e, ast.Index) and isinstance(e.base, ast.Name) and is_var(e.base.id):
        axes = tuple(index_map(i, loop_vars, cat_role) for i in e.indices)
        out.append(Ref(e.base.id, axes, arg, ast.show(e), e.span))
        for i in e.indices:
            out += references(i, "index", is_var, loop_vars, cat_role)
        return out
    for sub in _children(e):
        out += references(sub, arg, is_var, loop_vars, cat_role)
    return out


def _children(e: ast.Expr):
    if isinstance(e, ast.Index):
        return (e.base, *e.indices)
    if isinstance(e, ast.BinOp):
        return (e.left, e.right)
    if isinstance(e, ast.Neg):
        return (e.operand,)
    if isinstance(e, ast.Call):
        return (*e.args, *(k.value for k in e.kwargs))
    return ()
