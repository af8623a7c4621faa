"""How a new run of a chapter is compared with its stored outputs (``scripts/nboutputs.py``): exactly
as nbval does, except in cells whose metadata declares a ``numeric_tolerance``; the same rule in
``python scripts/book.py portability`` and, through the hook in ``conftest.py``, in ``pytest --nbval``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import nboutputs
import pytest
from nbval.plugin import IPyNbCell

ROOT = Path(__file__).resolve().parent.parent
TWO_PERCENT = nboutputs.Tolerance(rel=0.02, abs=0.0, reason="trained metric")
SANITIZE = nboutputs.sanitizer(nboutputs.load_sanitizers(ROOT / "tests" / "nbval_sanitize.cfg"))


@pytest.mark.parametrize("expected, got, close", [
    ("energy ratio 2132.08", "energy ratio 2132.08", True),
    ("energy ratio 2132.08", "energy ratio 2132.09", True),
    ("FLD 13.6 = 1.1 x floor", "FLD 13.8 = 1.1 x floor", True),  # 1.5 %
    ("FLD 13.6 = 1.1 x floor", "FLD 14.0 = 1.1 x floor", False),  # 2.9 %
    ("  8      61.88\n 16      99.99", "  8      61.88\n 16     100.01", True),  # a column gains a digit
    ("energy ratio 2132.08", "energy ratios 2132.08", False),  # text differs
    ("ratio 2132.08 after 8 steps", "ratio 2132.08 after 9 steps", False),  # 12 % on a count
    ("ratios 1.35 1.34", "ratios 1.35", False),  # a number is missing
    ("torch 2.13.0", "torch 2.13.1", False),  # a version is text, not a number
    ("latent mean -0.00", "latent mean 0.00", True),
])
def test_numbers_close_within_the_relative_tolerance_and_nothing_else(expected, got, close):
    assert nboutputs.numbers_close(expected, got, TWO_PERCENT) is close


def test_an_absolute_tolerance_covers_values_near_zero():
    assert not nboutputs.numbers_close("mean 0.001", "mean -0.002", TWO_PERCENT)
    assert nboutputs.numbers_close("mean 0.001", "mean -0.002", nboutputs.Tolerance(0.02, 0.005, "near zero"))


def test_cell_tolerance_is_read_from_the_metadata_and_checked():
    assert nboutputs.cell_tolerance({"metadata": {}}) is None
    cell = {"metadata": {"numeric_tolerance": {"rel": 0.02, "reason": "FLD of a trained model"}}}
    assert nboutputs.cell_tolerance(cell) == nboutputs.Tolerance(0.02, 0.0, "FLD of a trained model")
    for bad in ({"rel": 0.02}, {"rel": 0.02, "reason": " "}, {"rel": 2, "reason": "r"}, {"reason": "r"}, 0.02):
        with pytest.raises(ValueError):
            nboutputs.cell_tolerance({"metadata": {"numeric_tolerance": bad}})


def _stream(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def _result(plain: str, png: str = "iVBOR") -> nbformat.NotebookNode:
    return nbformat.v4.new_output("execute_result", data={"text/plain": plain, "image/png": png}, execution_count=1)


def test_snapping_replaces_only_values_within_the_tolerance():
    ref = [_stream("ratio 2132.08\n"), _result("FLD 13.6")]
    test = [_stream("ratio 2140.00\n"), _result("FLD 16.0")]
    snapped = nboutputs.snap_within_tolerance(test, ref, TWO_PERCENT, SANITIZE)
    assert snapped[0].text == "ratio 2132.08\n" and snapped[1].data["text/plain"] == "FLD 16.0"
    assert test[0].text == "ratio 2140.00\n"  # the caller's outputs are left alone
    assert nboutputs.first_difference(ref, snapped, SANITIZE)["key"] == "text/plain"


def test_first_difference_compares_what_nbval_compares():
    ref = [_stream("trained in 7.5 s (wall clock)\nloss 0.41\n"), _result("<Figure>", png="AAAA")]
    same = [_stream("trained in 9.1 s (wall clock)\nloss 0.41\n"), _result("<Figure>", png="BBBB")]
    assert nboutputs.first_difference(ref, same, SANITIZE) is None  # sanitised timing, image not compared
    moved = [_stream("trained in 7.5 s (wall clock)\nloss 0.42\n"), _result("<Figure>")]
    assert nboutputs.first_difference(ref, moved, SANITIZE) == dict(
        key="stdout", expected="trained in SECONDS (wall clock)\nloss 0.41\n",
        got="trained in SECONDS (wall clock)\nloss 0.42\n", line=2, expected_line="loss 0.41", got_line="loss 0.42")
    assert nboutputs.first_difference(ref, ref[:1], SANITIZE)["key"] == "output keys"


def test_nbval_options_follow_nbval_tags_and_comments():
    cell = nbformat.v4.new_code_cell("x = 1")
    assert nboutputs.nbval_options(cell) == {"check": True, "skip": False, "check_exception": False}
    cell.metadata["tags"] = ["nbval-ignore-output"]
    assert not nboutputs.nbval_options(cell)["check"]
    assert not nboutputs.nbval_options(nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nx"))["check"]
    assert nboutputs.nbval_options(nbformat.v4.new_code_cell("# NBVAL_SKIP\nx"))["skip"]


def tolerance_cells_not_in_readme(notebooks: list[Path], readme: str) -> list[str]:
    """The cells with a (valid) numeric_tolerance that README's table does not list."""
    rows = [line for line in readme.splitlines() if line.startswith("| ") and ".ipynb |" in line]
    missing = []
    for path in notebooks:
        name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
        for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
            if nboutputs.cell_tolerance(cell) is not None and not any(
                    row.startswith(f"| {name} | {index} |") for row in rows):
                missing.append(f"{name}, cell {index}")
    return missing


