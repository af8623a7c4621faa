"""Grade a folder of submitted notebooks into a per-student, per-exercise score table.

Layout: ``SUBMISSIONS/<student>/<chapter>.ipynb``; the instructor notebooks (the book's chapters) are
in ``SOURCE/<chapter>.ipynb``. For every submission:

1. the check cells are restored from the instructor notebook (matched by ``grade_id``; a deleted one
   is appended at the end), so a student cannot change what is checked;
2. the notebook runs in a **fresh kernel inside its own process** (``_runner.py``), with ``DIFFUSION_LAB_GRADING=1`` so that every check also emits its result as JSON; a
   cell that runs longer than ``cell_timeout`` is interrupted (its exercise fails, later cells still
   run), and the whole process, kernel included, is killed after ``timeout`` seconds;
3. each check's result is appended to a JSON-lines file as soon as its cell finishes, so whatever ran
   before a crash or a time-out still counts.

Outputs in ``OUT``: ``scores.csv`` (one row per student, one column per exercise, then total and
maximum), ``details.csv`` (one row per student and exercise, with the status and the hint), and
``feedback/<student>/<chapter>.ipynb`` (the executed submission, hints included) where it finished.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ._engine import GRADING_ENV
from ._runner import PREAMBLE_TAG
from .notebooks import GradedExercise, _meta, is_check_cell, is_exercise_cell, validate

RUNNER = Path(__file__).with_name("_runner.py")


@dataclass(frozen=True)
class Score:
    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    status: str
    message: str


def prepare(submission, source, *, exercises_only: bool = False) -> nbformat.NotebookNode:
    """The notebook to run: the submission with the instructor's check cells restored."""
    checks = {_meta(c)["grade_id"]: c for c in source.cells if is_check_cell(c)}
    nb = copy.deepcopy(submission)
    seen = set()
    for cell in nb.cells:
        grade_id = _meta(cell).get("grade_id") if cell.cell_type == "code" else None
        if grade_id in checks:
            cell.source = checks[grade_id].source
            cell.metadata = copy.deepcopy(checks[grade_id].metadata)
            seen.add(grade_id)
        elif is_check_cell(cell):  # a check cell the instructor never wrote: do not run it
            cell.metadata["nbgrader"]["grade"] = False
            cell.source = "# (removed by the grader: not a check of this assignment)"
    for grade_id, cell in checks.items():
        if grade_id not in seen:
            nb.cells.append(copy.deepcopy(cell))
    if exercises_only:
        nb.cells = [c for c in nb.cells if is_exercise_cell(c)]
    # Import the package before the first timed cell: a cold import must not count as an endless loop.
    preamble = nbformat.v4.new_code_cell("import diffusion_lab.homework  # added by the grader")
    preamble.metadata["tags"] = [PREAMBLE_TAG]
    nb.cells.insert(0, preamble)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _kill(process: subprocess.Popen, kernel_pid_file: Path) -> None:
    for pid in (int(kernel_pid_file.read_text()) if kernel_pid_file.exists() else None, process.pid):
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)  # the process and its children; the kernel leads its own group
            except (ProcessLookupError, PermissionError):
                pass
    process.wait()


