"""The derivation as a document: blocks collected once by ``explain.py``, rendered as plain
text, Markdown (``$$`` maths), a standalone LaTeX document, or a self-contained HTML page
with KaTeX bundled (no network).

``explain.py`` decides what is said; this module only knows how each format says it. Every
formula comes in a plain and a LaTeX form; model names go through :func:`tex_name` and sympy
expressions through :func:`tex` (sympy's LaTeX printer), so the notation is one everywhere.
"""
from __future__ import annotations

import base64
import functools
import html
import re
from pathlib import Path

import sympy as sp
from sympy.printing.latex import LatexPrinter

from . import __version__

FORMATS = ("markdown", "latex", "html", "text")
ALIASES = {"md": "markdown", "tex": "latex", "htm": "html", "txt": "text"}

# (short name, authors, title, where): the sources the derivation's equation numbers cite
REFERENCES = (
    ("Linderman", "S. Linderman", "Expectation Maximization",
     "STATS 305C: Applied Statistics III, lecture notes, Stanford University, 2023. "
     "Equation numbers without a name (eq. 6, 12, 14, 39-45, 50-51) are this text's."),
    ("Hennig", "P. Hennig", "Expectation Maximization",
     "Probabilistic Machine Learning, lecture 21, University of Tübingen, 2020 "
     "(EM as coordinate ascent on the ELBO; generalized EM)."),
    ("Rai", "P. Rai", "Expectation-Maximization (contd.) and Introduction to Variational "
     "Inference", "CS698X: Topics in Probabilistic Modeling and Inference, IIT Kanpur, 2019 "
     "(MAP-EM, the ELBO, mean-field variational inference)."),
    ("Bishop", "C. M. Bishop", "Pattern Recognition and Machine Learning",
     "Springer, 2006, chapters 9 and 10 (eq. 10.x: variational mixtures and CAVI)."),
    ("Blei et al. 2017", "D. M. Blei, A. Kucukelbir and J. D. McAuliffe",
     "Variational Inference: A Review for Statisticians", "JASA 112, 2017 (CAVI)."),
    ("Hoffman et al. 2013", "M. D. Hoffman, D. M. Blei, C. Wang and J. Paisley",
     "Stochastic Variational Inference", "JMLR 14, 2013 (the batch and stochastic "
     "schedules of topic models)."),
    ("Blei et al. 2003", "D. M. Blei, A. Y. Ng and M. I. Jordan", "Latent Dirichlet Allocation",
     "JMLR 3, 2003 (appendix A.4.2: the Dirichlet's concentration by type-II maximum "
     "likelihood)."),
)


# ----------------------------------------------------------------------------- notation
_GREEK = frozenset(("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi "
                    "pi rho sigma tau upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi "
                    "Sigma Upsilon Phi Psi Omega").split())


def tex_word(word: str) -> str:
    """An identifier as upright text in maths (underscores escaped): a family's name."""
    return rf"\mathrm{{{word.replace('_', chr(92) + '_')}}}"


def tex_name(name: str) -> str:
    """A model identifier in LaTeX, braced so that it never runs into what follows, and
    distinct names stay distinct: the part before the first ``_`` is the base (a Greek
    letter's name as the letter, ``mu`` -> ``\\mu``; one letter in italics; a longer word
    upright, ``weights`` -> ``\\mathrm{weights}``; digits after it as written, ``x1``),
    the rest a subscript written as it is (``mu_0`` -> ``\\mu_{0}``, ``s__2`` ->
    ``s_{\\_2}``)."""
    base, sep, rest = name.partition("_")
    letters = re.match(r"[A-Za-z]*", base).group()
    digits = base[len(letters):]
    head = (rf"\{letters}" if letters in _GREEK else letters if len(letters) == 1
            else tex_word(letters) if letters else "")
    head = "{" + head + "}" + digits if digits else head
    sub = ""
    if sep:
        text = rest.replace("_", "\\_")
        sub = "_{" + (text if re.fullmatch(r"[0-9]+|[A-Za-z]", rest)
                      else rf"\mathrm{{{text}}}") + "}"
    return "{" + head + sub + "}"


