"""Bad data sets through the command line: each ``tests/golden/bad_data/NAME.args`` holds
the arguments of one ``emdsl`` call; ``NAME.err`` the exact message it must print.

Every case must exit 1, print no traceback and write no output file.
"""
import shlex
from pathlib import Path

import pytest

from emdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "bad_data"
CASES = sorted(p.stem for p in GOLDEN.glob("*.args"))


def test_enough_cases():
    assert len(CASES) >= 10


@pytest.mark.parametrize("name", CASES)
def test_bad_data(name, tmp_path, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(ROOT)  # messages name files relative to the repository
    out = tmp_path / "result.json"
    args = shlex.split((GOLDEN / f"{name}.args").read_text()) + ["-o", str(out)]
    code = main(args)
    err = capsys.readouterr().err
    expected = GOLDEN / f"{name}.err"
    if update_golden:
        expected.write_text(err)
    assert code == 1, err
    assert "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.iterdir())
    assert err == expected.read_text()
