"""Every example in the documentation runs (issue 8, item 1): the Python blocks of each
page in order in one namespace (from the repository's root), every `emm` block compiles,
every `emdsl ...` line of a `sh` block exits 0 (in a scratch directory that sees
models/)."""
from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import pytest

import emdsl
from emdsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))


def _blocks(page: Path, lang: str) -> list:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


def test_the_docs_exist():
    names = {p.name for p in PAGES}
    assert {"language.md", "tutorial.md", "python.md", "cli.md", "changelog.md"} <= names


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")],
                         ids=lambda p: p.name)
def test_python_examples_run(page, tmp_path, monkeypatch):
    (tmp_path / "models").symlink_to(ROOT / "models")   # the docs' paths, files written aside
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(_blocks(page, "python")):
            exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "emm")], ids=lambda p: p.name)
def test_model_examples_compile(page):
    for i, block in enumerate(_blocks(page, "emm")):
        emdsl.loads(block, name=f"{page.name}-{i + 1}.emm", use_cache=False)


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "sh")], ids=lambda p: p.name)
def test_command_examples_run(page, tmp_path, monkeypatch, capsys):
    (tmp_path / "models").symlink_to(ROOT / "models")
    monkeypatch.chdir(tmp_path)
    for block in _blocks(page, "sh"):
        for line in block.strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "emdsl", line
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code = main(argv[1:])
            err = capsys.readouterr().err
            assert code == 0, (line, err)


def test_the_examples_reach_pip_users(tmp_path, capsys):
    """`emdsl examples DIR` copies every example model and its data (the wheel ships
    them as emdsl/_examples, pyproject's force-include); nothing is overwritten."""
    assert main(["examples", str(tmp_path / "ex")]) == 0
    copied = sorted(p.name for p in (tmp_path / "ex").glob("*.emm"))
    assert copied == sorted(p.name for p in (ROOT / "models").glob("*.emm"))
    assert (tmp_path / "ex" / "data" / "faithful.csv").is_file()
    m = emdsl.load(tmp_path / "ex" / "gaussian_mixture.emm")
    assert m.name == "GaussianMixture"
    capsys.readouterr()
    assert main(["examples", str(tmp_path / "ex")]) == 1
    assert "exists" in capsys.readouterr().err