class _Printer(LatexPrinter):
    """sympy's LaTeX printer with the textbook names of the special functions: log Gamma
    (not ``\\operatorname{loggamma}``) and psi (not ``polygamma(0, .)``)."""

    def _power(self, s, exp):
        return s if exp is None else rf"\left({s}\right)^{{{exp}}}"

    def _print_loggamma(self, e, exp=None):
        return self._power(rf"\log\Gamma\left({self._print(e.args[0])}\right)", exp)

    def _print_polygamma(self, e, exp=None):
        n, x = e.args
        psi = {0: r"\psi", 1: r"\psi'"}.get(n, rf"\psi^{{({self._print(n)})}}")
        return self._power(rf"{psi}\left({self._print(x)}\right)", exp)


def tex(expr) -> str:
    """A sympy expression (or a number) in LaTeX by sympy's printer, its symbols named by
    :func:`tex_name`."""
    expr = sp.sympify(expr)
    names = {s: tex_name(s.name) for s in expr.atoms(sp.Symbol)}
    return _Printer({"symbol_names": names, "mul_symbol": r"\,"}).doprint(expr)


# ----------------------------------------------------------------------------- code links
class CodeIndex:
    """Where the generated module implements each step: (function, line) pairs read off its
    source (``def`` lines and the first assignment of a param's new value)."""

    def __init__(self, code: str):
        self.lines = code.splitlines()

    def function(self, name: str):
        """(name, line) of ``def name(``, or None."""
        for i, line in enumerate(self.lines, 1):
            if line.startswith(f"def {name}("):
                return name, i
        return None

    def assignment(self, param: str):
        """(enclosing function, line) of the first ``new["param"] =`` or
        ``new["param.field"] =``, or None."""
        pattern = re.compile(rf'new\["{re.escape(param)}(\.[A-Za-z_]\w*)?"\] = ')
        for i, line in enumerate(self.lines, 1):
            if pattern.search(line):
                for j in range(i - 1, -1, -1):
                    m = re.match(r"def (\w+)\(", self.lines[j])
                    if m:
                        return m.group(1), i
        return None


# ----------------------------------------------------------------------------- the document
class Document:
    """Blocks: ("heading", text), ("para", text), ("items", [text]), ("math", plain, latex),
    ("code", what, function, line). Text may hold `code` spans."""

    def __init__(self, title: str, code: str | None = None, model_file: str = ""):
        self.title_text, self.blocks = title, []
        self.code = CodeIndex(code) if code else None
        self.model_file = model_file

    def heading(self, text):
        self.blocks.append(("heading", text))

    def para(self, text):
        self.blocks.append(("para", text))

    def items(self, texts):
        self.blocks.append(("items", list(texts)))

    def math(self, plain: str, latex: str):
        self.blocks.append(("math", plain, latex))

    def implemented(self, what: str, *, function: str = "", assignment: str = ""):
        """Say which generated function and line implement ``what`` (when the module's
        source was given and holds it)."""
        if self.code is None:
            return
        loc = (self.code.function(function) if function else self.code.assignment(assignment))
        if loc is not None:
            self.blocks.append(("code", what, *loc))

    def render(self, fmt: str) -> str:
        fmt = ALIASES.get(fmt, fmt)
        return {"text": _text, "markdown": _markdown, "latex": _latex, "html": _html}[fmt](self)


def _where(doc) -> str:
    """The sentence that says which module the code lines are of."""
    how = f" (`emdsl compile {doc.model_file}`)" if doc.model_file else ""
    return (f"Each step below names the function and line of the generated module{how} "
            "that implement it.")


def _intro(doc) -> list:
    return [("para", _where(doc))] if doc.code is not None else []


