"""``python scripts/book.py portability``: one chapter run under a setting of the numerical kernels
and compared with its stored outputs as nbval does. A small notebook stands in for a chapter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import nboutputs

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("book_script", ROOT / "scripts" / "book.py")
book_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(book_script)


def _cell(source: str, stored: str, **metadata) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, execution_count=1, metadata=metadata,
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text=stored)])


def test_a_run_reports_the_kernel_settings_and_exactly_the_cells_that_differ(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("A chapter"),
        _cell('import torch\nprint(f"sum {torch.arange(4.0).sum().item():.1f}")', "sum 6.0\n"),  # 1: same
        _cell('print("energy ratio 2132.08")', "energy ratio 2140.00\n",  # 2: moved, within its tolerance
              numeric_tolerance={"rel": 0.02, "reason": "trained metric"}),
        _cell('print("header")\nprint("loss 0.41")', "header\nloss 0.42\n"),  # 3: differs on line 2
        _cell('print("trained in 7.5 s (wall clock)")', "trained in 9.9 s (wall clock)\n"),  # 4: sanitised
        _cell('print("x")', "y\n", tags=["nbval-ignore-output"]),  # 5: not compared
        _cell('raise ValueError("boom")', ""),  # 6: fails the run
        _cell('print("after")', "never run\n"),  # 7: not run, so not compared
    ])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    setting = book_script.Setting("scalar kernels, one thread", {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
                                  threads=1, capability="DEFAULT")
    row = book_script.run_under(path, setting, nboutputs.sanitizer(nboutputs.load_sanitizers(book_script.SANITIZERS)))

    assert row["kernel"]["threads"] == 1 and row["kernel"]["capability"] == "DEFAULT" and row["setting_in_effect"]
    assert row["kernel"]["env"]["ATEN_CPU_CAPABILITY"] == "default"
    assert [(d["cell"], d["key"], d["line"], d["expected_line"], d["got_line"]) for d in row["differences"]] == [
        (3, "stdout", 2, "loss 0.42", "loss 0.41")]
    assert row["within_tolerance"] == [2]
    assert row["error"]["cell"] == 6 and "boom" in row["error"]["message"]
    assert row["ok"] is False
    assert nbformat.read(path, as_version=4) == nb  # the notebook is never written back