def test_every_numeric_tolerance_in_the_book_is_valid_and_listed_in_the_readme(tmp_path):
    readme = (ROOT / "README.md").read_text()
    assert tolerance_cells_not_in_readme(sorted((ROOT / "book").glob("*.ipynb")), readme) == []
    planted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "x", metadata={"numeric_tolerance": {"rel": 0.02, "reason": "trained"}})])
    nbformat.write(planted, tmp_path / "planted.ipynb")
    assert tolerance_cells_not_in_readme([tmp_path / "planted.ipynb"], readme) == ["planted.ipynb, cell 0"]
    assert tolerance_cells_not_in_readme([tmp_path / "planted.ipynb"], "| planted.ipynb | 0 | x | 2 % | trained |") == []


def test_the_repository_conftest_installs_the_hook_in_this_session():
    assert getattr(IPyNbCell.compare_outputs, "numeric_tolerance_hook", False)


def test_nbval_compares_within_the_declared_tolerance_and_exactly_elsewhere(tmp_path):
    """A small notebook through ``pytest --nbval`` in a subprocess, with the repository's conftest:
    a number 0.4 % off passes in a cell with a 2 % tolerance and fails in a cell without it."""
    code = 'print("energy ratio 2132.08")'
    cells = {  # stored output, tolerance metadata, expected outcome
        0: ("energy ratio 2140.00\n", True, "PASSED"),
        1: ("energy ratio 2400.00\n", True, "FAILED"),  # 12 %: outside the tolerance
        2: ("energy ratio 2140.00\n", False, "FAILED"),  # no metadata: exact
        3: ("energy ratios 2132.08\n", True, "FAILED"),  # the text differs
        4: ("energy ratio 2132.08\n", False, "PASSED"),
    }
    nb = nbformat.v4.new_notebook()
    for stored, tolerant, _ in cells.values():
        cell = nbformat.v4.new_code_cell(code, execution_count=1, outputs=[_stream(stored)])
        if tolerant:
            cell.metadata["numeric_tolerance"] = {"rel": 0.02, "reason": "a trained metric"}
        nb.cells.append(cell)
    nbformat.write(nb, tmp_path / "tolerant.ipynb")
    # The repository's own conftest, run from the temporary folder (pytest only finds conftests
    # above the tests it collects).
    (tmp_path / "conftest.py").write_text(
        f"import runpy\npytest_configure = runpy.run_path({str(ROOT / 'conftest.py')!r})['pytest_configure']\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider",
                             "-rA", "tolerant.ipynb"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    for n, (_, _, outcome) in cells.items():
        assert f"{outcome} tolerant.ipynb::Cell {n}" in result.stdout, result.stdout[-4000:]
    assert "numbers compared within rel 0.02" in result.stdout