def _text(doc: Document) -> str:
    out = [doc.title_text, "=" * len(doc.title_text)]
    for b in _intro(doc) + doc.blocks + _reference_blocks():
        if b[0] == "heading":
            out += ["", b[1], "-" * len(b[1]), ""]
        elif b[0] == "para":
            out += ["", b[1]]
        elif b[0] == "items":
            out += [f"- {t}" for t in b[1]]
        elif b[0] == "math":
            out += ([""] if out and not out[-1].startswith("    ") else []) + [f"    {b[1]}"]
        else:
            out += ["", f"Code: {b[1]}: `{b[2]}`, line {b[3]}."]
    return "\n".join(out) + "\n"


def _markdown(doc: Document) -> str:
    out = [f"# {doc.title_text}"]
    for b in _intro(doc) + doc.blocks + _reference_blocks(markdown=True):
        if b[0] == "heading":
            out += ["", f"## {b[1]}", ""]
        elif b[0] == "para":
            out += ["", b[1]]
        elif b[0] == "items":
            out += [f"- {t}" for t in b[1]]
        elif b[0] == "math":
            out += ["", "$$", b[2], "$$"]
        else:
            out += ["", f"*Code:* {b[1]}: `{b[2]}`, line {b[3]}."]
    return "\n".join(out) + "\n"


def _reference_blocks(markdown=False) -> list:
    emph = (lambda s: f"*{s}*") if markdown else (lambda s: s)
    return [("heading", "References"),
            ("items", [f"[{k}] {a}, {emph(t)}. {w}" for k, a, t, w in REFERENCES])]