def grade_one(student: str, submission: Path | None, source_path: Path, work: Path, *, timeout: float,
              cell_timeout: int, exercises_only: bool, feedback: Path | None) -> list[Score]:
    """Grade one student's notebook in its own process; every exercise of the source gets a score."""
    source = nbformat.read(source_path, as_version=4)
    exercises: list[GradedExercise] = validate(source)
    name = source_path.stem

    def scores(found: dict[str, dict], default_status: str, default_message: str) -> list[Score]:
        rows = []
        for ex in exercises:
            r = found.get(ex.grade_id, {"status": default_status, "message": default_message})
            points = ex.points if r["status"] == "passed" else 0.0
            rows.append(Score(student, name, ex.grade_id, points, ex.points, r["status"], r["message"]))
        return rows

    if submission is None:
        return scores({}, "missing", f"no {name}.ipynb was submitted")
    try:
        nb = prepare(nbformat.read(submission, as_version=4), source, exercises_only=exercises_only)
    except Exception as exc:  # an unreadable file is this student's problem only
        return scores({}, "unreadable", f"the notebook could not be read: {type(exc).__name__}: {exc}")
    work.mkdir(parents=True, exist_ok=True)
    notebook, results, pid_file = work / f"{name}.ipynb", work / f"{name}.results.jsonl", work / f"{name}.kernel.pid"
    nbformat.write(nb, notebook)
    env = {**os.environ, GRADING_ENV: "1"}
    command = [sys.executable, str(RUNNER), str(notebook), str(results),
               "--cell-timeout", str(cell_timeout), "--kernel-pid-file", str(pid_file)]
    process = subprocess.Popen(command, cwd=work, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(process, pid_file)
    finally:
        if process.stderr:
            process.stderr.close()
    found = {}
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            found[r["grade_id"]] = r
    if timed_out:
        status, message = "time limit", f"the notebook was stopped after the time limit of {timeout:g} s before this check ran"
    else:
        status, message = "not run", "this check did not run (the kernel died, or a cell before it never finished)"
    executed = notebook.with_suffix(".executed.ipynb")
    if feedback is not None and executed.exists():
        feedback.mkdir(parents=True, exist_ok=True)
        executed.replace(feedback / f"{name}.ipynb")
    return scores(found, status, message)


def grade(submissions: Path, source: Path, out: Path, *, timeout: float = 900, cell_timeout: int = 300,
          jobs: int = 1, exercises_only: bool = False) -> list[Score]:
    """Grade every ``SUBMISSIONS/<student>/<chapter>.ipynb`` against ``SOURCE/<chapter>.ipynb``.

    Writes ``OUT/scores.csv``, ``OUT/details.csv`` and ``OUT/feedback/``; returns the scores.
    Chapters are those that have graded exercises and that at least one student submitted.
    """
    submissions, source, out = Path(submissions), Path(source), Path(out)
    students = sorted(p.name for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    submitted = {p.stem for s in students for p in (submissions / s).glob("*.ipynb")}
    sources = [p for p in sorted(source.glob("*.ipynb"))
               if p.stem in submitted and validate(nbformat.read(p, as_version=4))]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grading-") as tmp:
        tasks = []
        for student in students:
            for src in sources:
                path = submissions / student / f"{src.stem}.ipynb"
                tasks.append((student, path if path.exists() else None, src, Path(tmp) / student,
                              out / "feedback" / student))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(grade_one, st, sub, src, work, timeout=timeout, cell_timeout=cell_timeout,
                                   exercises_only=exercises_only, feedback=fb)
                       for st, sub, src, work, fb in tasks]
            scores = [row for f in futures for row in f.result()]
    write_tables(scores, out)
    return scores


def write_tables(scores: list[Score], out: Path) -> None:
    """``scores.csv``: student × exercise points, total, maximum; ``details.csv``: one row per score."""
    columns = list(dict.fromkeys(f"{s.notebook}:{s.exercise}" for s in scores))
    maximum = {f"{s.notebook}:{s.exercise}": s.max_points for s in scores}
    table: dict[str, dict[str, float]] = {}
    for s in scores:
        table.setdefault(s.student, {})[f"{s.notebook}:{s.exercise}"] = s.points
    with (out / "scores.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *columns, "total", "max"])
        for student, row in table.items():
            writer.writerow([student, *(f"{row.get(c, 0):g}" for c in columns),
                             f"{sum(row.values()):g}", f"{sum(maximum.values()):g}"])
    with (out / "details.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", "exercise", "points", "max_points", "status", "message"])
        for s in scores:
            writer.writerow([s.student, s.notebook, s.exercise, f"{s.points:g}", f"{s.max_points:g}", s.status, s.message])
