"""Golden error transcripts: every ``tests/golden/bad/NAME.emm`` must fail to compile with
exactly the text in ``NAME.err`` (stanc3's ``test/integration/bad``).

``pytest --update-golden`` rewrites the ``.err`` files from the current compiler; read the
diff before committing it.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from emdsl.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "tests" / "golden" / "bad"
CASES = sorted(p.stem for p in BAD.glob("*.emm"))

# Cases whose current message is wrong or misleading: the .err file holds the message we
# want, and the case is an expected failure until the compiler is fixed (then the strict
# xfail turns into a failure: delete the entry here).  --update-golden leaves them alone.
KNOWN_WRONG: dict = {}


def test_enough_cases():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_WRONG[n], strict=True))
    if n in KNOWN_WRONG else n for n in CASES])
def test_bad_program(name, tmp_path, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(ROOT)  # the messages name the file as tests/golden/bad/NAME.emm
    out = tmp_path / "out.py"
    status = main(["compile", f"tests/golden/bad/{name}.emm", "-o", str(out)])
    captured = capsys.readouterr()
    expected = BAD / f"{name}.err"
    if update_golden and name not in KNOWN_WRONG:
        expected.write_text(captured.err, encoding="utf-8")
    assert status == 1, captured.err
    assert "Traceback" not in captured.err
    assert not out.exists(), "an output file was written although compiling failed"
    assert list(tmp_path.iterdir()) == [], "a temporary file was left behind"
    assert captured.out == ""
    assert expected.is_file(), f"{expected.name} is missing; run pytest --update-golden"
    assert captured.err == expected.read_text(encoding="utf-8")


def test_no_orphan_expectations():
    orphans = sorted(p.name for p in BAD.glob("*.err") if not p.with_suffix(".emm").is_file())
    assert orphans == []