# ----------------------------------------------------------------------------- LaTeX
_LATEX_PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage{amsmath,amssymb,graphicx}
\usepackage[margin=2.2cm]{geometry}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
% a display no wider than the line: shrunk to fit when it would run off the page
\newcommand{\fitdisplay}[1]{\[\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{$\displaystyle #1$}\]}
"""


def tex_text(text: str) -> str:
    """Plain text with `code` spans -> LaTeX text (specials escaped, code in \\texttt,
    characters outside Latin-1 spelt as U+XXXX)."""
    parts = re.split(r"`([^`]*)`", text)
    out = []
    for i, part in enumerate(parts):
        esc = part.replace("\\", "\x00")
        for ch in "&%$#_{}":
            esc = esc.replace(ch, "\\" + ch)
        esc = (esc.replace("\x00", "\\textbackslash{}").replace("~", "\\textasciitilde{}")
               .replace("^", "\\textasciicircum{}").replace("§", "\\S{}"))
        esc = "".join(c if ord(c) < 256 else f"U+{ord(c):04X}" for c in esc)
        out.append(f"\\texttt{{{esc}}}" if i % 2 else esc)
    return "".join(out)


def _latex(doc: Document) -> str:
    out = [_LATEX_PREAMBLE, f"\\title{{{tex_text(doc.title_text)}}}",
           f"\\author{{derived by emdsl {__version__}}}", "\\date{}", "",
           "\\begin{document}", "\\maketitle"]
    for b in _intro(doc) + doc.blocks:
        if b[0] == "heading":
            out += ["", f"\\section*{{{tex_text(b[1])}}}"]
        elif b[0] == "para":
            out += ["", tex_text(b[1])]
        elif b[0] == "items":
            out += ["\\begin{itemize}"] + [f"  \\item {tex_text(t)}" for t in b[1]] \
                + ["\\end{itemize}"]
        elif b[0] == "math":
            out.append(f"\\fitdisplay{{{b[2]}}}")
        else:
            out += ["", f"\\emph{{Code:}} {tex_text(b[1])}: \\texttt{{{tex_text(b[2])}}}, "
                        f"line {b[3]}."]
    out += ["", "\\section*{References}", "\\begin{enumerate}"]
    out += [f"  \\item[{{{tex_text(f'[{k}]')}}}] {tex_text(a)}, \\emph{{{tex_text(t)}}}. "
            f"{tex_text(w)}" for k, a, t, w in REFERENCES]
    out += ["\\end{enumerate}", "", "\\end{document}"]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- HTML
_KATEX = Path(__file__).resolve().parent / "_vendor" / "katex"

_CSS = """body { font-family: Georgia, 'Times New Roman', serif; max-width: 60rem; margin: 2rem auto;
  padding: 0 1rem; line-height: 1.5; color: #1d1d1d; }
code, pre { font-family: Menlo, Consolas, monospace; font-size: 0.9em; }
.math { overflow-x: auto; overflow-y: hidden; margin: 0.8em 0; }
.math-error { color: #b00020; }
.impl { font-size: 0.92em; color: #444; }
.references li { margin: 0.3em 0; }
pre.module { background: #f6f6f4; padding: 0.8em; overflow-x: auto; line-height: 1.35; }
pre.module .ln { color: #999; user-select: none; display: inline-block; width: 3.5em; }
pre.module :target { background: #fff3b0; }
"""

_RENDER_JS = """(function () {
  var failed = 0;
  document.querySelectorAll(".math").forEach(function (el) {
    var source = el.getAttribute("data-tex");
    try {
      katex.render(source, el, {displayMode: true, throwOnError: true, strict: "error"});
    } catch (e) {
      failed += 1;
      el.classList.add("math-error");
      console.error("emdsl: cannot render " + source + ": " + e.message);
    }
  });
  document.body.setAttribute("data-rendered", failed ? "failed" : "ok");
})();"""


@functools.lru_cache(maxsize=1)
def _katex_assets() -> tuple[str, str]:
    """(css with every font inlined as a WOFF2 data URL, js) of the bundled KaTeX."""
    css = (_KATEX / "katex.min.css").read_text(encoding="utf-8")

    def inline(m):
        data = base64.b64encode((_KATEX / "fonts" / f"{m.group(1)}.woff2").read_bytes())
        return f'url(data:font/woff2;base64,{data.decode("ascii")}) format("woff2")'
    css = re.sub(r'url\(fonts/([\w-]+)\.woff2\) format\("woff2"\)'
                 r'(?:,url\([^)]*\) format\("[a-z]+"\))*', inline, css)
    return css, (_KATEX / "katex.min.js").read_text(encoding="utf-8")


def _html_text(text: str) -> str:
    parts = re.split(r"`([^`]*)`", text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p)
                   for i, p in enumerate(parts))


def _html(doc: Document) -> str:
    css, js = _katex_assets()
    body = [f"<h1>{_html_text(doc.title_text)}</h1>"]
    intro = [("para", _where(doc) + " It is listed at the end of this page.")] \
        if doc.code is not None else []
    for b in intro + doc.blocks:
        if b[0] == "heading":
            body.append(f"<h2>{_html_text(b[1])}</h2>")
        elif b[0] == "para":
            body.append(f"<p>{_html_text(b[1])}</p>")
        elif b[0] == "items":
            body.append("<ul>" + "".join(f"<li>{_html_text(t)}</li>" for t in b[1]) + "</ul>")
        elif b[0] == "math":
            body.append(f'<div class="math" data-tex="{html.escape(b[2])}">'
                        f"<code>{html.escape(b[2])}</code></div>")
        else:
            body.append(f'<p class="impl"><em>Code:</em> {_html_text(b[1])}: <a href="#L{b[3]}">'
                        f"<code>{html.escape(b[2])}</code>, line {b[3]}</a></p>")
    body.append('<h2>References</h2><ol class="references">' + "".join(
        f"<li>[{html.escape(k)}] {html.escape(a)}, <em>{html.escape(t)}</em>. "
        f"{html.escape(w)}</li>" for k, a, t, w in REFERENCES) + "</ol>")
    if doc.code is not None:
        lines = "\n".join(f'<span id="L{i}"><span class="ln">{i:>4}</span>{html.escape(s)}</span>'
                          for i, s in enumerate(doc.code.lines, 1))
        body.append(f'<h2 id="module">The generated module</h2><pre class="module">{lines}</pre>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"generator\" content=\"emdsl {__version__}\">\n"
            f"<title>{html.escape(doc.title_text)}</title>\n<style>{css}</style>\n"
            f"<style>{_CSS}</style>\n<script>{js}</script>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{_RENDER_JS}</script>\n</body>\n</html>\n")
