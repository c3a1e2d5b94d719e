"""Stage 2: semantic checks; :class:`emdsl.ast.Model` -> :class:`CheckedModel`.

Resolves every name, applies the role rules of LANGUAGE.md, checks families, arities,
types/supports and index ranks, inlines ``let`` definitions and flattens the plates so
that each sampling statement becomes one :class:`Factor` with its enclosing loops.
Every error is an :class:`~emdsl.errors.EmmSemanticError` with a span and a hint.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import ast
from ..errors import EmmError, EmmSemanticError, Span, did_you_mean
from .check_names import (BUILTIN_FUNCS, FIT_OPTIONS, GENERATED_NAMES, PYTHON_BUILTINS,
                          TYPE_RANK, family_var_span, generated_clash, identifier_problem,
                          index_hint)
from .check_types import (expr_kind, expr_size, fmt, inline_lets, kind_fits, literal_value, overlap,
                          type_hint)
from ..families import Family, family_table, is_subtype

__all__ = ["FIT_OPTIONS", "GENERATED_NAMES", "PYTHON_BUILTINS", "BUILTIN_FUNCS", "Var", "Loop",
           "Factor", "CheckedModel", "check"]

@dataclass(frozen=True)
class Var:
    """A declared variable: ``role name[shape] : kind[elem_dims]``."""
    name: str
    role: str
    shape: tuple[ast.Expr, ...]
    kind: str
    elem_dims: tuple[ast.Expr, ...]
    default: ast.Expr | None
    span: Span

    @property
    def elem_rank(self) -> int:
        """0 scalar, 1 vector, 2 matrix (spd[D] is a D x D matrix; cat[K] is a scalar)."""
        if self.kind == "spd":
            return 2
        if self.kind == "cat":
            return 0
        return len(self.elem_dims)


@dataclass(frozen=True)
class Loop:
    var: str
    start: ast.Expr
    stop: ast.Expr
    span: Span


@dataclass(frozen=True)
class Factor:
    """One sampling statement ``target[index] ~ family(args)`` inside ``loops``.

    ``args`` maps the family's parameter names (after keyword resolution) to expressions
    with every ``let`` inlined; ``keywords`` records which keyword chose each one.
    """
    target: str
    index: tuple[ast.Expr, ...]
    family: Family
    args: tuple[tuple[str, ast.Expr], ...]
    keywords: tuple[tuple[str, str], ...]
    loops: tuple[Loop, ...]
    span: Span
    text: str

    @property
    def arg(self) -> dict[str, ast.Expr]:
        return dict(self.args)


@dataclass(frozen=True)
class CheckedModel:
    model: ast.Model
    dims: dict
    vars: dict
    families: dict
    factors: tuple[Factor, ...]

    @property
    def name(self) -> str:
        return self.model.name

    def role(self, name: str) -> str | None:
        if name in self.dims:
            return "dim"
        v = self.vars.get(name)
        return v.role if v else None

    def item_latent(self) -> Var | None:
        """The discrete latent of the items (``z[n] : cat[K]``), or None."""
        return next((v for v in self.vars.values() if v.role == "latent" and v.kind == "cat"
                     and v.shape), None)


def check(model: ast.Model, validate_families: bool = True) -> CheckedModel:
    """Run every semantic check; return the resolved model. ``validate_families=False``
    skips the symbolic check that a model's own ``family`` blocks are exponential
    families (sympy): for a model whose compiled module is already in the cache, which
    passed that check under the same compiler."""
    return _Checker(model, validate_families).run()


class _Checker:
    def __init__(self, model: ast.Model, validate_families: bool = True):
        self.m = model
        self.validate_families = validate_families
        self.src = model.source
        self.dims: dict[str, ast.DimDecl] = {}
        self.vars: dict[str, Var] = {}
        self.lets: dict[str, ast.Expr] = {}
        self.factors: list[Factor] = []
        self.sampled: dict[str, Factor] = {}
        self.used: set[str] = set()
        # every name the model declares anywhere (dims, variables, lets) -> (what, span),
        # so that a use above its declaration is reported as such
        self.declared: dict[str, tuple[str, Span]] = {}
        self._prescan(model.items)
        self.declaring: str | None = None   # the declaration being checked

    def _prescan(self, items):
        for item in items:
            if isinstance(item, ast.DimDecl):
                self.declared.setdefault(item.name, ("dim", item.span))
            elif isinstance(item, ast.VarDecl):
                self.declared.setdefault(item.name, (item.role, item.span))
            elif isinstance(item, ast.Let):
                self.declared.setdefault(item.name, ("let", item.span))
            elif isinstance(item, ast.For):
                self._prescan(item.body)

    def err(self, msg, span, hint):
        return EmmSemanticError(msg, span, hint, self.src)

    def run(self) -> CheckedModel:
        self._identifier(self.m.name, self.m.span, "model name")
        for decl in self.m.families:
            self._family_names(decl)
        try:
            self.families = family_table(self.m, self.validate_families)
        except EmmError as exc:
            exc.source = exc.source or self.src
            raise
        for item in self.m.items:
            if isinstance(item, ast.DimDecl):
                self._declare_dim(item)
            elif isinstance(item, ast.VarDecl):
                self._declare_var(item)
            elif isinstance(item, ast.FamilyDecl):
                continue
            else:
                self._statement(item, ())
        self._roles()
        self._generated_clashes()
        return CheckedModel(self.m, dict(self.dims), dict(self.vars), self.families,
                            tuple(self.factors))

    # ------------------------------------------------------------------ declarations
    def _identifier(self, name: str, span: Span, what: str):
        problem = identifier_problem(name, what)
        if problem:
            raise self.err(problem[0], span, problem[1])

    def _family_names(self, decl: ast.FamilyDecl):
        """The identifier rules for a family block: its name, parameters and variable."""
        self._identifier(decl.name, decl.span, "family name")
        for p in decl.params:
            self._identifier(p.name, p.span, "family parameter")
        self._identifier(decl.var, family_var_span(self.src, decl), "family variable")

    def _declared_later(self, name: str, span: Span):
        """The error for a name that is declared, but below its use (None if it is not)."""
        later = self.declared.get(name)
        if later is None:
            return None
        what, where = later
        if name == self.declaring:
            return self.err(f"'{name}' is used in its own declaration", span,
                            "a declaration may only use names declared above it")
        return self.err(f"'{name}' is used before its declaration at line {where.line}", span,
                        f"move the declaration of {what} '{name}' above line {span.line}")

    def _new_name(self, name: str, span: Span, what: str):
        self._identifier(name, span, what)
        if name in self.dims or name in self.vars or name in self.lets:
            prev = self.dims.get(name) or self.vars.get(name)
            where = f" (first declared at line {prev.span.line})" if prev else ""
            raise self.err(f"'{name}' is declared twice{where}", span,
                           "give each declaration its own name")
        if name in self.families or name in BUILTIN_FUNCS:
            raise self.err(f"'{name}' is the name of a family or function", span,
                           "choose another name")

    def _declare_dim(self, d: ast.DimDecl):
        self._new_name(d.name, d.span, "dim")
        if d.default is not None:
            self.declaring = d.name
            self._dim_expr(d.default)
            self.declaring = None
            if isinstance(d.default, ast.Num) and (not d.default.is_int or d.default.value < 1):
                raise self.err(f"dim '{d.name}' must be a positive integer", d.default.span,
                               "write e.g. `dim K = 3`")
        self.dims[d.name] = d

    def _dim_expr(self, e: ast.Expr):
        for sub in ast.walk_expr(e):
            if isinstance(sub, ast.Name) and sub.id not in self.dims:
                if self.declared.get(sub.id, ("",))[0] == "dim":
                    raise self._declared_later(sub.id, sub.span)
                raise self.err(f"'{sub.id}' in a size is not a declared dim", sub.span,
                               "sizes use dim names and integers; declare it with `dim`")
            if isinstance(sub, (ast.Call, ast.Index)):
                raise self.err("a size may only use dims, integers and + - * /", sub.span,
                               "write e.g. `real[D]` or `real[K - 1]`")
            if isinstance(sub, ast.Num) and not sub.is_int:
                raise self.err("a size must be an integer", sub.span, "write e.g. `real[3]`")

    def _declare_var(self, d: ast.VarDecl):
        self._new_name(d.name, d.span, d.role)
        self.declaring = d.name
        try:
            self._check_var(d)
        finally:
            self.declaring = None

    def _check_var(self, d: ast.VarDecl):
        t = d.type
        if t.kind not in TYPE_RANK:
            raise self.err(f"unknown type '{t.kind}'", t.span,
                           f"use one of {', '.join(TYPE_RANK)}")
        want = TYPE_RANK[t.kind]
        if want is not None and len(t.dims) != want:
            raise self.err(f"type '{t.kind}' takes {want} size(s), got {len(t.dims)}", t.span,
                           f"write e.g. `{t.kind}[K]`" if want else f"write `{t.kind}`")
        if t.kind in ("pos",) and len(t.dims) > 1 or t.kind == "real" and len(t.dims) > 2:
            raise self.err(f"type '{t.kind}' takes at most {1 if t.kind == 'pos' else 2} sizes",
                           t.span, "use a plate dimension on the variable instead")
        for e in (*d.shape, *t.dims):
            self._dim_expr(e)
        if d.role in ("data", "latent", "param") and d.default is not None:
            raise self.err(f"a {d.role} cannot have a default value", d.default.span,
                           "only hypers and dims have defaults")
        if d.role == "hyper":
            if d.shape:
                raise self.err("a hyper cannot have a plate shape", d.span,
                               "give the shape in its type, e.g. `hyper m0 : real[D]`")
            if d.default is not None:
                self._hyper_default(d)
        self.vars[d.name] = Var(d.name, d.role, d.shape, t.kind, t.dims, d.default, d.span)

    def _hyper_default(self, d: ast.VarDecl):
        e = d.default
        for sub in ast.walk_expr(e):
            if not isinstance(sub, ast.Name) or sub.id in self.dims:
                continue
            if sub.id in self.vars:  # declared names first: a model's own `pi` shadows pi
                role = self.vars[sub.id].role
                if role != "hyper":
                    raise self.err(f"the default of '{d.name}' uses the {role} '{sub.id}'",
                                   sub.span, "a default may use dims, numbers and earlier "
                                   "hypers (it is known before the fit)")
                continue
            later = self._declared_later(sub.id, sub.span)
            if later is not None:
                raise later
            if sub.id != "pi":
                raise self.err(f"undeclared name '{sub.id}' in the default of '{d.name}'",
                               sub.span, did_you_mean(
                                   sub.id, [*self.dims, *(k for k, v in self.vars.items()
                                                          if v.role == "hyper")],
                                   "a default may use dims, numbers and earlier hypers"))
        val = literal_value(e)
        if val is not None and d.type.kind in ("pos", "spd", "simplex") and val <= 0:
            raise self.err(f"hyper '{d.name}' is declared {d.type.kind} but its default is "
                           f"{fmt(val)}", e.span, "give a strictly positive value")
        if val is not None and d.type.kind == "unit" and not 0 < val < 1:
            raise self.err(f"hyper '{d.name}' is declared unit but its default is {fmt(val)}",
                           e.span, "give a value strictly between 0 and 1")

    # ------------------------------------------------------------------ statements
    def _statement(self, s, loops: tuple[Loop, ...]):
        if isinstance(s, ast.Let):
            self._new_name(s.name, s.span, "let")
            self.declaring = s.name
            self._expr(s.value, loops)
            self.declaring = None
            self.lets[s.name] = inline_lets(self.lets, s.value)
        elif isinstance(s, ast.For):
            self._loop(s, loops)
        else:
            self._sample(s, loops)

    def _loop(self, s: ast.For, loops):
        self._identifier(s.var, s.span, "loop variable")
        if s.var in self.dims or s.var in self.vars or any(lp.var == s.var for lp in loops):
            raise self.err(f"loop variable '{s.var}' shadows an earlier name", s.span,
                           "use a fresh index name such as i, j or t")
        if s.var in self.families or s.var in BUILTIN_FUNCS:
            raise self.err(f"loop variable '{s.var}' is the name of a family or function",
                           s.span, "use a fresh index name such as i, j or t")
        if s.var in self.declared:
            what, where = self.declared[s.var]
            raise self.err(f"loop variable '{s.var}' has the name of the {what} declared at "
                           f"line {where.line}", s.span, "use a fresh index name such as i, j or t")
        for e in (s.start, s.stop):
            self._dim_expr(e)
        lp = Loop(s.var, s.start, s.stop, s.span)
        for st in s.body:
            self._statement(st, loops + (lp,))

    def _sample(self, s: ast.Sample, loops):
        tgt = s.target
        name = tgt.id if isinstance(tgt, ast.Name) else tgt.base.id
        span = tgt.span if isinstance(tgt, ast.Name) else tgt.base.span
        index = () if isinstance(tgt, ast.Name) else tgt.indices
        if name in self.dims:
            raise self.err(f"dim '{name}' cannot be sampled", span,
                           "dims are sizes; declare a data, param or latent instead")
        v = self.vars.get(name)
        if v is None and name not in self.lets:
            later = self._declared_later(name, span)
            if later is not None:
                raise later
        if v is None:
            raise self.err(f"'{name}' is sampled but not declared", span,
                           did_you_mean(name, self.vars,
                                        f"declare it first, e.g. `latent {name}[N] : real`"))
        if v.role == "hyper":
            raise self.err(f"hyper '{name}' cannot be sampled", span,
                           "declare it as a param (MAP) or a latent to give it a distribution")
        self._target_index(v, index, loops, tgt.span)
        prev = self.sampled.get(name)
        if prev is not None and overlap(prev.index, prev.loops, index, loops):
            raise self.err(f"'{name}' is sampled twice (first at line {prev.span.line})", span,
                           f"a {v.role} takes one prior: keep one `{name} ~ ...`; whatever "
                           f"is drawn from {name} has it on the right of its own `~`"
                           if v.role == "param" else
                           "every data/latent element is the left side of exactly one `~`")
        fam = self.families.get(s.dist.func)
        if fam is None:
            raise self.err(f"unknown family '{s.dist.func}'", s.dist.func_span,
                           did_you_mean(s.dist.func, self.families, "declare it with a "
                                        "`family` block or use a built-in family"))
        args, kws = self._bind_args(fam, s.dist, loops)
        self._support(v, fam, tgt.span)
        self._sizes_agree(v, fam, s.dist, dict(args), tgt.span)
        line = _source_line(self.src, s.span.line)
        if s.span.end_line == s.span.line and s.span.end_col > s.span.col:
            line = line[s.span.col - 1:s.span.end_col - 1]   # the statement, not its loops
        f = Factor(name, tuple(index), fam, args, kws, loops, s.span, line.strip())
        if prev is None or literal_value(index[0]) is None:
            self.sampled[name] = f
        self.factors.append(f)

    def _target_index(self, v: Var, index, loops, span):
        """A sampled variable's indices are plain loop variables or integer constants."""
        if len(index) != len(v.shape):
            hint = index_hint(v, loops, set(self.declared) | set(self.dims) | set(self.vars)) \
                if v.shape else f"write `{v.name} ~ ...` without an index"
            if len(index) == len(v.shape) + len(v.elem_dims) and v.elem_dims \
                    and v.kind != "cat":   # an element of a vector, one statement each
                hint = (f"'{v.name}' is declared {v.kind}[...]: to draw its elements one by "
                        f"one, make them plates - `{v.role} {v.name}"
                        f"[{', '.join(ast.show(e) for e in v.shape + v.elem_dims)}] : "
                        f"{v.kind}`")
            raise self.err(f"'{v.name}' has {len(v.shape)} plate index(es) but is sampled with "
                           f"{len(index)}", span, hint)
        loop_vars = {lp.var: lp for lp in loops}
        for i, e in enumerate(index):
            if isinstance(e, ast.Name) and e.id in loop_vars:
                continue
            if isinstance(e, ast.Num):
                if e.is_int and e.value >= 1:
                    continue
                raise self.err(f"index {i + 1} of '{v.name}' must be a positive integer, not "
                               f"{self._text(e)}", e.span,
                               f"indices are 1-based: the first element is `{v.name}[1]`")
            used = [lp for lp in loops if any(isinstance(s, ast.Name) and s.id == lp.var
                                              for s in ast.walk_expr(e))]
            if used:
                lv = used[-1]
                raise self.err(f"index {i + 1} of '{v.name}' is '{self._text(e)}', but the "
                               "indices of a sampled variable must be plain loop variables or "
                               "integer constants", e.span,
                               f"sample `{v.name}[{lv.var}]` and change the range of the loop "
                               f"(a chain: `{v.name}[1] ~ ...` then `for {lv.var} in "
                               f"2:{ast.show(lv.stop)} {{ {v.name}[{lv.var}] ~ ... }}`); index "
                               f"arithmetic such as `{v.name}[{lv.var}-1]` belongs on the right "
                               "of `~`")
            raise self.err(f"index {i + 1} of '{v.name}' must be a loop variable", e.span,
                           "sample array elements inside a plate: `for n in 1:N { x[n] ~ ... }`")

    def _text(self, e: ast.Expr) -> str:
        """The source text of an expression (as written), or its printed form."""
        sp = e.span
        if sp and sp.line == sp.end_line and sp.end_col > sp.col:
            text = _source_line(self.src, sp.line)[sp.col - 1:sp.end_col - 1]
            if text:
                return text
        return ast.show(e)

    def _bind_args(self, fam: Family, call: ast.Call, loops):
        names = fam.param_names
        if len(call.args) > len(names):
            raise self.err(f"{fam.name} takes {len(names)} argument(s) "
                           f"({', '.join(names)}), got {len(call.args)}", call.span,
                           f"write {fam.name}({', '.join(names)})")
        bound = dict(zip(names, call.args))
        keywords = {}
        for kw in call.kwargs:
            canon = kw.name
            if kw.name in fam.alternatives:
                canon = fam.alternatives[kw.name][0]
            elif kw.name not in names:
                alts = list(names) + list(fam.alternatives)
                raise self.err(f"{fam.name} has no parameter '{kw.name}'", kw.span,
                               f"its parameters are: {', '.join(alts)}")
            if canon in bound:
                raise self.err(f"{fam.name}: '{canon}' is given twice", kw.span,
                               "give each parameter once")
            bound[canon] = kw.value
            keywords[canon] = kw.name
        missing = [n for n in names if n not in bound]
        if missing:
            raise self.err(f"{fam.name} is missing argument(s): {', '.join(missing)}",
                           call.span, f"write {fam.name}({', '.join(names)})")
        for p in fam.params:
            e = bound[p.name]
            self._expr(e, loops)
            kind, rank = expr_kind(e, self.vars, self.dims, self.lets)
            want_kind = p.kind
            if p.name in fam.scalar_ok and rank == 0:
                rank = p.rank  # a scalar stands for a constant vector (a symmetric Dirichlet)
            if kind is not None and not kind_fits(e, kind, want_kind):
                raise self.err(f"{fam.name} needs '{p.name}' of type {want_kind}, but "
                               f"'{ast.show(e)}' is {kind}", e.span,
                               type_hint(want_kind))
            if rank is not None and rank != p.rank and not (p.rank == 2 and rank == 0):
                shape = ("a scalar", "a vector", "a matrix")
                raise self.err(f"{fam.name} needs '{p.name}' to be {shape[p.rank]}, but "
                               f"'{ast.show(e)}' is {shape[min(rank, 2)]}", e.span,
                               "check the indices of this argument")
        args = tuple((n, inline_lets(self.lets, bound[n])) for n in names)
        return args, tuple(sorted(keywords.items()))

    def _sizes_agree(self, v: Var, fam: Family, call: ast.Call, args: dict, span):
        """The vector and matrix arguments of a family and its variable have one size (an
        MvNormal's mean real[D] and cov spd[D]; a Categorical's p simplex[K] and cat[K]),
        compared as declared: symbolically, before any data."""
        sized = [(p.name, args[p.name]) for p in fam.params if p.rank >= 1]
        if not sized:
            return
        own = v.elem_dims[0] if v.elem_dims else None
        seen = [(f"'{v.name}'", own, span)] if own is not None else []
        spans = {n: getattr(e, "span", call.span) for n, e in sized}
        for name, e in sized:
            size = expr_size(e, self.vars, self.lets)
            if size is not None:
                seen.append((f"{fam.name}'s '{name}' ({ast.show(e)})", size, spans[name]))
        for what, size, where in seen[1:]:
            first, want = seen[0][0], seen[0][1]
            if ast.show(size) != ast.show(want):
                raise self.err(f"{what} has size {ast.show(size)} but {first} has size "
                               f"{ast.show(want)}", where,
                               "the vector and matrix arguments of a family share one size: "
                               "check the declared dims (e.g. `spd[D]` for a `real[D]` mean)")

    def _support(self, v: Var, fam: Family, span):
        if v.role == "latent" and v.kind == "cat" and fam.support == "cat":
            return
        if not is_subtype(v.kind, fam.support):
            raise self.err(f"'{v.name}' is {v.kind} but {fam.name} is a distribution on "
                           f"{fam.support}", span,
                           f"declare '{v.name}' as {fam.support} or use a family on {v.kind}")
        rank = v.elem_rank
        if v.kind == "real" and len(v.elem_dims) == 0:
            rank = 0
        if rank != fam.support_rank:
            what = ("scalar", "vector", "matrix")
            hint = "index the variable down to one element of the right shape"
            if fam.support_rank == 0 and rank == 1:
                hint = (f"a scalar family draws one number: declare `{v.role} {v.name}"
                        f"[{', '.join(ast.show(e) for e in v.shape + v.elem_dims)}] : "
                        f"{v.kind}` and draw each element in a loop over its plates")
            raise self.err(f"{fam.name} draws a {what[fam.support_rank]} but '{v.name}' "
                           f"elements are {what[min(rank, 2)]}s", span, hint)

    # ------------------------------------------------------------------ expressions
    def _expr(self, e: ast.Expr, loops):
        loop_vars = {lp.var for lp in loops}
        for sub in ast.walk_expr(e):
            if isinstance(sub, ast.Name):
                n = sub.id
                if n in loop_vars or n in self.dims or n in self.lets:
                    continue
                if n in self.vars:
                    self.used.add(n)
                    continue
                later = self._declared_later(n, sub.span)
                if later is not None:
                    raise later
                if n == "pi":  # the constant, unless the model declares its own pi
                    continue
                raise self.err(f"undeclared name '{n}'", sub.span, did_you_mean(
                    n, [*loop_vars, *self.dims, *self.lets, *self.vars],
                    "declare it before this statement or fix the spelling"))
            elif isinstance(sub, ast.Call):
                if sub.func not in BUILTIN_FUNCS:
                    what = "a family" if sub.func in self.families else "an unknown function"
                    raise self.err(f"'{sub.func}' is {what} and cannot be called here",
                                   sub.func_span or sub.span,
                                   did_you_mean(sub.func, BUILTIN_FUNCS, "functions: "
                                                + ", ".join(sorted(BUILTIN_FUNCS))))
            elif isinstance(sub, ast.Index):
                if not isinstance(sub.base, ast.Name) or sub.base.id not in self.vars:
                    if isinstance(sub.base, ast.Name) and sub.base.id not in loop_vars \
                            and sub.base.id not in self.dims and sub.base.id not in self.lets:
                        later = self._declared_later(sub.base.id, sub.base.span)
                        if later is not None:
                            raise later
                        raise self.err(f"undeclared name '{sub.base.id}'", sub.base.span,
                                       did_you_mean(sub.base.id, self.vars, "declare it "
                                                    "before this statement or fix the "
                                                    "spelling"))
                    raise self.err(f"'{ast.show(sub.base)}' cannot be indexed", sub.span,
                                   "only declared variables can be indexed")
                v = self.vars[sub.base.id]
                if len(sub.indices) > len(v.shape) + max(v.elem_rank, 0):
                    raise self.err(f"'{v.name}' has {len(v.shape)} index(es) but is indexed "
                                   f"with {len(sub.indices)}", sub.span,
                                   "drop the extra index")

    def _generated_clashes(self):
        """``N_y`` next to a datum ``y`` would clash with the generated count of ``y``."""
        declared = set(self.vars) | set(self.dims)
        for name, v in self.vars.items():
            base = generated_clash(name, declared)
            if base:
                raise self.err(f"the {v.role} '{name}' clashes with the generated code's name "
                               f"for a statistic of '{base}'", v.span, "choose another name")

    # ------------------------------------------------------------------ roles
    def _roles(self):
        for v in self.vars.values():   # first: a missing statement leaves its params unused
            if v.role == "latent" and v.name not in self.sampled:
                raise self.err(f"latent '{v.name}' is never sampled", v.span,
                               f"add a statement `{v.name}[...] ~ Family(...)`")
        for v in self.vars.values():
            sampled = v.name in self.sampled
            if v.role == "data" and not sampled and v.name not in self.used:
                raise self.err(f"data '{v.name}' is neither modelled nor used", v.span,
                               "sample it with `~`, use it in an expression, or remove it")
            if v.role == "param" and not sampled and v.name not in self.used:
                raise self.err(f"param '{v.name}' is never used", v.span,
                               "use it in a sampling statement or remove it")
            if sampled:
                self._covers(v, self.sampled[v.name])

    def _covers(self, v: Var, f: Factor):
        """Each element sampled exactly once: the loops over the index run over the shape."""
        loops = {lp.var: lp for lp in f.loops}
        used = {s.id for i in f.index for s in ast.walk_expr(i) if isinstance(s, ast.Name)}
        for lp in f.loops:
            if lp.var not in used:
                raise self.err(f"'{v.name}' is sampled inside the loop over '{lp.var}' but not "
                               f"indexed by it, so each element would be drawn more than once",
                               f.span, f"index it by '{lp.var}' or move the statement out of "
                               "that loop")
        if f.index and len(set(ast.show(i) for i in f.index)) != len(f.index):
            raise self.err(f"'{v.name}' is indexed twice by the same loop variable", f.span,
                           "use one loop variable per index")
        for idx, size in zip(f.index, v.shape):
            if not isinstance(idx, ast.Name) or idx.id not in loops:
                continue
            lp = loops[idx.id]
            if literal_value(lp.start) == 1 and ast.show(lp.stop) == ast.show(size):
                continue
            if v.role == "latent" and literal_value(lp.start) == 2:
                continue  # a chain: its first element is sampled by its own statement
            raise self.err(f"the loop over '{idx.id}' runs {ast.show(lp.start)}:"
                           f"{ast.show(lp.stop)} but '{v.name}' has size {ast.show(size)}",
                           Span(lp.span.file, lp.start.span.line, lp.start.span.col,
                                lp.stop.span.end_line, lp.stop.span.end_col),
                           f"loop `for {idx.id} in 1:{ast.show(size)}`")


def _source_line(source: str | None, line: int) -> str:
    """Line ``line`` (1-based) of ``source`` as the parser counts lines: only ``\\n`` ends a
    line (``str.splitlines`` would also split at ``\\x0c``, ``\\u2028`` ... in comments)."""
    lines = source.split("\n") if source else []
    return lines[line - 1].rstrip("\r") if 1 <= line <= len(lines) else ""
