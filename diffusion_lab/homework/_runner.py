"""Run one prepared submission in a fresh kernel: the process that the grader starts per notebook.

Run as a script (``python _runner.py NOTEBOOK RESULTS --cell-timeout S``), not as a module, so that it
imports only nbformat and nbclient: the kernel imports diffusion_lab, this process does not need to.
Each check's result is appended to RESULTS (JSON lines) as soon as its cell finishes, so that
everything before a crash or a time-out still counts. The executed notebook is written next to
NOTEBOOK as ``*.executed.ipynb`` (the student's feedback).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nbformat

MIME_TYPE = "application/vnd.diffusion-lab.check+json"  # the same as _engine.MIME_TYPE (a test checks it)
PREAMBLE_TAG = "grader-preamble"  # the grader's first cell: imports, without the per-cell limit


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def result_of(cell) -> dict | None:
    """The result a check cell showed, or what went wrong with it; None if it has no outputs at all."""
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        if MIME_TYPE in data:
            result = data[MIME_TYPE]
            return json.loads(result) if isinstance(result, str) else dict(result)
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            if output.get("ename") in ("KeyboardInterrupt", "CellTimeoutError"):
                return {"status": "time limit", "message": "the check was stopped by the cell time limit "
                        "(an endless loop, or far too slow?)"}
            return {"status": "error", "message": f"the check cell raised {output.get('ename')}: "
                    f"{output.get('evalue')} (did the solution cell above run without errors?)"}
    return None


def execute(notebook: Path, results: Path, *, cell_timeout: int, kernel_pid_file: Path | None = None) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)

    def on_start(notebook=None, **_):
        pid = getattr(client.km.provisioner, "pid", None)
        if kernel_pid_file is not None and pid:
            kernel_pid_file.write_text(str(pid))

    def on_executed(cell=None, execute_reply=None, **_):
        if cell.cell_type == "code" and _nbgrader(cell).get("grade"):
            reply = (execute_reply or {}).get("content", {})
            if reply.get("ename") == "CellTimeoutError":  # the kernel did not even answer the interrupt
                result = {"status": "time limit", "message": f"the check was stopped after the cell time limit "
                          f"of {cell_timeout} s (an endless loop, or far too slow?)"}
            else:
                result = result_of(cell) or {"status": "error", "message": "the check cell showed no result"}
            result["grade_id"] = _nbgrader(cell)["grade_id"]
            with results.open("a") as f:
                f.write(json.dumps(result) + "\n")

    def timeout_for(cell) -> int | None:
        return None if PREAMBLE_TAG in cell.get("metadata", {}).get("tags", []) else cell_timeout

    client = NotebookClient(
        nb, timeout_func=timeout_for, interrupt_on_timeout=True, allow_errors=True, kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}}, on_notebook_start=on_start,
        on_cell_executed=on_executed,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": f"cell stopped after {cell_timeout} s",
                          "traceback": [f"CellTimeoutError: cell stopped after {cell_timeout} s"]},
    )
    try:
        client.execute()
    finally:
        nbformat.write(nb, notebook.with_suffix(".executed.ipynb"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("results", type=Path)
    parser.add_argument("--cell-timeout", type=int, required=True)
    parser.add_argument("--kernel-pid-file", type=Path)
    args = parser.parse_args()
    execute(args.notebook, args.results, cell_timeout=args.cell_timeout, kernel_pid_file=args.kernel_pid_file)
